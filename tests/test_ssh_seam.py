"""The SSH seam stays where ARCHITECTURE.md says: only remote.py, remote_connect.py and
ssh_config.py import paramiko, and the modules LocalHost needs never load it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEAM = {"remote_sep/remote.py", "remote_sep/remote_connect.py", "remote_sep/ssh_config.py"}
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
    code = ("import sys, remote_sep.localhost, remote_sep.hostbase, remote_sep.transfer, "
            "remote_sep.hostkeys, remote_sep.shell; print('paramiko' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"


def test_public_names_still_come_from_remote():
    from remote_sep import remote, remote_connect

    assert remote.server_host_key is remote_connect.server_host_key
    for name in ("connect", "SSHHost", "RemoteCommandError", "RunResult", "Host"):
        assert hasattr(remote, name), name
