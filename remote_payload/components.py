"""Every Hub (or URL) component a run loads, as a pure table; standard library only.

Read from sam_audio at 68b48d4 (/tmp/sam-audio-src) and perception_models (/tmp/pm-src);
each row cites the line that loads it. ``components_for(settings, config)`` lists them all
with ``needed`` set from the settings the way the engine builds the model (rankers only for
``rerank > 1``, the visual one only with a video, the span predictor only for
``predict_spans``, the judge for ``score``); ``config`` is the model's config.json when it
can be read (else the source defaults apply and the rankers are unknown).

``patterns`` is what a prefetch downloads (``None``: the whole repo at that revision, as
``snapshot_download`` does in the loader); ``files`` is what must be in the cache for the
load to work offline (each entry a tuple of alternatives).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .manifest import resolve_model

# transformers' from_pretrained of a T5/RoBERTa repo: config, tokenizer and weights; the
# loaders prefer safetensors, so the .bin/.h5/.msgpack copies are never fetched.
TRANSFORMERS_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt")
TOKENIZER_PATTERNS = ("*.json", "*.txt", "*.model")
IMAGEBIND_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
IMAGEBIND_FILE = "imagebind_huge.pth"  # read from ./.checkpoints/ (the process's cwd)
CLAP_REPO, CLAP_FILE = "lukewys/laion_clap", "630k-best.pt"
JUDGE_REPO = "facebook/sam-audio-judge"
# SAMAudioConfig defaults (sam_audio/model/config.py:52 and :216)
DEFAULT_TEXT_ENCODER = "t5-base"
DEFAULT_SPAN_PREDICTOR = "pe-a-frame-large"
PREFETCH_HINT = "remote-sep bootstrap HOST --prefetch"


@dataclass(frozen=True)
class Component:
    name: str  # what a message calls it: "text encoder t5-base"
    repo: str | None  # Hub repo id (None: a URL or no download)
    revision: str | None = None  # None: the repo's main branch
    patterns: tuple[str, ...] | None = None  # what prefetch downloads (None: whole repo)
    files: tuple[tuple[str, ...], ...] = ()  # what the load reads (alternatives per entry)
    needed: bool = True
    why: str = "always"  # which setting needs it
    flag: str = ""  # the bootstrap flag that adds it to a prefetch
    url: str | None = None  # a plain download (ImageBind): files name it in the
    #                         shared checkpoint folder (hub_cache.checkpoint_dir)
    package: str | None = None  # a Python package its loader imports
    source: str = ""  # where the real code loads it

    @property
    def where(self) -> str:
        if self.repo:
            return self.repo + (f"@{self.revision}" if self.revision else "")
        return self.url or "inside the model checkpoint"

    @property
    def downloads(self) -> bool:
        return bool(self.repo or self.url)

    def hint(self) -> str:
        return f"`{PREFETCH_HINT}{(' ' + self.flag) if self.flag else ''}`"


def _flag(settings: Any, name: str) -> bool:
    return bool(getattr(settings, name, False))  # score/video: added by other settings


def components_for(settings: Any, config: dict | None = None) -> list[Component]:
    """Every component a run with ``settings`` may load, ``needed`` set for this run."""
    model = resolve_model(getattr(settings, "model", "large"))
    config = config or {}
    rerank = int(getattr(settings, "rerank", 1) or 1) > 1
    video = _flag(settings, "video")
    rows: list[Component] = []
    is_folder = model.startswith(("/", ".", "~"))
    rows.append(Component(
        f"model {model}", None if is_folder else model, files=(("config.json",),
                                                                ("checkpoint.pt",)),
        source="sam_audio/model/base.py:36 snapshot_download(model_id, revision=None); "
               "processor.py:170 hf_hub_download(config.json)"))
    encoder = (config.get("text_encoder") or {}).get("name") or DEFAULT_TEXT_ENCODER
    if not encoder.startswith(("/", ".")):
        rows.append(Component(
            f"text encoder {encoder}", encoder, patterns=TRANSFORMERS_PATTERNS,
            files=(("config.json",), ("model.safetensors", "pytorch_model.bin"),
                   ("spiece.model", "tokenizer.json")),
            source="sam_audio/model/text_encoder.py:14-15 T5EncoderModel/AutoTokenizer"
                   ".from_pretrained(cfg.name)"))
    rows.append(Component(
        "vision encoder", None, needed=False, why="weights inside the model's checkpoint.pt",
        source="sam_audio/model/vision_encoder.py:86 pe.CLIP.from_config(name) "
               "(pretrained=False: nothing downloaded)"))
    span = config.get("span_predictor", DEFAULT_SPAN_PREDICTOR)
    if span:
        rows.append(Component(
            f"span predictor {span}", None if span.startswith(("/", ".")) else f"facebook/{span}",
            revision="perception_models", files=(("config.json",), ("model.safetensors",)),
            needed=bool(getattr(settings, "predict_spans", False)), why="--predict-spans",
            flag="--predict-spans",
            source="sam_audio/model/model.py:96-101; perception_models core/audio_visual_encoder"
                   "/pe.py:239 snapshot_download(facebook/<name>, revision=perception_models)"))
    text_ranker = config.get("text_ranker")
    rows += _ranker_rows(text_ranker, "text ranker", rerank and not video,
                         "--rerank N (no video)")
    rows += _ranker_rows(config.get("visual_ranker"), "visual ranker", rerank and video,
                         "--rerank N with a video")
    judge = getattr(settings, "judge_model", None) or JUDGE_REPO  # --judge-model (scores)
    rows += _judge(judge, "judge (quality scores)", _flag(settings, "score"), "--score",
                   "--score")
    return rows


def needed(settings: Any, config: dict | None = None) -> list[Component]:
    """The components this run downloads or reads from the Hub cache."""
    return [c for c in components_for(settings, config) if c.needed and c.downloads]


def _ranker_rows(cfg: Any, role: str, used: bool, why: str) -> list[Component]:
    """The rows of one ranker config (config.py:184 parse_ranker_config; ensembles nest)."""
    if not isinstance(cfg, dict):
        return []
    kind = cfg.get("kind")
    if kind == "ensemble":
        rows = []
        for sub, _weight in (cfg.get("rankers") or {}).values():
            rows += _ranker_rows(sub, role, used, why)
        return rows
    if kind == "clap":
        weights = [] if cfg.get("checkpoint") else [Component(
            f"{role} CLAP weights", CLAP_REPO, patterns=(CLAP_FILE,), files=((CLAP_FILE,),),
            needed=used, why=why, flag="--rerank", package="laion_clap",
            source="sam_audio/ranking/clap.py:16-19 hf_hub_download(lukewys/laion_clap, "
                   "630k-best.pt)")]
        return weights + [Component(
            f"{role} CLAP text model roberta-base", "roberta-base",
            patterns=TRANSFORMERS_PATTERNS, files=(("config.json",), ("vocab.json",),
                                                   ("merges.txt",)),
            needed=used, why=why, flag="--rerank", package="laion_clap",
            source="laion_clap hook.py RobertaTokenizer.from_pretrained('roberta-base'), "
                   "clap_module/model.py RobertaModel.from_pretrained('roberta-base')")]
    if kind == "judge":
        return _judge(cfg.get("checkpoint_or_model_id") or JUDGE_REPO, f"{role} judge", used,
                      why, "--rerank")
    if kind == "imagebind":
        if cfg.get("checkpoint"):
            return []
        return [Component(
            f"{role} ImageBind", None, url=IMAGEBIND_URL, files=((IMAGEBIND_FILE,),),
            needed=used, why=why,
            flag="--rerank", package="imagebind",
            source="sam_audio/ranking/imagebind.py:160 imagebind_huge(pretrained=True): "
                   "downloads to ./.checkpoints/ (the job folder)")]
    return []


def _judge(repo: str, name: str, used: bool, why: str, flag: str) -> list[Component]:
    """SAMAudioJudgeModel: judge.py:37 revision 'sam_audio', read by base.py:36
    snapshot_download; its processor's tokenizer comes from the main branch
    (processor.py:279 AutoTokenizer.from_pretrained(repo), no revision)."""
    if repo.startswith(("/", ".")):
        return []
    return [Component(f"{name} {repo}", repo, revision="sam_audio",
                      files=(("config.json",), ("checkpoint.pt",)), needed=used, why=why,
                      flag=flag, source="sam_audio/model/judge.py:37, model/base.py:36, "
                                        "processor.py:170-174"),
            Component(f"{name} tokenizer", repo, patterns=TOKENIZER_PATTERNS,
                      files=(("tokenizer_config.json", "tokenizer.json"),), needed=used,
                      why=why, flag=flag,
                      source="sam_audio/processor.py:279 AutoTokenizer.from_pretrained(repo)")]
