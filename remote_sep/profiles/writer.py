"""`hosts add`: write or update one hosts.yaml entry without hand-editing YAML.

The file is edited as text so that the user's comments and the other entries stay exactly
as they were: a new host is appended, an existing one has only its own lines replaced.
The result is validated before it replaces the file (atomically), so a bad write can never
leave a broken hosts.yaml behind.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from remote_sep.atomic import write_text_atomic
from remote_sep.errors import ConfigError
from remote_sep.hosts.profile import LOCAL_HOST, HostProfile
from remote_sep.profiles import load as profiles
from remote_sep.profiles.target import parse_target

HEADER = (
    "# remote-sep host profiles. Every field is described in hosts.yaml.example.\n"
    "# `remote-sep hosts add NAME user@host[:port]` edits this file for you.\n"
)
# Fields `hosts add` derives from its target: rewritten (or dropped) on every update.
TARGET_FIELDS = ("host", "user", "port")
FIELD_ORDER = ("host", "user", "port", "key", "path", "python", "proxy_jump")

def add_host(
    name: str,
    target: str,
    *,
    key: str | None = None,
    path: str | None = None,
    python: str | None = None,
    proxy_jump: str | None = None,
    hosts_file: str | os.PathLike[str] | None = None,
) -> HostProfile:
    """Write (or update) host NAME in hosts.yaml and return its resolved profile.

    On update, host/user/port come from TARGET; key/path/python/proxy_jump change only when
    given; every other field the user wrote (model, env, …) is kept.
    """
    if not name or any(ch.isspace() for ch in name) or name.startswith("-"):
        raise ConfigError(f"'{name}' is not a usable host name (no spaces, no leading '-')")
    if name == LOCAL_HOST:
        raise ConfigError("'local' is the built-in host for this machine; pick another name")
    user, host, port = parse_target(target)
    given = {"host": host, "user": user, "port": port, "key": key, "path": path,
             "python": python, "proxy_jump": proxy_jump}
    file = profiles.hosts_path(hosts_file)
    text = file.read_text(encoding="utf-8") if file.exists() else ""
    parsed = profiles.parse_text(text, file)  # refuses to touch a file that is already broken
    entry = parsed.entries.get(name)
    values: dict[str, Any] = dict(entry.values) if entry else {}
    for field in TARGET_FIELDS:
        values.pop(field, None)
    values.update({k: v for k, v in given.items() if v is not None})
    return _write(file, text, parsed, name, _ordered(values))


def write_entry(name: str, values: dict[str, Any],
                hosts_file: str | os.PathLike[str] | None = None) -> HostProfile:
    """Write host NAME with exactly VALUES (an existing entry of that name is replaced whole,
    every other entry and comment kept); `cluster up` writes its cluster profile so."""
    if not name or any(ch.isspace() for ch in name) or name.startswith("-") \
            or name == LOCAL_HOST:
        raise ConfigError(f"'{name}' is not a usable host name (no spaces, no leading '-', "
                          "not 'local')")
    file = profiles.hosts_path(hosts_file)
    text = file.read_text(encoding="utf-8") if file.exists() else ""
    parsed = profiles.parse_text(text, file)
    return _write(file, text, parsed, name, _ordered(dict(values)))


def _write(file: Any, text: str, parsed: Any, name: str, values: dict[str, Any]) -> HostProfile:
    """The edited text, validated before it replaces the file (atomically)."""
    new_text = _edit(text, parsed, name, values)
    try:
        check = profiles.parse_text(new_text, file)
    except ConfigError:  # an odd layout the line editor cannot handle: rewrite it whole
        new_text = _rewrite_all(parsed, name, values)
        check = profiles.parse_text(new_text, file)
    write_text_atomic(file, new_text)
    config = profiles.load_ssh_config()
    entry = check.entries[name]
    return profiles.build_profile(name, entry.values, config, file, entry.line,
                                   entry.lines)


def _ordered(values: dict[str, Any]) -> dict[str, Any]:
    first = {k: values[k] for k in FIELD_ORDER if k in values}
    return first | {k: v for k, v in values.items() if k not in first}


def _block(name: str, values: dict[str, Any], indent: int) -> str:
    pad = " " * indent
    body = yaml.safe_dump(values, sort_keys=False, allow_unicode=True, default_flow_style=False,
                          width=1000)
    head = yaml.safe_dump({name: None}, allow_unicode=True).rsplit(":", 1)[0]  # quoted if needed
    lines = [f"{pad}{head}:"] + [f"{pad}  {line}" for line in body.splitlines()]
    return "\n".join(lines) + "\n"


def _edit(text: str, parsed: Any, name: str, values: dict[str, Any]) -> str:
    node = parsed.hosts_node
    if node is not None and isinstance(node, yaml.MappingNode) and node.flow_style:
        return _rewrite_all(parsed, name, values)  # `hosts: {…}`: no lines to edit in place
    entry = parsed.entries.get(name)
    if entry is not None:
        lines = text.splitlines(keepends=True)
        block = _block(name, values, entry.indent)
        return "".join(lines[: entry.key_line]) + block + "".join(lines[entry.end_line + 1:])
    indent = next(iter(parsed.entries.values())).indent if parsed.entries else 2
    if node is None:  # empty or comment-only file
        prefix = text if text.strip() else HEADER
        if not prefix.endswith("\n"):
            prefix += "\n"
        return prefix + "hosts:\n" + _block(name, values, indent)
    if isinstance(node, yaml.ScalarNode):  # `hosts:` with nothing (or `~`) after it
        lines = text.splitlines(keepends=True)
        at = node.start_mark.line
        lines[at] = re.sub(r"^(\s*hosts\s*:).*$", r"\1", lines[at].rstrip("\n")) + "\n"
        return "".join(lines[: at + 1]) + _block(name, values, indent) + "".join(lines[at + 1:])
    if text and not text.endswith("\n"):
        text += "\n"
    return text + _block(name, values, indent)


def _rewrite_all(parsed: Any, name: str, values: dict[str, Any]) -> str:
    hosts = {n: e.values for n, e in parsed.entries.items()}
    hosts[name] = values
    return HEADER + yaml.safe_dump({"hosts": hosts}, sort_keys=False, allow_unicode=True)


