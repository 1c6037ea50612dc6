"""The job manifest: what the laptop asks the payload to do (one JSON file per job).

Standard library only, shared by both sides (the laptop writes it, the payload reads it).

    {"v": 1, "job_id": "20261125-…",
     "settings": {...Settings...},
     "items": [{"id": "i0", "input": "/base/cache/<sha>.wav",
                "descriptions": ["female vocals", "drums"],
                "prefixes": ["out/i0_d0", "out/i0_d1"],
                "spans": [["+", 1.0, 2.5]]}]}   # optional (spans.py)

Output files of description k are ``<prefixes[k]>_target.<ext>`` and
``<prefixes[k]>_residual.<ext>``; a relative prefix is relative to the manifest's folder.

A stem split (``"stems": ["vocals", "drums"]``, one name per description, ONE prefix):
description k is separated from what descriptions 0..k-1 left (in that order, chunk by
chunk); outputs ``<prefix>_<stem>.<ext>`` and ``<prefix>_other.<ext>`` (what is left:
the input minus the stems as written, so they add up to the input; docs/split.md).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .spans import SpanError, check_spans

MANIFEST_VERSION = 1

MODEL_ALIASES = {
    "small": "facebook/sam-audio-small",
    "base": "facebook/sam-audio-base",
    "large": "facebook/sam-audio-large",
    "small-tv": "facebook/sam-audio-small-tv",
    "base-tv": "facebook/sam-audio-base-tv",
    "large-tv": "facebook/sam-audio-large-tv",
}
DEFAULT_MODEL = MODEL_ALIASES["large"]
DEFAULT_JUDGE = "facebook/sam-audio-judge"  # SAMAudioJudgeModel (revision sam_audio)
DTYPES = ("auto", "bf16", "fp16", "fp32")
# format -> (file extension, default soundfile subtype)
FORMATS = {"wav": ("wav", "PCM_16"), "flac": ("flac", "PCM_16")}
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
STEREO_MODES = ("image", "mid", "channels")  # remote_payload/stereo.py, docs/stereo.md
# The flow-matching solvers the model is run with (torchdiffeq fixed-grid names; the
# model's default is midpoint).
ODE_METHODS = ("midpoint", "euler")

# The real model's limits (sam_audio at 68b48d4, see docs/payload.md "Limits"): one pass
# may hold at most MAX_LATENT_FRAMES latent frames (the DiT's RoPE table, max_positions)
# of HOP_LENGTH samples at 48 kHz, i.e. 400 s; an item of at most HOP_LENGTH / 2 samples
# crashes the codec's reflect padding (the engine pads short chunks, see engine.py).
MODEL_SAMPLE_RATE = 48_000
HOP_LENGTH = 1920
MAX_LATENT_FRAMES = 10_000
MAX_CHUNK_SECONDS = MAX_LATENT_FRAMES * HOP_LENGTH / MODEL_SAMPLE_RATE  # 400.0
DEFAULT_WORKER_IDLE_TIMEOUT = 900.0


class ManifestError(ValueError):
    """The manifest is malformed; the message names the field."""


def resolve_model(name: str) -> str:
    """Short names (small/base/large[-tv]) to Hub ids; ids and local dirs pass through."""
    return MODEL_ALIASES.get(name, name)


@dataclass
class Settings:
    model: str = DEFAULT_MODEL
    dtype: str = "auto"  # auto: bf16 where supported, else fp16; fp32 on CPU
    device: str = "auto"  # auto | cuda | cpu
    require_gpu: bool = False  # fail with no_gpu instead of falling back to CPU
    # 30 s chunks sharing 3 s: what wrappers use (25-30 s, 2-5 s), and 10 s crops return
    # noise for absent sources (upstream #94); the reasons are in docs/settings.md.
    chunk_seconds: float = 30.0
    overlap_seconds: float = 3.0
    min_chunk_seconds: float = 2.5  # OOM back-off floor
    batch_size: int = 0  # chunks per separate() call; 0 = choose from free VRAM
    rerank: int = 1  # reranking_candidates
    predict_spans: bool = False
    # Quality scores of every target by the SAM Audio judge (judge.py); a Hub id or a folder.
    score: bool = False
    judge_model: str = DEFAULT_JUDGE
    seed: int = 0
    ode_method: str = "midpoint"
    ode_step_size: float = 2 / 32  # the model's default: 16 midpoint steps
    format: str = "wav"
    subtype: str = "PCM_16"
    sample_rate: int | None = None  # None: the input's rate
    # image: one pass on the channel mean, its time-frequency mask on every channel (keeps
    # a panned source in place) | mid: that mono target on every channel | channels: one
    # pass per channel. image is the default: bench/bench_stereo.py, docs/stereo.md
    stereo: str = "image"
    # Batch worker (--inbox): retire once the laptop's heartbeat is this old (0: never).
    worker_idle_timeout: float = DEFAULT_WORKER_IDLE_TIMEOUT
    # The job's items carry visual prompts (Item.video): the visual ranker serves --rerank
    # and the vision encoder is fitted to the dtype (remote_payload/video.py).
    video: bool = False

    def validate(self) -> None:
        """Every setting checked before the model loads; the message names the field."""
        self._check_types()
        if not self.model.strip():
            raise ManifestError("settings.model must not be empty")
        if not self.judge_model.strip():
            raise ManifestError("settings.judge_model must not be empty")
        if self.dtype not in DTYPES:
            raise ManifestError(f"settings.dtype: {self.dtype!r} is not one of {DTYPES}")
        if self.format not in FORMATS:
            raise ManifestError(f"settings.format: {self.format!r} is not one of {tuple(FORMATS)}")
        if self.subtype not in SUBTYPES:
            raise ManifestError(f"settings.subtype: {self.subtype!r} is not one of {SUBTYPES}")
        if self.device not in ("auto", "cuda", "cpu") and not self.device.startswith("cuda:"):
            raise ManifestError(f"settings.device: {self.device!r} is not auto, cuda[:N] or cpu")
        if not 0 < self.chunk_seconds <= MAX_CHUNK_SECONDS:
            raise ManifestError(f"settings.chunk_seconds: {self.chunk_seconds:g} must be > 0 "
                                f"and <= {MAX_CHUNK_SECONDS:g} s (the model's limit for one "
                                f"pass: {MAX_LATENT_FRAMES} latent frames)")
        if not 0 <= self.overlap_seconds < self.chunk_seconds:
            raise ManifestError("settings.overlap_seconds must be >= 0 and < chunk_seconds")
        if self.rerank < 1:
            raise ManifestError("settings.rerank must be >= 1")
        if self.batch_size < 0:
            raise ManifestError("settings.batch_size must be >= 0")
        if self.ode_method not in ODE_METHODS:
            raise ManifestError(f"settings.ode_method: {self.ode_method!r} is not one of "
                                f"{ODE_METHODS}")
        if not 0 < self.ode_step_size <= 1:
            raise ManifestError("settings.ode_step_size must be > 0 and <= 1 (the ODE runs "
                                "from t=0 to 1)")
        if self.sample_rate is not None and self.sample_rate <= 0:
            raise ManifestError("settings.sample_rate must be > 0")
        if self.stereo not in STEREO_MODES:
            raise ManifestError(f"settings.stereo: {self.stereo!r} is not one of {STEREO_MODES}")
        if self.format == "flac" and self.subtype == "FLOAT":
            raise ManifestError("settings.subtype: FLOAT cannot be written as flac")
        if not self.min_chunk_seconds > 0:
            raise ManifestError("settings.min_chunk_seconds must be > 0")
        if not 0 <= self.worker_idle_timeout < math.inf:
            raise ManifestError("settings.worker_idle_timeout must be >= 0 seconds (0: never)")

    def _check_types(self) -> None:
        """JSON types first (a string where a number belongs is a bad_config, not a crash)."""
        for spec in fields(self):
            value = getattr(self, spec.name)
            kind = _SETTING_TYPES[spec.name]
            if value is None and spec.name == "sample_rate":
                continue
            if kind is bool:
                ok = isinstance(value, bool)
            elif kind is float:  # a whole number is a fine number of seconds
                ok = (isinstance(value, int | float) and not isinstance(value, bool)
                      and not math.isnan(value))
            else:
                ok = isinstance(value, kind) and not isinstance(value, bool)
            if not ok:
                raise ManifestError(f"settings.{spec.name}: {value!r} is not "
                                    f"{_TYPE_NAMES[kind]}")

    @property
    def extension(self) -> str:
        return FORMATS[self.format][0]


_SETTING_TYPES: dict[str, type] = {
    "model": str, "dtype": str, "device": str, "require_gpu": bool, "chunk_seconds": float,
    "overlap_seconds": float, "min_chunk_seconds": float, "batch_size": int, "rerank": int,
    "predict_spans": bool, "seed": int, "ode_method": str, "ode_step_size": float,
    "format": str, "subtype": str, "sample_rate": int, "stereo": str,
    "worker_idle_timeout": float, "score": bool, "judge_model": str, "video": bool,
}
_TYPE_NAMES = {str: "a string", bool: "true or false", float: "a number",
               int: "a whole number"}


OTHER_STEM = "other"  # a stem split's remainder
STEM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,59}")  # a part of a file name on every OS


@dataclass
class Item:
    id: str
    input: str
    descriptions: list[str]
    prefixes: list[str]
    # A visual prompt: frames + masks files and their fps (format in remote_payload/video.py).
    video: dict[str, Any] | None = None
    # A stem split: output names, one per description, in chain order (None: plain item)
    stems: list[str] | None = None
    # Span prompts ``[["+"|"-", start_s, end_s], …]`` in seconds of the input (spans.py);
    # every description of the item gets them. Empty: none (predicted with predict_spans).
    spans: list = field(default_factory=list)

    def validate(self) -> None:
        if not self.id or "/" in self.id:
            raise ManifestError(f"item id {self.id!r} must be non-empty and contain no '/'")
        if self.stems is not None:
            self._validate_stems()
        elif len(self.descriptions) != len(self.prefixes) or not self.descriptions:
            raise ManifestError(f"item {self.id}: needs one prefix per description (>= 1)")
        try:
            self.spans = check_spans(self.spans, f"item {self.id}: spans")
        except SpanError as exc:
            raise ManifestError(str(exc)) from None
        if self.spans and self.stems is not None:  # a chain's stages run without anchors
            raise ManifestError(f"item {self.id}: spans do not work with stems (a split)")
        if self.video is not None:
            from .video import VideoError, check_ref

            if self.stems is not None:
                raise ManifestError(f"item {self.id}: a stem split takes no video")

            try:
                check_ref(self.video, f"item {self.id}")
            except VideoError as exc:
                raise ManifestError(str(exc)) from None

    def _validate_stems(self) -> None:
        stems = self.stems
        if not isinstance(stems, list) or not stems or len(stems) != len(self.descriptions):
            raise ManifestError(f"item {self.id}: stems needs one name per description (>= 1)")
        if len(self.prefixes) != 1:
            raise ManifestError(f"item {self.id}: a stem split has exactly one prefix")
        for name in stems:
            if not isinstance(name, str) or not STEM_NAME.fullmatch(name) or name == OTHER_STEM:
                raise ManifestError(f"item {self.id}: stem name {name!r} must be lower-case "
                                    f"letters, digits, '-' or '_' (and not {OTHER_STEM!r})")
        if len(set(stems)) != len(stems):
            raise ManifestError(f"item {self.id}: stem names must be distinct")

    @property
    def output_stems(self) -> list[str]:
        """The output kinds of a stem split: the stems, then ``other``."""
        return [*(self.stems or []), OTHER_STEM]


@dataclass
class Manifest:
    job_id: str
    settings: Settings = field(default_factory=Settings)
    items: list[Item] = field(default_factory=list)

    def to_json(self) -> str:
        body = {"v": MANIFEST_VERSION, "job_id": self.job_id, "settings": asdict(self.settings),
                "items": [asdict(item) for item in self.items]}
        return json.dumps(body, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"manifest is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ManifestError("manifest must be a JSON object")
        if body.get("v") != MANIFEST_VERSION:
            raise ManifestError(f"manifest version {body.get('v')!r} is not {MANIFEST_VERSION}")
        settings = _build(Settings, body.get("settings", {}), "settings")
        items = [_build(Item, raw, f"items[{i}]") for i, raw in enumerate(body.get("items", []))]
        manifest = cls(job_id=str(body.get("job_id", "")), settings=settings, items=items)
        manifest.validate()
        return manifest

    def validate(self) -> None:
        self.settings.validate()
        seen: set[str] = set()
        for item in self.items:
            item.validate()
            if item.id in seen:
                raise ManifestError(f"duplicate item id {item.id!r}")
            seen.add(item.id)


def item_from_json(text: str) -> Item:
    """One item file (batch workers take items one file at a time from an inbox)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"item file is not JSON: {exc}") from exc
    item = _build(Item, raw, "item")
    item.validate()
    return item


def item_to_json(item: Item) -> str:
    return json.dumps(asdict(item), ensure_ascii=False)


def _build(kind: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where} must be an object")
    known = {f.name for f in fields(kind)}
    unknown = set(raw) - known
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {sorted(unknown)}")
    try:
        return kind(**raw)
    except TypeError as exc:
        raise ManifestError(f"{where}: {exc}") from exc
