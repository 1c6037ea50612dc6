"""`separate` on a host that is not provisioned: ask, bootstrap, separate (real loopback sshd,
real venv and pip, the stand-in sam_audio, a Hub stand-in on 127.0.0.1).

One host for the module (one real bootstrap, ~1-2 min): the refusals run first, on the
still-empty host, then `--yes` provisions it and the later tests reuse the venv. The venv's
base interpreter is `base_python`: a link to this Python in a folder with a space.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TESTS, profile_for, write_hosts_file
from hub_standin import GOOD_TOKEN, HubStandin
from sshd import SshServer, start_sshd
from terminal import converse
from test_separate_e2e import make_audio, sha256
from typer.testing import CliRunner

from remote_payload.protocol import EXIT_CODES
from remote_sep.cli.main import app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
STANDINS = TESTS / "standins"
NOT_PROVISIONED = EXIT_CODES["not_provisioned"]


@dataclass
class World:
    root: Path
    server: SshServer
    base: Path
    base_python: Path
    hosts: Path
    entry: dict
    audio: Path

    @property
    def venv(self) -> Path:
        return self.base / "venv"

    @property
    def log(self) -> Path:
        return self.root / "state" / "logs" / "bootstrap-gpu.log"

    def log_events(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(REMOTE_SEP_HOSTS=str(self.hosts), REMOTE_SEP_STATE_DIR=str(self.root / "state"),
                   HF_HOME=str(self.root / "local-hf"), HF_TOKEN=GOOD_TOKEN)
        return env


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto-bootstrap")
    server = start_sshd(root / "sshd")
    link_dir = root / "base py"
    link_dir.mkdir()
    base_python = link_dir / "python3.11"
    base_python.symlink_to(sys.executable)
    with HubStandin() as hub:
        base = root / "remote base"
        entry = profile_for(
            server, base, base_python=str(base_python), cpu=True, hf_home=str(root / "hf home"),
            env={"HF_ENDPOINT": hub.url}, torch_spec="torch==2.13.0", torch_index="none",
            sam_audio_spec=str(STANDINS))
        del entry["python"]  # the point: no interpreter named, the venv is the one
        hosts = write_hosts_file(root / "hosts.yaml", {"gpu": entry})
        audio = make_audio(root / "mix.wav", seconds=1.0)
        yield World(root, server, base, base_python, hosts, entry, audio)
    server.stop()


@pytest.fixture
def cli_env(world, monkeypatch):
    for name in [n for n in os.environ if n.startswith("HF_")]:
        monkeypatch.delenv(name)  # never the developer's own login
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)


def invoke(*args: object):
    result = CliRunner().invoke(app, [*map(str, args), "--json"])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result, (json.loads(lines[-1]) if lines else None)


def run_in_terminal(argv: list[str], env: dict[str, str], answer: str,
                    prompt: str = "Bootstrap it now?", timeout: float = 120) -> tuple[int, str]:
    """Run a command on a real pseudo-terminal, answer its question, return (exit, output)."""
    return converse(argv, env, [(prompt, answer)], timeout)


def separate_argv(world: World, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from remote_sep.cli.main import main; main()", "separate",
            str(world.audio), "--desc", "bass hum", "--host", "gpu", "--force", *extra]


def test_without_a_terminal_or_yes_it_fails_with_the_hint(world, cli_env):
    result, body = invoke("separate", world.audio, "--desc", "bass hum", "--host", "gpu")
    assert result.exit_code == NOT_PROVISIONED, result.output
    assert body["error"]["kind"] == "not_provisioned"
    assert "remote-sep bootstrap gpu" in body["error"]["hint"] and "--yes" in body["error"]["hint"]
    assert not world.venv.exists() and world.log_events() == []


def test_answering_no_on_a_terminal_installs_nothing(world):
    code, output = run_in_terminal(separate_argv(world), world.env(), answer="n")
    assert "Host gpu is not provisioned" in output and "[y/N]" in output, output
    assert code == NOT_PROVISIONED, output
    assert "bootstrap declined" in output
    assert not world.venv.exists() and world.log_events() == []
    assert GOOD_TOKEN not in output


def test_yes_bootstraps_with_base_python_then_separates(world, cli_env):
    result, body = invoke("separate", world.audio, "--desc", "bass hum", "--host", "gpu",
                          "--yes")
    assert result.exit_code == 0, result.output
    # Bootstrapped: the stamp is complete, the venv was made from base_python.
    stamp = json.loads((world.venv / "remote-sep-stamp.json").read_text())
    assert stamp["complete"] and stamp["facts"]["cpu"] is True
    cfg = (world.venv / "pyvenv.cfg").read_text()
    assert f"home = {world.base_python.parent}\n" in cfg, cfg
    assert stamp["facts"]["python"] == str(world.base_python)
    kinds = [e["event"] for e in world.log_events()]
    assert kinds[0] == "auto_bootstrap" and "stamp" in kinds
    # Then separated with that venv: outputs pulled and verified.
    (entry,) = body["result"]["outputs"]
    job = world.base / "jobs" / body["result"]["job_id"]
    for kind in ("target", "residual"):
        assert sha256(Path(entry[kind])) == entry[f"{kind}_sha256"]
        assert sha256(job / "out" / f"d0_{kind}.wav") == entry[f"{kind}_sha256"]
    assert GOOD_TOKEN not in result.output and GOOD_TOKEN not in world.log.read_text()


def test_a_provisioned_host_is_used_without_a_question(world, cli_env):
    before = len(world.log_events())
    result, body = invoke("separate", world.audio, "--desc", "whistle", "--host", "gpu")
    assert result.exit_code == 0, result.output
    assert len(world.log_events()) == before  # no bootstrap, not even an inspection
    assert Path(body["result"]["outputs"][0]["target"]).exists()


def test_a_stale_stamp_counts_as_not_provisioned(world, cli_env, tmp_path):
    changed = write_hosts_file(tmp_path / "hosts.yaml",
                               {"gpu": {**world.entry, "pins": ["soxr>=0.3"]}})
    result, body = invoke("separate", world.audio, "--desc", "x", "--host", "gpu",
                          "--hosts", changed, "--out", tmp_path / "x")
    assert result.exit_code == NOT_PROVISIONED, result.output
    assert "install plan for gpu changed" in body["error"]["message"]


def test_a_profile_python_is_never_bootstrapped_over(world, cli_env, tmp_path):
    fresh = tmp_path / "fresh base"
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": {
        **world.entry, "path": str(fresh), "python": "/nope/python3"}})
    before = len(world.log_events())
    result, body = invoke("separate", world.audio, "--desc", "x", "--host", "gpu", "--yes",
                          "--hosts", hosts, "--out", tmp_path / "x")
    assert result.exit_code == NOT_PROVISIONED, result.output
    assert "/nope/python3" in body["error"]["message"]
    assert not (fresh / "venv").exists() and len(world.log_events()) == before


def test_bootstrap_builds_from_base_python_and_warns_about_python(world, cli_env, tmp_path):
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": {
        **world.entry, "path": str(tmp_path / "other"), "python": sys.executable}})
    run = subprocess.run(
        [sys.executable, "-c", "from remote_sep.cli.main import main; main()", "bootstrap", "gpu",
         "--dry-run", "--hosts", str(hosts)], env=world.env(), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120)
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stderr.split())  # rich may wrap long lines
    assert f"the profile sets python: {sys.executable}" in text
    assert f"create the venv with {world.base_python}" in text
    assert "CPU wheels" in text  # the profile's `cpu: true` is honoured without --cpu
