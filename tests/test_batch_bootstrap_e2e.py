"""`batch` on a host that is not provisioned: refuse (no --yes, no terminal; "n" on a real
pty), or bootstrap it once with --yes and run every unit (real loopback sshd, real venv and
pip, the stand-in sam_audio, a Hub stand-in on 127.0.0.1).

One host and one real bootstrap for the module (the `world` of test_auto_bootstrap_e2e:
no `python` in the profile, the venv built from `base_python`). The refusals run first, on
the still-empty host.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from batch_helpers import check_outputs, make_songs
from hub_standin import GOOD_TOKEN
from test_auto_bootstrap_e2e import (  # noqa: F401 - fixtures: one world for this module
    NOT_PROVISIONED,
    cli_env,
    invoke,
    run_in_terminal,
    world,
)

from remote_sep.provision.auto import serialized

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def songs(world):  # noqa: F811
    return make_songs(world.root / "songs", 3)


def batch_args(world, songs, out: Path, *descs: str) -> list[object]:  # noqa: F811
    args: list[object] = ["batch", *songs]
    for desc in descs:
        args += ["--desc", desc]
    return [*args, "--hosts", "gpu", "--out-dir", out]


def test_without_yes_or_a_terminal_the_host_fails_not_provisioned(world, songs, cli_env,  # noqa: F811
                                                                  tmp_path):
    result, body = invoke(*batch_args(world, songs, tmp_path / "out", "bass hum"))
    # Every unit failed for the one reason: the batch exits with it (docs/batch.md).
    assert result.exit_code == NOT_PROVISIONED, result.output
    assert body["error"]["kind"] == "not_provisioned"
    assert "remote-sep bootstrap gpu" in body["error"]["hint"] and "--yes" in body["error"]["hint"]
    items = body["result"]["items"]
    assert len(items) == 3
    assert all(i["status"] == "failed" and i["kind"] == "not_provisioned" for i in items)
    assert "host gpu is not provisioned" in items[0]["message"]
    assert not world.venv.exists() and world.log_events() == []


def test_answering_no_on_a_terminal_installs_nothing(world, songs, tmp_path):  # noqa: F811
    argv = [sys.executable, "-c", "from remote_sep.cli.main import main; main()",
            *map(str, batch_args(world, songs, tmp_path / "out", "bass hum"))]
    code, output = run_in_terminal(argv, world.env(), answer="n")
    assert "Host gpu is not provisioned" in output and "[y/N]" in output, output
    assert code == NOT_PROVISIONED, output
    assert "bootstrap declined" in output and "remote-sep bootstrap gpu" in output
    assert output.count("Bootstrap it now?") == 1  # asked once, not per unit or retry
    assert not world.venv.exists() and world.log_events() == []


def test_yes_bootstraps_once_then_runs_every_unit(world, songs, cli_env, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    result, body = invoke(*batch_args(world, songs, out, "bass hum", "whistle"), "--yes")
    assert result.exit_code == 0, result.output
    check_outputs(out, body["result"]["items"], expected_units=6)
    assert body["result"]["loads"] == {"gpu": 1}  # one worker, the model loaded once
    # Bootstrapped once, from base_python, and the venv ran the units.
    kinds = [e["event"] for e in world.log_events()]
    assert kinds.count("auto_bootstrap") == 1 and kinds.count("stamp") == 1
    assert all(e["host"] == "gpu" for e in world.log_events())
    stamp = json.loads((world.venv / "remote-sep-stamp.json").read_text())
    assert stamp["complete"] and stamp["facts"]["python"] == str(world.base_python)
    # The outputs are the remote worker's files, byte for byte.
    (job,) = [p for p in (world.base / "jobs").iterdir() if (p / "inbox").exists()]
    remote = {p.read_bytes() for p in (job / "out").glob("*.wav")}
    assert {Path(o["path"]).read_bytes() for i in body["result"]["items"]
            for o in i["outputs"].values()} == remote
    assert GOOD_TOKEN not in world.log.read_text() + result.output  # the token never shows


def test_a_provisioned_host_is_used_without_a_bootstrap(world, songs, cli_env, tmp_path):  # noqa: F811
    before = len(world.log_events())
    result, body = invoke(*batch_args(world, songs[:1], tmp_path / "out", "crowd"))
    assert result.exit_code == 0, result.output
    check_outputs(tmp_path / "out", body["result"]["items"], expected_units=1)
    assert len(world.log_events()) == before  # no bootstrap, no question


def test_the_token_source_runs_one_call_at_a_time():
    inside, most = [0], [0]
    lock = threading.Lock()

    def slow_source(remote_has_token: bool) -> str | None:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # long enough for the other thread to try to enter
        with lock:
            inside[0] -= 1
        return "tok"

    source = serialized(slow_source)
    threads = [threading.Thread(target=source, args=(False,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1


TWO_HOSTS_ASK = """
import sys, threading
from contextlib import nullcontext
from remote_sep.cli.ready import ready_options
from remote_sep.provision.auto import serialized
opts = ready_options(yes=True, pause=nullcontext, say=lambda host, line: None)
source, got = serialized(opts.token_source), []
threads = [threading.Thread(target=lambda: got.append(source(False))) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
print("tokens:", sorted(got) == ["hf_typed_once"] * 2, flush=True)
"""


def test_a_token_typed_once_serves_every_host(tmp_path):
    """Two host threads need a token and none is found locally: one hidden prompt on the
    real terminal, and both hosts get what was typed."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code, output = run_in_terminal([sys.executable, "-c", TWO_HOSTS_ASK], env,
                                   answer="hf_typed_once", prompt="Hugging Face token",
                                   timeout=30)
    assert code == 0, output
    assert output.count("Hugging Face token") == 1, output
    assert "tokens: True" in output and "hf_typed_once" not in output  # typed hidden
