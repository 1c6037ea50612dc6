"""Host profiles: hosts.yaml loaded and validated (errors name file:line and field), merged
with ssh_config, plus the built-in ``local`` host.

The YAML is composed into nodes (not plain dicts) so that every message, even one about a
wrong value type, can point at the line the user has to fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import yaml

from remote_sep.errors import ConfigError, UnknownHost
from remote_sep.hosts.known_hosts import default_known_hosts
from remote_sep.hosts.profile import LOCAL_HOST, HostProfile
from remote_sep.hosts.shell import split_words
from remote_sep.profiles.fields import FIELDS, SETTING_FIELDS, WholeMessage
from remote_sep.profiles.target import looks_like_target, parse_target
from remote_sep.ssh.config import SSHConfig, load_ssh_config, ssh_config_aliases

APP_NAME = "remote-sep"
HOSTS_ENV = "REMOTE_SEP_HOSTS"

# SSH connection fields make no sense for the built-in local host.
SSH_ONLY_FIELDS = frozenset({"host", "user", "port", "key", "proxy_jump", "known_hosts"})


# ---------------------------------------------------------------- paths


def default_hosts_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "hosts.yaml"


def hosts_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The hosts.yaml to use: the explicit path, else $REMOTE_SEP_HOSTS, else the default."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get(HOSTS_ENV)
    return Path(env).expanduser() if env else default_hosts_path()


def _missing_file(file: Path) -> ConfigError:
    """A hosts file the user named (a typo, say) is never read as an empty one."""
    env = os.environ.get(HOSTS_ENV)
    named_by = f" (named by ${HOSTS_ENV})" if env and Path(env).expanduser() == file else ""
    return ConfigError(f"hosts file not found: {file}{named_by}",
                       hint="check the path, or create the file with `remote-sep hosts add "
                            "NAME user@host --hosts FILE`")


def local_base_path() -> str:
    return platformdirs.user_data_dir(APP_NAME)


# ---------------------------------------------------------------- parsing


@dataclass
class RawEntry:
    """One validated hosts.yaml entry before the ssh_config merge."""

    name: str
    values: dict[str, Any]
    line: int  # 1-based line of the entry's name
    key_line: int  # 0-based first line of the entry (for the writer)
    end_line: int  # 0-based last line of the entry (for the writer)
    indent: int  # column of the entry's name
    lines: dict[str, int] = dataclasses.field(default_factory=dict)  # field -> line of its key


@dataclass
class ParsedFile:
    entries: dict[str, RawEntry]
    hosts_node: yaml.Node | None


def _fail(file: Path, line: int | None, message: str, field: str | None = None) -> ConfigError:
    where = f"{file}:{line}" if line else str(file)
    what = f"field '{field}': " if field else ""
    return ConfigError(
        f"{where}: {what}{message}", hint="see hosts.yaml.example for every field"
    )


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _scalar_key(file: Path, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise _fail(file, _line(node), f"{what} must be a plain name")
    return str(node.value)


def parse_text(text: str, file: Path) -> ParsedFile:
    """Validate hosts.yaml text; every ConfigError carries the file and the line."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            started = exc.context_mark
            context = (f" ({exc.context} on line {started.line + 1})"
                       if started and exc.context and started.line + 1 != line else "")
            raise _fail(file, line, f"not valid YAML: {exc.problem or exc}{context}") from None
        except yaml.YAMLError as exc:
            raise _fail(file, None, f"not valid YAML: {exc}") from None
        if root is None or (isinstance(root, yaml.ScalarNode) and root.value in ("", "~", "null")):
            return ParsedFile({}, None)
        if not isinstance(root, yaml.MappingNode):
            raise _fail(file, _line(root), "the file must be a mapping with a 'hosts:' key")
        hosts_node = None
        for key_node, value_node in root.value:
            key = _scalar_key(file, key_node, "a top-level key")
            if key != "hosts":
                raise _fail(file, _line(key_node), f"unknown top-level key '{key}'"
                            f"{_suggest(key, ['hosts'])}; the file holds one 'hosts:' mapping")
            hosts_node = value_node
        entries = _parse_hosts(file, hosts_node, loader) if hosts_node is not None else {}
        return ParsedFile(entries, hosts_node)
    finally:
        loader.dispose()


def _parse_hosts(file: Path, node: yaml.Node, loader: yaml.SafeLoader) -> dict[str, RawEntry]:
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise _fail(file, _line(node), "'hosts' must be a mapping of NAME: {host: …}")
    entries: dict[str, RawEntry] = {}
    for name_node, body in node.value:
        name = _scalar_key(file, name_node, "a host name")
        if any(ch.isspace() for ch in name):
            raise _fail(file, _line(name_node), f"host name '{name}' must not contain spaces")
        if name in entries:
            raise _fail(file, _line(name_node),
                        f"host '{name}' is defined twice (first on line {entries[name].line})")
        lines: dict[str, int] = {}
        values = _parse_entry(file, name, body, loader, lines)
        if name != LOCAL_HOST and "host" not in values:
            raise _fail(file, _line(name_node), f"host '{name}' has no 'host' field", "host")
        end_line = _last_line(body)
        entries[name] = RawEntry(name, values, _line(name_node), name_node.start_mark.line,
                                 max(end_line, name_node.start_mark.line),
                                 name_node.start_mark.column, lines)
    return entries


def _last_line(node: yaml.Node) -> int:
    """0-based last line holding this node's content (a block mapping's own end mark lies on
    the next key's line, past any comments in between, so follow the last leaf instead)."""
    if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
        return _last_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        return _last_line(node.value[-1])
    end = node.end_mark
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def _parse_entry(file: Path, name: str, body: yaml.Node, loader: yaml.SafeLoader,
                 lines: dict[str, int]) -> dict:
    if not isinstance(body, yaml.MappingNode):
        raise _fail(file, _line(body), f"host '{name}' must be a mapping of field: value")
    values: dict[str, Any] = {}
    for key_node, value_node in body.value:
        field = _scalar_key(file, key_node, "a field name")
        line = _line(key_node)
        if field not in FIELDS:
            raise _fail(file, line, f"unknown field '{field}' in host '{name}'"
                        f"{_suggest(field, list(FIELDS))}", field)
        if field in values:
            raise _fail(file, line, f"field given twice in host '{name}'", field)
        lines[field] = line
        if name == LOCAL_HOST and field in SSH_ONLY_FIELDS:
            raise _fail(file, line, "the built-in 'local' host runs on this machine "
                        "and takes no SSH settings", field)
        try:
            raw = loader.construct_object(value_node, deep=True)
        except yaml.YAMLError as exc:
            raise _fail(file, _line(value_node), f"bad value: {exc}", field) from None
        try:
            values[field] = FIELDS[field].convert(raw)
        except ValueError as exc:
            expected = "" if isinstance(exc, WholeMessage) else f" (expected {FIELDS[field].kind})"
            raise _fail(file, _line(value_node), f"{exc}{expected}", field) from None
    return values


def read_hosts_file(path: Path) -> ParsedFile:
    if not path.exists():
        return ParsedFile({}, None)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, None, f"cannot read: {exc}") from None
    return parse_text(text, path)


# ---------------------------------------------------------------- ssh_config merge
# ssh_config itself is read in ssh/config.py (the SSH seam: paramiko stays out of here).


def build_profile(name: str, values: dict[str, Any], config: SSHConfig,
                  source: Path | None = None, line: int | None = None,
                  lines: dict[str, int] | None = None) -> HostProfile:
    """A HostProfile from hosts.yaml values with ssh_config filling what they leave out."""
    if name == LOCAL_HOST:
        return _local_profile(values, source, line, lines)
    host = values.get("host", name)
    ssh = config.lookup(host)
    profile = HostProfile(name=name, host=host, source_file=str(source) if source else None,
                          source_line=line)
    if ssh.get("hostname") and ssh["hostname"] != host:
        profile.hostname = ssh["hostname"]
    profile.user = values.get("user") or ssh.get("user")
    profile.port = values.get("port") or _ssh_int(ssh, "port") or 22
    keys = [values["key"]] if "key" in values else []
    keys += ssh.get("identityfile", [])
    profile.key_files = list(dict.fromkeys(os.path.expanduser(k) for k in keys))
    profile.proxy_jump = values.get("proxy_jump") or ssh.get("proxyjump")
    if profile.proxy_jump == "none":
        profile.proxy_jump = None
    if "known_hosts" in values:
        known = values["known_hosts"]
    elif ssh.get("userknownhostsfile"):
        known = split_words(ssh["userknownhostsfile"])
    else:
        known = default_known_hosts()
    profile.known_hosts = [os.path.expanduser(k) for k in known]
    timeout = values.get("connect_timeout") or _ssh_int(ssh, "connecttimeout")
    if timeout:
        profile.connect_timeout = float(timeout)
    _copy_common(profile, values, lines or {})
    return profile


def _local_profile(values: dict[str, Any], source: Path | None, line: int | None,
                   lines: dict[str, int] | None = None) -> HostProfile:
    profile = HostProfile(name=LOCAL_HOST, host="localhost", path=local_base_path(),
                          source_file=str(source) if source else None, source_line=line)
    _copy_common(profile, values, lines or {})
    return profile


def _copy_common(profile: HostProfile, values: dict[str, Any], lines: dict[str, int]) -> None:
    # Separation defaults (setting_table rows), with their lines for the builder's messages.
    profile.setting_defaults = {k: v for k, v in values.items() if k in SETTING_FIELDS}
    profile.setting_lines = {k: lines[k] for k in profile.setting_defaults if k in lines}
    for field in ("path", "python", "base_python", "model", "dtype", "chunk_seconds",
                  "worker_idle_timeout", "path_prepend", "hf_home", "env", "torch_index",
                  "torch_spec", "sam_audio_spec", "pins", "pip_args", "installer", "allow_sudo",
                  "cpu", "ray", "ray_workers"):
        if field in values:
            setattr(profile, field, values[field])


def _ssh_int(ssh: dict, key: str) -> int | None:
    if key not in ssh:
        return None
    try:
        return int(ssh[key])
    except ValueError:
        raise ConfigError(f"ssh_config: {key} '{ssh[key]}' for this host is not a number") from None


# ---------------------------------------------------------------- public API


def load_hosts(path: str | os.PathLike[str] | None = None) -> dict[str, HostProfile]:
    """Every profile in hosts.yaml (resolved through ssh_config), plus the built-in `local`."""
    file = hosts_path(path)
    if not file.exists() and (path or os.environ.get(HOSTS_ENV)):
        raise _missing_file(file)  # only the default file may be absent (then: local only)
    parsed = read_hosts_file(file)
    config = load_ssh_config()
    profiles = {LOCAL_HOST: _local_profile({}, None, None)}
    for name, entry in parsed.entries.items():
        profiles[name] = build_profile(name, entry.values, config, file, entry.line,
                                       entry.lines)
    return profiles


def get_profile(name: str, hosts_file: str | os.PathLike[str] | None = None) -> HostProfile:
    """One profile by name. Without a hosts.yaml entry, an ssh_config alias or a bare target
    (`user@host[:port]`, `ssh://user@host:port`) works too, with the default base path."""
    profiles = load_hosts(hosts_file)
    if name in profiles:
        return profiles[name]
    config = load_ssh_config()
    if name in ssh_config_aliases(config):
        return build_profile(name, {}, config)
    if looks_like_target(name):
        # like ssh/scp/rsync: user@host[:port] with no entry; ssh_config still applies
        user, host, port = parse_target(name)
        values: dict[str, Any] = {"host": host}
        if user:
            values["user"] = user
        if port:
            values["port"] = port
        profile = build_profile(name, values, config)
        profile.bare = True
        return profile
    known = ", ".join(sorted(profiles))
    raise UnknownHost(
        f"unknown host '{name}'{_suggest(name, list(profiles))}; known hosts: {known}",
        hint=f"add it with `remote-sep hosts add {name} user@host`, or as a Host in ssh_config "
        f"(hosts file: {hosts_path(hosts_file)})",
    )
