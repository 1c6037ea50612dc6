"""The resolved host profile: what every other module needs to know about one host.

profiles/ builds it from hosts.yaml merged with ssh_config; ssh/host.py connects with it;
provision/ and jobs/ read the optional fields. Plain data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOCAL_HOST = "local"  # the built-in host: runs the payload on this machine, no SSH


@dataclass
class HostProfile:
    name: str
    host: str = "127.0.0.1"  # as written: an address, a DNS name or an ssh_config alias
    hostname: str | None = None  # resolved through ssh_config (HostName); None = host
    user: str | None = None  # None: ssh_config's User, else the local user
    port: int = 22
    key_files: list[str] = field(default_factory=list)  # profile key + ssh_config IdentityFile
    proxy_jump: str | None = None  # "user@jump:port" (or an ssh_config alias)
    known_hosts: list[str] = field(default_factory=list)  # files to check host keys against
    path: str = "~/remote-sep"  # remote base dir; "~" is resolved on the remote
    python: str | None = None  # an existing interpreter to run the payload with
    # The interpreter bootstrap builds P/venv with (None: the first Python >= 3.11 on PATH).
    # Distinct from `python`: that one runs jobs and means "do not bootstrap".
    base_python: str | None = None
    connect_timeout: float = 10.0
    # Per-host defaults for separate/batch (None: the payload's defaults).
    model: str | None = None
    dtype: str | None = None
    chunk_seconds: float | None = None
    worker_idle_timeout: float | None = None  # batch workers exit once orphaned this long
    # Every other separation default (remote_sep/setting_table.py rows: hosts.yaml field ->
    # value as written, checked) and the line each was written on, for messages.
    setting_defaults: dict[str, Any] = field(default_factory=dict)
    setting_lines: dict[str, int] = field(default_factory=dict)
    # Remote environment additions (not secrets): PATH entries put first, HF_HOME.
    path_prepend: list[str] = field(default_factory=list)
    hf_home: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # e.g. CUDA_VISIBLE_DEVICES; no secrets
    # Bootstrap overrides (provision.py): torch wheel index, torch spec, sam_audio spec,
    # pinned packages, whether sudo may be used to install FFmpeg.
    torch_index: str | None = None
    torch_spec: str | None = None
    sam_audio_spec: str | None = None
    pins: list[str] | None = None
    pip_args: list[str] = field(default_factory=list)  # extra pip args (e.g. --find-links)
    installer: str = "auto"  # "auto" (uv, else pip) | "uv" | "pip"
    allow_sudo: bool = False
    cpu: bool = False  # no NVIDIA GPU: bootstraps (also automatic ones) install CPU wheels
    # A Ray cluster profile (remote_sep/cluster): `auto` (the head is this SSH host) or
    # HOST:PORT; jobs then run through Ray. `ray_workers`: the member profiles `cluster up`
    # started, which `cluster down` stops.
    ray: str | None = None
    ray_workers: list[str] = field(default_factory=list)
    bare: bool = False  # a `user@host[:port]` target with no hosts.yaml entry
    source_file: str | None = None  # the hosts.yaml it came from (for messages)
    source_line: int | None = None

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL_HOST

    @property
    def address(self) -> str:
        return self.hostname or self.host

    def describe(self) -> str:
        if self.is_local:
            return "local (this machine)"
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.address}:{self.port}"
