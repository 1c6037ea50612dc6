"""uv cannot be had because P/tools is unwritable (a real read-only bind mount, root
included): `bootstrap` (installer: auto) says so, falls back to pip, and the venv works; the
next bootstrap is a no-op on pip (no uv retry). With `installer: uv` the same host is a
clear error instead. Real loopback sshd, real pip, the stand-in sam_audio, --cpu."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TESTS, profile_for, write_hosts_file
from hub_standin import GOOD_TOKEN, HubStandin
from sshd import start_sshd

from faults.mounts import read_only
from remote_sep.provision import venv_python

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
STANDINS = TESTS / "standins"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from remote_sep.cli.main import main; main()", "bootstrap",
           "gpu", "--cpu", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=800)


def test_unwritable_tools_dir_falls_back_to_pip_and_says_so(tmp_path: Path):
    server = start_sshd(tmp_path / "sshd")
    base = tmp_path / "base"
    try:
        with HubStandin() as hub, read_only(base / "tools"):
            entry = profile_for(server, base, path_prepend=[str(STANDINS / "bin")],
                                hf_home=str(tmp_path / "hf"), env={"HF_ENDPOINT": hub.url},
                                torch_spec="torch==2.13.0", torch_index="none",
                                sam_audio_spec=str(STANDINS))
            entry.pop("python")  # jobs would run with the venv bootstrap builds
            hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": entry})
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("HF_")},
                   "REMOTE_SEP_HOSTS": str(hosts), "HF_TOKEN": GOOD_TOKEN,
                   "HF_HOME": str(tmp_path / "local-hf"),
                   "REMOTE_SEP_STATE_DIR": str(tmp_path / "state")}
            forced = write_hosts_file(tmp_path / "forced.yaml",
                                      {"gpu": {**entry, "installer": "uv"}})
            refused = cli({**env, "REMOTE_SEP_HOSTS": str(forced)})
            assert refused.returncode == 9, refused.stderr
            assert "could not install uv" in refused.stderr
            assert "Read-only file system" in refused.stderr and "installer: auto" in refused.stderr
            assert "Traceback" not in refused.stderr

            run = cli(env)
            assert run.returncode == 0, run.stdout + run.stderr
            assert "installer: uv" in run.stderr  # what it meant to use, then ...
            assert "falling back to pip" in run.stderr and "Read-only file system" in run.stderr
            assert "installed with pip (uv could not be installed" in run.stderr
            log = tmp_path / "state" / "logs" / "bootstrap-gpu.log"
            events = [json.loads(line) for line in log.read_text().splitlines()]
            chosen = [e for e in events if e["event"] == "installer"]
            assert [e["name"] for e in chosen[-2:]] == ["uv", "pip"] and chosen[-1]["fallback"]
            failed = [e for e in events if e["event"] == "step_done" and e["step"] == "uv"]
            assert failed[-1]["status"] == "failed"
            assert not list((base / "tools").iterdir())  # nothing half-made
            probe = subprocess.run(
                [venv_python(str(base)), "-c",
                 "import torch, sam_audio, soundfile, soxr, huggingface_hub, transformers; "
                 "import pip; print(torch.__version__, huggingface_hub.__version__)"],
                capture_output=True, text=True)
            assert probe.returncode == 0, probe.stderr  # a pip venv (pip inside), working
            torch_v, hub_v = probe.stdout.split()
            assert torch_v.startswith("2.13.0") and int(hub_v.split(".")[0]) < 1

            again = cli(env, "--json")
            assert again.returncode == 0, again.stderr
            result = json.loads(again.stdout)["result"]
            assert result["up_to_date"] and result["steps"] == []
            assert result["installer"]["name"] == "pip" and "built with pip" in \
                result["installer"]["why"]
    finally:
        server.stop()
