"""The one settings builder of `separate` and `batch`: command-line options and the host
profile's defaults -> the payload's ``Settings``, checked on the laptop before anything is
uploaded (ConfigError, exit 4, naming the option or the hosts.yaml field at fault).

Pure: no I/O. Two steps, so that batch can check once and resolve per host:
- ``requested_settings(options)``: what the user asked for, each option checked, as the
  Settings fields it sets (only the given ones: batch's resume fingerprint is this dict);
- ``build_settings(profile, requested)``: the profile's defaults under it, the fields that
  follow from others (subtype from format, overlap from chunk), ``Settings.validate()``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from remote_payload.manifest import (
    DTYPES,
    FORMATS,
    ManifestError,
    Settings,
    resolve_model,
)
from remote_sep.errors import ConfigError
from remote_sep.hosts.profile import HostProfile

# Settings field -> the option that sets it (to name it in messages).
OPTION_OF = {"model": "--model", "dtype": "--dtype", "chunk_seconds": "--chunk-seconds",
             "rerank": "--rerank", "seed": "--seed", "ode_step_size": "--steps",
             "format": "--format", "score": "--score", "judge_model": "--judge-model"}
# Profile fields that are separation defaults (hosts.yaml; command-line options win).
PROFILE_DEFAULTS = ("model", "dtype", "chunk_seconds")
SETTINGS_FIELDS = frozenset(f.name for f in fields(Settings))


@dataclass
class SettingsOptions:
    """The separation options of a command line; None: not given."""

    model: str | None = None
    dtype: str | None = None
    chunk_seconds: float | None = None
    rerank: int | None = None
    seed: int | None = None
    steps: int | None = None  # solver steps: ode_step_size = 1 / steps
    format: str | None = None
    score: bool | None = None  # quality scores by the SAM Audio judge
    judge_model: str | None = None  # the judge: a Hub id or a folder on the host
    # Settings fields set as they are (no option of their own here, e.g. a worker timeout);
    # checked by Settings.validate().
    extra: dict[str, Any] = field(default_factory=dict)


def requested_settings(options: SettingsOptions) -> dict[str, Any]:
    """The Settings fields the options set, each option checked (ConfigError names it)."""
    asked: dict[str, Any] = {}
    if options.model is not None:
        if not options.model.strip():
            raise ConfigError("--model must not be empty")
        asked["model"] = resolve_model(options.model.strip())
    if options.dtype is not None:
        if options.dtype not in DTYPES:
            raise ConfigError(f"--dtype {options.dtype!r}: use one of {', '.join(DTYPES)}")
        asked["dtype"] = options.dtype
    if options.chunk_seconds is not None:
        asked["chunk_seconds"] = _seconds("--chunk-seconds", options.chunk_seconds)
    if options.rerank is not None:
        if options.rerank < 1:
            raise ConfigError(f"--rerank {options.rerank}: must be >= 1 (1 = off)")
        asked["rerank"] = options.rerank
    if options.seed is not None:
        asked["seed"] = options.seed
    if options.steps is not None:
        if options.steps < 1:
            raise ConfigError(f"--steps {options.steps}: must be >= 1")
        asked["ode_step_size"] = 1.0 / options.steps
    if options.format is not None:
        if options.format not in FORMATS:
            raise ConfigError(f"--format {options.format!r}: use one of {', '.join(FORMATS)}")
        asked["format"] = options.format
    if options.score is not None:
        asked["score"] = bool(options.score)
    if options.judge_model is not None:
        if not options.judge_model.strip():
            raise ConfigError("--judge-model must not be empty")
        asked["judge_model"] = options.judge_model.strip()
    unknown = sorted(set(options.extra) - SETTINGS_FIELDS)
    if unknown:
        raise ConfigError(f"unknown separation setting(s) {unknown}")
    asked.update(options.extra)
    return asked


def build_settings(profile: HostProfile | None, requested: dict[str, Any]) -> Settings:
    """The job's Settings on PROFILE's host (None: no profile defaults), validated."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}  # field -> where its value came from, for the message
    for name in PROFILE_DEFAULTS:
        value = getattr(profile, name, None) if profile is not None else None
        if value is not None:
            values[name] = resolve_model(value) if name == "model" else value
            origin[name] = _profile_field(profile, name)
    values.update(requested)
    origin.update({name: OPTION_OF.get(name, name) for name in requested})
    if "chunk_seconds" in origin and "chunk_seconds" not in requested:
        _seconds(origin["chunk_seconds"], values["chunk_seconds"])  # NaN/inf from YAML
    defaults = Settings()
    fmt = values.get("format", defaults.format)
    if "subtype" not in values and fmt in FORMATS:
        values["subtype"] = FORMATS[fmt][1]
    try:
        if "overlap_seconds" not in values:
            # A quarter chunk at most, so that any valid chunk length is a valid job (the
            # default 2 s overlap alone would reject chunks of 2 s or less).
            chunk = values.get("chunk_seconds", defaults.chunk_seconds)
            values["overlap_seconds"] = min(defaults.overlap_seconds, chunk / 4)
        settings = Settings(**values)
        settings.validate()
    except TypeError as exc:  # a pass-through value of the wrong type
        raise ConfigError(f"separation settings: {exc}") from None
    except ManifestError as exc:
        raise _named(exc, origin) from None
    return settings


def _seconds(option: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not (math.isfinite(value) and value > 0):
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
        raise ConfigError(f"{option} {shown}: must be a number of seconds > 0")
    return float(value)


def _profile_field(profile: HostProfile, name: str) -> str:
    where = f"{profile.source_file}:{profile.source_line}" if profile.source_file else "hosts.yaml"
    return f"host '{profile.name}' ({where}) field '{name}'"


def _named(exc: ManifestError, origin: dict[str, str]) -> ConfigError:
    """The payload's own message, with ``settings.FIELD`` replaced by where it was set."""
    message = str(exc)
    found = re.match(r"settings\.(\w+)", message)
    if found and found.group(1) in origin:
        message = origin[found.group(1)] + message[found.end():]
    return ConfigError(message)

