"""The one settings builder of `separate`, `batch` and `split`: command-line options and the
host profile's defaults -> the payload's ``Settings``, checked on the laptop before anything
is uploaded (ConfigError, exit 4, naming the option or the hosts.yaml field at fault).

Which settings exist, their checks and their presets: remote_sep/setting_table.py (one row
each). Pure: no I/O. Two steps, so that batch can check once and resolve per host:
- ``requested_settings(given)``: what the user asked for (row name -> value as given, None:
  not given), each option checked, as the Settings fields it sets (only the given ones:
  batch's resume fingerprint is this dict);
- ``build_settings(profile, requested)``: the profile's defaults under it, the fields that
  follow from others (subtype from format, overlap from chunk), ``Settings.validate()``.

Precedence, highest first: options given, the --quality preset, the host's hosts.yaml fields,
its hosts.yaml ``quality:`` preset, the payload's defaults. An overlap that nobody gave (the
default's or a preset's) is at most a quarter of the chunk it ends up with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from remote_payload.manifest import FORMATS, ManifestError, Settings
from remote_sep.errors import ConfigError
from remote_sep.hosts.profile import HostProfile
from remote_sep.setting_table import (
    QUALITY_PRESETS,
    ROW_BY_NAME,
    ROW_OF_FIELD,
    SETTINGS_FIELDS,
    SettingRow,
    shown,
)

# A quarter chunk at most, so that any valid chunk length is a valid job (a fixed overlap
# alone would reject chunks shorter than it).
MAX_OVERLAP_SHARE = 0.25
# HostProfile attributes that predate the table (also set directly by code and tests).
PROFILE_ATTRIBUTES = ("model", "dtype", "chunk_seconds")


@dataclass
class _Layer:
    """The Settings fields one source sets, where each came from, and which were only a
    preset's (an overlap nobody gave is capped to the chunk)."""

    values: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    from_preset: set[str] = field(default_factory=set)


def requested_settings(given: Mapping[str, Any]) -> dict[str, Any]:
    """The Settings fields the options given set, each option checked (ConfigError names
    it); the --quality preset's fields under the options given beside it."""
    layer = _layer({k: v for k, v in given.items() if v is not None},
                   lambda row: row.option)
    if "overlap_seconds" in layer.from_preset and "chunk_seconds" not in layer.from_preset:
        _cap_overlap(layer.values)  # the preset's overlap, a chunk given beside it
    return layer.values


def build_settings(profile: HostProfile | None, requested: dict[str, Any]) -> Settings:
    """The job's Settings on PROFILE's host (None: no profile defaults), validated."""
    below = _layer(profile_given(profile), lambda row: _profile_field(profile, row.name))
    unknown = sorted(set(requested) - SETTINGS_FIELDS)  # code may pass any Settings field
    if unknown:
        raise ConfigError(f"unknown separation setting(s) {unknown}")
    values = {**below.values, **requested}
    origin = {**below.origin, **{name: ROW_OF_FIELD[name].option if name in ROW_OF_FIELD
                                 else f"settings.{name}" for name in requested}}
    if "overlap_seconds" not in values:
        values["overlap_seconds"] = Settings.overlap_seconds  # the default: capped below
    if "overlap_seconds" not in requested and ("overlap_seconds" not in below.values
                                               or "overlap_seconds" in below.from_preset):
        _cap_overlap(values)
    fmt = values.get("format", Settings.format)
    if "subtype" not in values and fmt in FORMATS:
        values["subtype"] = FORMATS[fmt][1]
    if fmt == "flac" and values.get("subtype") == "FLOAT":  # before the payload's own words
        where = origin.get("subtype", "--bit-depth")
        raise ConfigError(f"{where} 32f: flac has no float samples; use 16 or 24, or wav "
                          f"(format from {origin.get('format', 'the default')})")
    try:
        settings = Settings(**values)
        settings.validate()
    except TypeError as exc:  # a value of the wrong type passed in by code
        raise ConfigError(f"separation settings: {exc}") from None
    except ManifestError as exc:
        raise _named(exc, origin) from None
    return settings


def profile_given(profile: HostProfile | None) -> dict[str, Any]:
    """The setting rows PROFILE's hosts.yaml entry gives (row name -> value as written)."""
    if profile is None:
        return {}
    given = dict(profile.setting_defaults)
    for name in PROFILE_ATTRIBUTES:
        if getattr(profile, name, None) is not None:
            given.setdefault(name, getattr(profile, name))
    return given


def _layer(given: Mapping[str, Any], where: Callable[[SettingRow], str]) -> _Layer:
    """One source's rows as Settings fields: its preset first, its other rows over it."""
    unknown = sorted(set(given) - set(ROW_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown separation setting(s) {unknown}")
    layer = _Layer()
    if "quality" in given:
        quality = ROW_BY_NAME["quality"]
        preset = _checked(quality, given["quality"], where)
        for name, value in QUALITY_PRESETS[preset].items():
            row = ROW_BY_NAME[name]
            layer.values[row.field] = row.check(value)
            layer.origin[row.field] = f"{where(quality)} {preset} (sets {row.option})"
            layer.from_preset.add(row.field)
    for name, value in given.items():
        row = ROW_BY_NAME[name]
        if row.field is None:
            continue
        layer.values[row.field] = _checked(row, value, where)
        layer.origin[row.field] = where(row)
        layer.from_preset.discard(row.field)
    return layer


def _checked(row: SettingRow, value: Any, where: Callable[[SettingRow], str]) -> Any:
    try:
        return row.check(value)
    except ValueError as exc:
        raise ConfigError(f"{where(row)} {shown(value)}: {exc}") from None


def _cap_overlap(values: dict[str, Any]) -> None:
    chunk = values.get("chunk_seconds", Settings.chunk_seconds)
    overlap = values.get("overlap_seconds", Settings.overlap_seconds)
    values["overlap_seconds"] = min(overlap, chunk * MAX_OVERLAP_SHARE)


def _profile_field(profile: HostProfile | None, name: str) -> str:
    if profile is None:
        return name
    line = profile.setting_lines.get(name, profile.source_line)
    where = f"{profile.source_file}:{line}" if profile.source_file else "hosts.yaml"
    return f"host '{profile.name}' ({where}) field '{name}'"


def _named(exc: ManifestError, origin: dict[str, str]) -> ConfigError:
    """The payload's own message, with ``settings.FIELD`` replaced by where it was set."""
    message = str(exc)
    found = re.match(r"settings\.(\w+)", message)
    if found:
        name = found.group(1)
        row = ROW_OF_FIELD.get(name)
        label = origin.get(name) or (row.option if row else name)
        message = label + message[found.end():]
    return ConfigError(message)
