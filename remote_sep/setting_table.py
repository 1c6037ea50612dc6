"""The one declaration of every separation setting: one row each.

A row names the setting once (``name``: the hosts.yaml field; its command-line option is
``--name`` with dashes), the payload ``Settings`` field it sets, the check that turns a value
as given (typed by the command line, or anything YAML makes of it) into that field's value,
and its help. From these rows come the options of `separate`, `batch` and `split`
(cli/setting_options.py), the hosts.yaml fields (profiles/fields.py) and the settings builder
(jobs/settings.py). Adding a setting is adding a row; ``QUALITY_PRESETS`` are written in row
names too. docs/settings.md says why each default is what it is.

A check raises ValueError(reason); callers add where the value came from (the option, or the
hosts.yaml file:line:field). Standard library and remote_payload.manifest only: every layer
may import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from remote_payload.manifest import (
    DTYPES,
    FORMATS,
    MAX_CHUNK_SECONDS,
    ODE_METHODS,
    STEREO_MODES,
    Settings,
    resolve_model,
)

SETTINGS_FIELDS = frozenset(f.name for f in fields(Settings))

# --bit-depth -> soundfile subtype (32f: 32-bit float; FLAC has no float samples)
BIT_DEPTHS = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
# Output rates soxr and libsndfile both write (FLAC itself stops at 655350 Hz).
SAMPLE_RATE_RANGE = (1000, 384_000)


@dataclass(frozen=True)
class SettingRow:
    name: str  # hosts.yaml field; the option is --name (underscores as dashes)
    field: str | None  # the Settings field it sets; None: a preset that sets other rows
    check: Callable[[Any], Any]  # value as given -> the field's value; ValueError(reason)
    help: str
    cli_type: type = str  # what the command line parses before `check`
    metavar: str | None = None
    flag: bool = False  # a boolean: --name / --no-name on the command line
    commands: tuple[str, ...] = ("separate", "batch", "split")

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def kind(self) -> str:
        """What hosts.yaml is told the value must be."""
        return "true or false" if self.flag else (self.metavar or self.cli_type.__name__)


# ---------------------------------------------------------------- checks


def _one_of(choices: Any, convert: Callable[[str], Any] = lambda v: v) -> Callable[[Any], Any]:
    names = tuple(choices)

    def check(value: Any) -> Any:
        text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
        if text not in names:
            raise ValueError(f"use one of {', '.join(names)}")
        return convert(text)
    return check


def _number(low: float, *, low_open: bool, high: float = math.inf,
            unit: str = "seconds") -> Callable[[Any], float]:
    def check(value: Any) -> float:
        ok = (not isinstance(value, bool) and isinstance(value, int | float)
              and math.isfinite(value) and (value > low if low_open else value >= low)
              and value <= high)
        if not ok:
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            top = f" and <= {high:g}" if math.isfinite(high) else ""
            raise ValueError(f"must be a number of {unit} {bound}{top}")
        return float(value)
    return check


def _whole(low: int, high: int | None = None, what: str = "a whole number") -> Callable:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low \
                or (high is not None and value > high):
            top = f" and <= {high}" if high is not None else ""
            raise ValueError(f"must be {what} >= {low}{top}")
        return value
    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _model(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a model name (small, base, large[-tv]), a Hub id or a folder")
    return resolve_model(value.strip())


def _judge(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a Hub id (facebook/sam-audio-judge) or a folder on the host")
    return value.strip()


def _device(value: Any) -> str:
    if isinstance(value, str) and (value in ("auto", "cuda", "cpu") or (
            value.startswith("cuda:") and value[5:].isdigit())):
        return value
    raise ValueError("use auto, cpu, cuda or cuda:N")


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError("must be a whole number >= 0")
    return value


def _steps(value: Any) -> float:
    return 1.0 / _whole(1, what="a whole number of solver steps")(value)


# ---------------------------------------------------------------- the rows

QUALITY_PRESETS: dict[str, dict[str, Any]] = {
    # Row name -> value, as a user would write them. Costs (measured): docs/settings.md.
    # balanced is exactly the defaults (the model's own solver; tests/test_settings.py).
    "fast": {"solver": "euler", "steps": 16, "rerank": 1, "chunk_seconds": 30.0,
             "overlap": 2.0},
    "balanced": {"solver": "midpoint", "steps": 16, "rerank": 1, "chunk_seconds": 30.0,
                 "overlap": 3.0},
    "best": {"solver": "midpoint", "steps": 16, "rerank": 3, "chunk_seconds": 30.0,
             "overlap": 5.0},
}

ROWS: tuple[SettingRow, ...] = (
    SettingRow("quality", None, _one_of(QUALITY_PRESETS),
               "Preset for solver, steps, reranking, chunk and overlap (options given beside "
               "it win).", metavar="|".join(QUALITY_PRESETS)),
    SettingRow("model", "model", _model,
               "small | base | large (+ -tv), a Hub id or a local dir on the host.",
               metavar="MODEL"),
    SettingRow("dtype", "dtype", _one_of(DTYPES), "Model dtype (auto: bf16 on a GPU that has "
               "it, else fp16; fp32 on CPU).", metavar="|".join(DTYPES)),
    SettingRow("device", "device", _device, "Where the model runs on the host.",
               metavar="auto|cpu|cuda[:N]"),
    SettingRow("require_gpu", "require_gpu", _flag,
               "Fail (no_gpu) instead of falling back to the CPU.", flag=True),
    SettingRow("chunk_seconds", "chunk_seconds",
               _number(0, low_open=True, high=MAX_CHUNK_SECONDS),
               f"Chunk length in seconds (default 30; at most {MAX_CHUNK_SECONDS:g}, the "
               "model's limit for one pass).", cli_type=float, metavar="SECONDS"),
    SettingRow("overlap", "overlap_seconds", _number(0, low_open=False),
               "Seconds two chunks share, cross-faded (default 3, at most a quarter chunk "
               "unless given).", cli_type=float, metavar="SECONDS"),
    SettingRow("min_chunk_seconds", "min_chunk_seconds", _number(0, low_open=True),
               "Out of GPU memory, chunks are halved down to this length (default 2.5).",
               cli_type=float, metavar="SECONDS"),
    SettingRow("batch_size", "batch_size", _whole(0, what="a whole number of chunks"),
               "Chunks per model call (0, the default: as many as free VRAM holds).",
               cli_type=int, metavar="N"),
    SettingRow("solver", "ode_method", _one_of(ODE_METHODS),
               "ODE solver: midpoint (the model's) or euler (half the model calls).",
               metavar="|".join(ODE_METHODS)),
    SettingRow("steps", "ode_step_size", _steps,
               "Solver steps (default 16, the model's): fewer is faster, with less detail.",
               cli_type=int, metavar="N"),
    SettingRow("rerank", "rerank", _whole(1, what="a whole number of candidates"),
               "Candidates generated and ranked, the best kept (1 = off).", cli_type=int,
               metavar="N"),
    SettingRow("predict_spans", "predict_spans", _flag,
               "Let the model's span predictor find where the sound is first.", flag=True),
    SettingRow("seed", "seed", _seed, "Random seed (same seed, same output).", cli_type=int,
               metavar="N"),
    SettingRow("format", "format", _one_of(FORMATS), "Output file format.",
               metavar="|".join(FORMATS)),
    SettingRow("bit_depth", "subtype", _one_of(BIT_DEPTHS, BIT_DEPTHS.__getitem__),
               "Output samples: 16 or 24-bit integers, or 32-bit float (wav only).",
               metavar="|".join(BIT_DEPTHS)),
    SettingRow("sample_rate", "sample_rate", _whole(*SAMPLE_RATE_RANGE, "a whole number of Hz"),
               "Output sample rate in Hz (default: the input's).", cli_type=int, metavar="HZ"),
    SettingRow("stereo", "stereo", _one_of(STEREO_MODES),
               "Stereo input: image (default: one pass, a mask from it on each channel keeps a "
               "panned source in place), mid (the mono estimate on every channel) or channels "
               "(one pass each). docs/stereo.md.",
               metavar="|".join(STEREO_MODES)),
    SettingRow("score", "score", _flag, "Score each target with the SAM Audio judge "
               "(overall, recall, precision, faithfulness): in the summary, --json and a "
               "batch's scores.csv (docs/scores.md).", flag=True),
    SettingRow("judge_model", "judge_model", _judge,
               "The judge for --score: a Hub id (default facebook/sam-audio-judge) or a "
               "folder on the host.", metavar="MODEL"),
)

ROW_BY_NAME = {row.name: row for row in ROWS}
ROW_OF_FIELD = {row.field: row for row in ROWS if row.field is not None}
# Settings fields no row sets, and why (tests/test_cli_surface.py holds every other field
# to an option of every command).
NOT_OPTIONS = {"worker_idle_timeout": "batch's --worker-idle-timeout: a worker's lifetime, "
                                      "not part of the outputs' fingerprint",
               "video": "set by separate's --video/--mask/--box (a visual prompt is an input, "
                        "not a setting: jobs/visual.py)"}


def rows_for(command: str) -> list[SettingRow]:
    return [row for row in ROWS if command in row.commands]


def shown(value: Any) -> str:
    """A value as a message quotes it."""
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if not isinstance(value, int | str) or isinstance(value, bool) \
        else str(value)
