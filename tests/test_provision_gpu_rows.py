"""The wheel index chosen for each GPU row, seen through the real inspection script run over
a loopback sshd with the nvidia-smi stand-in on the host's PATH (profile path_prepend/env)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import profile_for, write_hosts_file

from remote_sep import profiles
from remote_sep.errors import RemoteSepError
from remote_sep.provision.apply import bootstrap
from remote_sep.ssh.host import connect

pytestmark = pytest.mark.e2e
STANDIN_BIN = Path(__file__).resolve().parent / "standins" / "bin"

ROWS = [  # (driver CUDA, compute capability, GPU name) -> index tag
    ("12.4", "8.0", "NVIDIA A100-SXM4-80GB", "cu124"),
    ("12.6", "8.6", "NVIDIA RTX A6000", "cu126"),
    ("12.8", "8.9", "NVIDIA L4", "cu128"),
    ("13.0", "9.0", "NVIDIA H100 80GB HBM3", "cu130"),
    ("12.8", "12.0", "NVIDIA GeForce RTX 5090", "cu128"),
    ("13.0", "7.0", "Tesla V100-SXM2-32GB", "cu126"),
]


@pytest.fixture
def hosts(ssh_server, tmp_path):
    entry = profile_for(ssh_server, tmp_path / "base", path_prepend=[str(STANDIN_BIN)],
                        hf_home=str(tmp_path / "hf"), allow_sudo=True)
    return write_hosts_file(tmp_path / "hosts.yaml", {"gpu": entry, "plain": {
        **entry, "path_prepend": []}})


def test_each_row_picks_its_index(hosts, tmp_path):
    base = profiles.get_profile("gpu", hosts)
    with connect(base) as host:
        for cuda, cc, name, tag in ROWS:
            env = {"NVSMI_CUDA": cuda, "NVSMI_CC": cc, "NVSMI_GPU": name,
                   "NVSMI_MEM_TOTAL": "32768", "NVSMI_MEM_USED": "512"}
            profile = dataclasses.replace(base, env=env)
            result = bootstrap(host, profile, dry_run=True)
            assert result.torch["index"] == f"https://download.pytorch.org/whl/{tag}", (cuda, cc)
            assert result.facts["gpu"] == name and result.facts["cuda"] == cuda
            assert result.facts["compute_cap"] == cc and result.facts["vram_used_mb"] == 512
            assert all(s["status"] == "would run" for s in result.steps)
            # With allow_sudo, missing FFmpeg libs are installed with apt (as root: no sudo).
            has_ffmpeg = "libavutil.so" in subprocess.run(
                ["ldconfig", "-p"], capture_output=True, text=True).stdout
            assert (result.steps[0]["step"] == "ffmpeg") != has_ffmpeg
            if not has_ffmpeg:
                assert result.steps[0]["command"].startswith("apt-get update")
    assert not (tmp_path / "base").exists()


def test_blackwell_on_an_old_driver_is_refused(hosts):
    profile = dataclasses.replace(profiles.get_profile("gpu", hosts),
                                  env={"NVSMI_CUDA": "12.6", "NVSMI_CC": "12.0"})
    with connect(profile) as host, pytest.raises(RemoteSepError, match="Blackwell") as err:
        bootstrap(host, profile, dry_run=True)
    assert err.value.kind == "no_gpu"


def test_cli_dry_run_json_and_no_gpu_exit_code(hosts, tmp_path):
    env = {"REMOTE_SEP_HOSTS": str(hosts), "REMOTE_SEP_STATE_DIR": str(tmp_path / "state"),
           "PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "local-hf")}
    cli = [sys.executable, "-c", "from remote_sep.cli.main import main; main()", "bootstrap"]
    ok = subprocess.run([*cli, "gpu", "--dry-run", "--json"], env=env, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    result = json.loads(ok.stdout)["result"]
    assert result["torch"]["tag"] == "cu128" and "CUDA 12.8" in result["torch"]["why"]
    none = subprocess.run([*cli, "plain", "--dry-run"], env=env, capture_output=True, text=True)
    assert none.returncode == 13 and "no NVIDIA GPU" in none.stderr
