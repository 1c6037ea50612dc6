"""Shared fixtures: real loopback sshd servers, host profile files, real audio."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from sshd import SshServer, start_sshd  # noqa: E402


@pytest.fixture
def ssh_server(tmp_path: Path):
    """One real OpenSSH server on 127.0.0.1, torn down by pid."""
    server = start_sshd(tmp_path / "sshd")
    yield server
    server.stop()


@pytest.fixture
def make_ssh_server(tmp_path: Path):
    """Factory for several servers (a fleet), each with its own keys and port."""
    servers: list[SshServer] = []

    def make(name: str = "host", **kwargs) -> SshServer:
        server = start_sshd(tmp_path / f"sshd-{name}-{len(servers)}", **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def profile_for(server: SshServer, base: Path, **extra) -> dict:
    """The hosts.yaml entry that reaches a test server with its own keys and known_hosts."""
    entry = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key": str(server.user_key),
        "known_hosts": str(server.known_hosts),
        "path": str(base),
        "python": sys.executable,
    }
    entry.update(extra)
    return entry


def write_hosts_file(path: Path, hosts: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"hosts": hosts}, sort_keys=False))
    return path
