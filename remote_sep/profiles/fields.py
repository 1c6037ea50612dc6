"""The hosts.yaml field schema: each field's type check and conversion.

Converters raise ValueError(reason); profiles/load.py adds the file, line and field name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from remote_sep.setting_table import ROWS, SettingRow

# Names that would put a secret into a remote command line (env is exported there).
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD")


@dataclass(frozen=True)
class Field:
    kind: str  # what the user is told the field must be
    convert: Callable[[Any], Any]  # raises ValueError(reason) on a bad value


def _string(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a string")
    text = str(value)
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [_string(value)]
    if not isinstance(value, list):
        raise ValueError("must be a string or a list of strings")
    return [_string(v) for v in value]


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number between 1 and 65535")
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a port number (1-65535)")
    return value


def _positive(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if value <= 0:
        raise ValueError("must be greater than 0")
    return float(value)


def _seconds_or_zero(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if not 0 <= value < float("inf"):
        raise ValueError("must be 0 (never) or more")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


INSTALLERS = ("auto", "uv", "pip")  # provision/installer.py SETTINGS


def _installer(value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in INSTALLERS:
        raise ValueError(f"{value!r} is not one of {', '.join(INSTALLERS)}")
    return value.strip().lower()


def _ray(value: Any) -> str:
    """`auto` (a Ray cluster whose head is this SSH host) or HOST:PORT of its GCS."""
    text = _string(value).strip()
    if text.lower() == "auto":
        return "auto"
    host, sep, port = text.rpartition(":")
    if not sep or not host or any(ch.isspace() for ch in host) or not port.isdigit() \
            or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is neither auto nor HOST:PORT")
    return text


class WholeMessage(ValueError):
    """A value error whose message says all (no "expected <kind>" is added to it)."""


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of NAME: value")
    env: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name.replace("_", "a").isalnum():
            raise ValueError(f"{name!r} is not an environment variable name")
        if any(marker in name.upper() for marker in SECRET_MARKERS):
            raise WholeMessage(
                f"{name} looks like a secret; env values are put on remote command lines "
                "(bootstrap sends the Hugging Face token safely)"
            )
        env[name] = _string(item) if item != "" else ""
    return env


FIELDS: dict[str, Field] = {
    "host": Field("a host name, address or ssh_config alias", _string),
    "user": Field("a user name", _string),
    "port": Field("a port number", _port),
    "key": Field("a private key file", _string),
    "path": Field("a remote directory", _string),
    "python": Field("a remote interpreter path", _string),
    "base_python": Field("a remote interpreter path", _string),
    "proxy_jump": Field("[user@]host[:port]", _string),
    "known_hosts": Field("a file or list of files", _string_list),
    "connect_timeout": Field("seconds", _positive),
    "worker_idle_timeout": Field("seconds (0: never)", _seconds_or_zero),
    "path_prepend": Field("a directory or list of directories", _string_list),
    "hf_home": Field("a remote directory", _string),
    "env": Field("a mapping", _env),
    "torch_index": Field("a wheel index URL", _string),
    "torch_spec": Field("a pip requirement", _string),
    "sam_audio_spec": Field("a pip requirement", _string),
    "pins": Field("a list of pip requirements", _string_list),
    "pip_args": Field("a list of pip arguments", _string_list),
    "installer": Field("auto, uv or pip", _installer),
    "allow_sudo": Field("true or false", _boolean),
    "cpu": Field("true or false", _boolean),
    # A Ray cluster profile (remote_sep/cluster, docs/ray.md): jobs run through Ray there.
    "ray": Field("auto or HOST:PORT", _ray),
    "ray_workers": Field("a list of host names (written by `cluster up`)", _string_list),
}


def _checked_as_written(row: SettingRow) -> Callable[[Any], Any]:
    """The row's own check (the one the command line runs); the value is kept as written
    (the settings builder converts it, e.g. steps -> the solver's step size)."""
    def convert(value: Any) -> Any:
        row.check(value)
        return value
    return convert


# Separation defaults: one field per setting row (model, steps, quality, bit_depth, ...).
SETTING_FIELDS = frozenset(row.name for row in ROWS)
FIELDS.update({row.name: Field(row.kind, _checked_as_written(row)) for row in ROWS})
