"""Targets written the way ssh, scp and rsync take them: `user@host[:port]`, `[v6]:port`,
`ssh://user@host:port`. Used by `hosts add` and by every command that takes a host, so a
host needs no hosts.yaml entry."""

from __future__ import annotations

import re

from remote_sep.errors import ConfigError

_TARGET = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:@\s\[\]/]+))"
                     r"(?::(?P<port>[^:/]*))?/?$")
SCHEME = "ssh://"


def parse_target(target: str) -> tuple[str | None, str, int | None]:
    """`user@host[:port]`, `[v6addr]:port` or `ssh://user@host:port` -> (user, host, port)."""
    text = target.strip()
    if text.lower().startswith(SCHEME):
        text = text[len(SCHEME):]
    match = _TARGET.match(text)
    if not match:
        raise ConfigError(
            f"'{target}' is not user@host[:port]",
            hint="e.g. ubuntu@203.0.113.7 or ubuntu@gpu.example.org:2222 or an ssh_config alias",
        )
    port = match["port"]
    if port is not None:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"'{port}' in '{target}' is not a port number (1-65535)")
        port = int(port)
    return match["user"], match["v6"] or match["host"], port


def looks_like_target(name: str) -> bool:
    """A host argument meant as a bare target rather than a profile name: it has a user
    (`user@host`), a port (`host:22`, `[v6]:22`) or the ssh:// scheme."""
    text = name.strip()
    return text.lower().startswith(SCHEME) or "@" in text or bool(
        re.fullmatch(r"(?:\[[^\]]+\]|[^:@\s]+):\d+", text))
