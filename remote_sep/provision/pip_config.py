"""The host's pip configuration, translated for uv (which reads no pip.conf and no PIP_*).

Bootstrap reads `python -m pip config list` on the host in its inspection round trip (lines
like `global.index-url='https://…'`, `:env:.find-links='/wheels'`), so uv installs from the
same indexes, local wheels, certificates and constraints pip would. Pure parsing, no I/O.
Values are configuration, but an index URL may carry `user:password@`: `mask` hides it
wherever a value is shown (events, logs, --dry-run); the values themselves reach the host on
stdin, never on a command line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# pip applies the `install` section over `global`, and PIP_* variables (`:env:`) over both.
SECTION_RANK = {"global": 0, "install": 1, ":env:": 2}
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class PipConfig:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    cert: str | None = None
    client_cert: str | None = None
    timeout: str | None = None
    constraints: tuple[str, ...] = ()
    proxy: str | None = None
    no_index: bool = False


def parse_config_list(text: str) -> dict[str, str]:
    """`pip config list` output -> {option: value}, with pip's own precedence applied."""
    best: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        section, dot, name = key.rpartition(".")
        if not sep or not dot or section not in SECTION_RANK:
            continue
        try:
            value = ast.literal_eval(raw)  # pip prints each value with %r
        except (ValueError, SyntaxError):
            continue
        if not isinstance(value, str):
            continue
        option = name.lower().replace("_", "-")
        rank = SECTION_RANK[section]
        if option not in best or rank >= best[option][0]:
            best[option] = (rank, value)
    return {option: value for option, (_, value) in best.items()}


def _words(value: str | None) -> tuple[str, ...]:
    return tuple(value.split()) if value else ()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def from_config_list(text: str) -> PipConfig:
    options = parse_config_list(text)
    return PipConfig(
        index_url=options.get("index-url") or None,
        extra_index_urls=_words(options.get("extra-index-url")),
        find_links=_words(options.get("find-links")),
        trusted_hosts=_words(options.get("trusted-host")),
        cert=options.get("cert") or None,
        client_cert=options.get("client-cert") or None,
        timeout=options.get("timeout") or options.get("default-timeout") or None,
        constraints=_words(options.get("constraint") or options.get("constraints")),
        proxy=options.get("proxy") or None,
        no_index=_truthy(options.get("no-index")),
    )


def uv_env(config: PipConfig, *, indexes: bool = True) -> dict[str, str]:
    """UV_* (and the TLS/proxy variables uv reads) for this pip configuration.

    `indexes=False` leaves out the index URLs: the torch step names its CUDA index alone.
    """
    env: dict[str, str] = {}
    if indexes and config.index_url:
        env["UV_INDEX_URL"] = config.index_url
    if indexes and config.extra_index_urls:
        env["UV_EXTRA_INDEX_URL"] = " ".join(config.extra_index_urls)  # space-separated
    if config.find_links:
        env["UV_FIND_LINKS"] = ",".join(config.find_links)  # uv splits this one on commas
    if config.trusted_hosts:
        env["UV_INSECURE_HOST"] = " ".join(config.trusted_hosts)
    if config.cert:
        env["SSL_CERT_FILE"] = config.cert
    if config.client_cert:
        env["SSL_CLIENT_CERT"] = config.client_cert
    if config.timeout:
        env["UV_HTTP_TIMEOUT"] = config.timeout
    if config.constraints:
        env["UV_CONSTRAINT"] = " ".join(config.constraints)
    if config.proxy:
        env["HTTPS_PROXY"] = env["HTTP_PROXY"] = config.proxy
    if config.no_index:
        env["UV_NO_INDEX"] = "1"
    return env


def mask(text: str) -> str:
    """Hide `user:password@` (or a bare token@) in every URL of `text`."""
    return _CREDENTIALS.sub(lambda m: m.group("scheme") + "***@", text)


def describe(env: dict[str, str]) -> str:
    """One line for --dry-run and events: NAME=value pairs, credentials masked."""
    return " ".join(f"{name}={mask(value)}" for name, value in sorted(env.items()))


def facts_lines(python_var: str = "PIPPY") -> str:
    """Shell text for the facts script: `pip=yes` and one `pipconf=` line per setting, read
    with the interpreter in $PIPPY (one pip start: `config list` fails when there is no pip)."""
    return f"""\
if [ -n "${python_var}" ] && pipconf=$("${python_var}" -m pip config list 2>/dev/null); then
  echo "pip=yes"
  [ -z "$pipconf" ] || printf '%s\\n' "$pipconf" | sed 's/^/pipconf=/'
else
  echo "pip=no"
fi
"""
