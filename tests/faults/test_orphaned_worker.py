"""The laptop dies mid-batch (SIGKILL by pid): over a real sshd, the remote worker notices
that its heartbeat went stale, retires by itself (freeing the GPU), and a rerun of the same
batch resumes and delivers every output correctly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_helpers import check_outputs, events, fleet, make_songs, remote_jobs

pytestmark = pytest.mark.e2e

IDLE_S = 4


def pulled(out: Path) -> int:
    try:
        return len(json.loads((out / ".remote-sep-batch.json").read_text())["done"])
    except (OSError, ValueError, KeyError):
        return 0


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_killed_laptop_its_worker_retires_and_a_rerun_resumes(tmp_path, make_ssh_server):
    make_songs(tmp_path / "in", 10)
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a")},
                          SAM_STANDIN_SECONDS_PER_SECOND="0.6")
    out = tmp_path / "out"
    argv = [sys.executable, "-c", "from remote_sep.cli.main import main; main()", "batch",
            str(tmp_path / "in"), "-d", "drums", "--hosts", "gpu1", "--hosts-file",
            str(hosts_file), "-o", str(out), "--json", "--worker-idle-timeout", str(IDLE_S)]
    laptop = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: pulled(out) >= 1, 120, "a first unit pulled")
        (job,) = remote_jobs(tmp_path, "gpu1")
        assert (job / "heartbeat").exists()  # the laptop's stream keeps it fresh
        worker = int((job / "pid").read_text())
        assert running(worker)
    finally:
        laptop.send_signal(signal.SIGKILL)  # by pid: no goodbye, the link just drops
        laptop.wait()
    killed = time.monotonic()
    state = json.loads((out / ".remote-sep-batch.json").read_text())
    known_sent = {record["item"] for record in state["sent"].values()
                  if record["job"] == job.name}
    assert "bye" not in {e["event"] for e in events(job)}  # mid-batch
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["settings"]["worker_idle_timeout"] == IDLE_S
    try:  # it finishes what it runs, then sees a stale heartbeat and exits by itself
        wait_for(lambda: not running(worker), IDLE_S + 30, "the orphaned worker to exit")
    finally:
        if running(worker):
            os.kill(worker, signal.SIGKILL)
    assert time.monotonic() - killed < IDLE_S + 30
    bye = events(job)[-1]
    assert bye["event"] == "bye" and bye["retired"] == "idle" and bye["exit_code"] == 0
    finished_there = {e["item"] for e in events(job) if e["event"] == "item_done"}

    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    items = json.loads(rerun.stdout)["result"]["items"]
    check_outputs(out, items, 10)  # every output there, with the sha256 the remote gave
    rerun_jobs = [j for j in remote_jobs(tmp_path, "gpu1") if j != job]
    ran_again = {e["item"] for j in rerun_jobs for e in events(j) if e["event"] == "item_done"}
    # what the laptop knew it had sent and the old worker finished is pulled, not run again
    # (a bundle still on its way when the laptop died is not recorded: those may run twice)
    assert not finished_there & known_sent & ran_again
