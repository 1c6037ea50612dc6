"""The component table (remote_payload/components.py): what each setting makes a run load.

Pure: no Hub, no cache. The rows follow the real code at 68b48d4 (each row's `source`);
test_components_match_the_real_loaders checks the strings it relies on in the sources."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from remote_payload.components import components_for, needed
from remote_payload.manifest import Settings

SAM_SRC = Path(os.environ.get("REMOTE_SEP_SAM_SRC", "/tmp/sam-audio-src"))
PM_SRC = Path(os.environ.get("REMOTE_SEP_PM_SRC", "/tmp/pm-src"))
CONFIG = {"text_encoder": {"name": "t5-base"}, "span_predictor": "pe-a-frame-large",
          "text_ranker": {"kind": "clap"}, "visual_ranker": {"kind": "imagebind"}}


def names(settings, config=CONFIG) -> list[str]:
    return [c.name for c in needed(settings, config)]


def test_default_settings_need_the_model_and_its_text_encoder_only():
    assert names(Settings()) == ["model facebook/sam-audio-large", "text encoder t5-base"]
    # no config yet (not downloaded): the source's default text encoder
    assert names(Settings(model="small"), None) == ["model facebook/sam-audio-small",
                                                    "text encoder t5-base"]


def test_each_setting_adds_what_the_engine_builds_for_it():
    spans = needed(Settings(predict_spans=True), CONFIG)
    (span,) = [c for c in spans if c.name.startswith("span predictor")]
    assert (span.repo, span.revision, span.flag) == ("facebook/pe-a-frame-large",
                                                     "perception_models", "--predict-spans")
    rerank = needed(Settings(rerank=4), CONFIG)
    clap = [c for c in rerank if "CLAP" in c.name]
    assert [(c.repo, c.package) for c in clap] == [("lukewys/laion_clap", "laion_clap"),
                                                   ("roberta-base", "laion_clap")]
    assert not [c for c in rerank if "ImageBind" in c.name]  # no video: never the visual one
    video = needed(SimpleNamespace(model="large-tv", rerank=2, video=True), CONFIG)
    assert [c.url for c in video if "ImageBind" in c.name] == [
        "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"]
    assert not [c for c in video if "CLAP" in c.name]
    scored = needed(SimpleNamespace(model="large", score=True), CONFIG)  # score: getattr
    judge = [(c.repo, c.revision) for c in scored if "judge" in c.name]
    assert judge == [("facebook/sam-audio-judge", "sam_audio"), ("facebook/sam-audio-judge",
                                                                  None)]


def test_ranker_kinds_from_the_config():
    judge = {**CONFIG, "text_ranker": {"kind": "judge"}}
    rows = needed(Settings(rerank=2), judge)
    assert [c.name for c in rows][2:] == ["text ranker judge facebook/sam-audio-judge",
                                          "text ranker judge tokenizer"]
    ensemble = {**CONFIG, "text_ranker": {"kind": "ensemble", "rankers": {
        "a": [{"kind": "clap", "checkpoint": "/w/clap.pt"}, 0.5], "b": [{"kind": "judge"}, 0.5]}}}
    repos = [c.repo for c in needed(Settings(rerank=2), ensemble)][2:]
    # a local CLAP checkpoint: no CLAP weights download, roberta-base still
    assert repos == ["roberta-base", "facebook/sam-audio-judge", "facebook/sam-audio-judge"]
    assert [c.name for c in needed(Settings(rerank=2), {**CONFIG, "text_ranker": None})] == [
        "model facebook/sam-audio-large", "text encoder t5-base"]


def test_local_folders_are_not_downloaded():
    folder = {**CONFIG, "text_encoder": {"name": "/models/t5"}, "span_predictor": "/m/span"}
    rows = needed(Settings(model="/models/sam", predict_spans=True), folder)
    assert rows == []
    table = components_for(Settings(model="/models/sam"), folder)
    assert table[0].repo is None and not table[0].downloads
    vision = [c for c in table if c.name == "vision encoder"]
    assert vision and not vision[0].downloads  # its weights are in checkpoint.pt


@pytest.mark.skipif(not SAM_SRC.is_dir() or not PM_SRC.is_dir(),
                    reason="sam-audio / perception_models sources not here")
def test_components_match_the_real_loaders():
    """The lines each row cites still say what the row assumes (sam-audio 68b48d4)."""
    sam = SAM_SRC / "sam_audio"
    expect = {
        sam / "model/base.py": ["snapshot_download(", "revision=cls.revision",
                                '"checkpoint.pt"', '"config.json"'],
        sam / "model/model.py": ["revision = None", "PEAudioFrame.from_config(",
                                 "create_ranker(cfg.visual_ranker)"],
        sam / "model/config.py": ['name: str = "t5-base"',
                                  'span_predictor: Optional[str] = "pe-a-frame-large"',
                                  'checkpoint_or_model_id: str = "facebook/sam-audio-judge"'],
        sam / "model/judge.py": ['revision = "sam_audio"'],
        sam / "model/text_encoder.py": ["T5EncoderModel.from_pretrained(cfg.name)",
                                        "AutoTokenizer.from_pretrained(cfg.name)"],
        sam / "model/vision_encoder.py": ["pe.CLIP.from_config(cfg.name)"],
        sam / "ranking/clap.py": ['repo_id="lukewys/laion_clap", filename="630k-best.pt"',
                                  "import laion_clap"],
        sam / "ranking/imagebind.py": ["imagebind_huge(pretrained=cfg.checkpoint is None)"],
        sam / "processor.py": ["tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)"],
        PM_SRC / "core/audio_visual_encoder/pe.py": [
            'repo_id=f"facebook/{name_or_checkpoint}", revision="perception_models"',
            '"model.safetensors"'],
    }
    for path, needles in expect.items():
        text = path.read_text()
        for needle in needles:
            assert needle in text, f"{path}: {needle!r}"
    # vision encoder: pretrained defaults to False, so nothing is downloaded for it
    pe = (PM_SRC / "core/vision_encoder/pe.py").read_text()
    assert "pretrained: bool = False" in pe


def test_the_judge_model_setting_names_the_scorer_repo():
    scored = needed(SimpleNamespace(model="large", score=True, judge_model="me/my-judge"), CONFIG)
    assert [c.repo for c in scored if "judge" in c.name] == ["me/my-judge", "me/my-judge"]


def test_bootstrap_prefetches_what_the_host_defaults_turn_on():
    from remote_sep.hosts.profile import HostProfile
    from remote_sep.jobs.settings import build_settings
    from remote_sep.provision.prefetch import PrefetchWants, wants_for

    assert wants_for(Settings()) == PrefetchWants()
    # hosts.yaml `quality: best` reranks 3 candidates: its rankers are prefetched too
    best = HostProfile(name="gpu", host="h", setting_defaults={"quality": "best"})
    assert wants_for(build_settings(best, {})) == PrefetchWants(rerank=True)
    spans = HostProfile(name="gpu", host="h", setting_defaults={"predict_spans": True})
    assert wants_for(build_settings(spans, {}), score=True) == PrefetchWants(
        predict_spans=True, score=True)
    assert wants_for(Settings(), predict_spans=True).argv() == ["--predict-spans"]


def test_the_laptop_names_the_host_in_the_payloads_prefetch_command():
    from remote_sep.jobs.follow import error_from_event

    event = {"event": "error", "kind": "not_provisioned", "item": None, "desc": None,
             "message": "… lacks x; download them first with `remote-sep bootstrap HOST "
                        "--prefetch --rerank`"}
    error = error_from_event(event, "gpu1")
    assert "`remote-sep bootstrap gpu1 --prefetch --rerank`" in error.message
    assert error.exit_code == 9


def test_the_cli_shows_one_progress_line_per_component_every_few_seconds():
    from remote_sep.cli.bootstrap import ProgressThrottle

    now = [0.0]
    throttle = ProgressThrottle(clock=lambda: now[0])
    shown = []
    for step in range(40):  # 20 s of events twice a second, two components
        now[0] = step * 0.5
        for name in ("a", "b"):
            shown.append(throttle.wants({"event": "prefetch_download", "component": name}))
    assert sum(shown) == 8  # 0, 5, 10, 15 s for each
    assert throttle.wants({"event": "prefetch_downloaded", "component": "a"})
