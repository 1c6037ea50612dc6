"""The SSH seam stays where ARCHITECTURE.md says: only ssh/host.py, ssh/dial.py and
ssh/config.py import paramiko, and the modules LocalHost needs never load it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEAM = {"remote_sep/ssh/host.py", "remote_sep/ssh/dial.py", "remote_sep/ssh/config.py",
        "remote_sep/ssh/agent.py"}
SSH_LIBRARIES = {"paramiko", "fabric", "invoke"}


def _imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_seam_imports_an_ssh_library():
    importers = {
        str(path.relative_to(ROOT))
        for package in ("remote_sep", "remote_payload")
        for path in (ROOT / package).rglob("*.py")
        if _imported_top_levels(path) & SSH_LIBRARIES
    }
    assert importers == SEAM


def test_local_host_modules_do_not_load_paramiko():
    code = ("import sys, remote_sep.hosts.local, remote_sep.hosts.base, remote_sep.ssh.transfer, "
            "remote_sep.hosts.known_hosts, remote_sep.hosts.shell; "
            "print('paramiko' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"


def test_public_names_still_come_from_ssh_host():
    from remote_sep.ssh import dial, host

    assert host.server_host_key is dial.server_host_key
    for name in ("connect", "SSHHost", "RemoteCommandError", "RunResult", "Host"):
        assert hasattr(host, name), name
