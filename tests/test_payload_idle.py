"""Batch workers retire by themselves once the laptop's heartbeat is stale (orphaned workers
must not hold the GPU forever), and never while it is fresh."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from payload_util import drop, of, read_events, standin_env, write_audio

from remote_payload.audio_io import recorded_output
from remote_payload.manifest import Item, Manifest, Settings, item_to_json

IDLE_S = 2.0


def start_worker(tmp_path: Path, hold: Path) -> tuple[subprocess.Popen, Path, Path]:
    """A worker with a 2 s idle timeout and two items waiting; the first is held "on the
    GPU" for as long as ``hold`` exists."""
    audio = write_audio(tmp_path / "m.wav", seconds=0.5)
    job = tmp_path / "job"
    inbox = job / "inbox"
    inbox.mkdir(parents=True)
    settings = Settings(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25,
                        worker_idle_timeout=IDLE_S)
    (job / "manifest.json").write_text(Manifest("w", settings, []).to_json())
    drop(inbox, "0001-a.json", item_to_json(Item("a", str(audio), ["voice"], ["out/a"])))
    drop(inbox, "0002-b.json", item_to_json(Item("b", str(audio), ["voice"], ["out/b"])))
    proc = subprocess.Popen([sys.executable, "-m", "remote_payload", "run", "--manifest",
                             "manifest.json", "--events", "events.jsonl", "--inbox", "inbox"],
                            cwd=job, env=standin_env(SAM_STANDIN_HOLD=str(hold)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, job, inbox


def wait_event(job: Path, proc: subprocess.Popen, name: str, count: int = 1) -> None:
    deadline = time.monotonic() + 120
    while len(of(read_events(job / "events.jsonl"), name)) < count:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"no {name} event"
        time.sleep(0.05)


def test_worker_without_heartbeat_retires_after_its_item_with_outputs_intact(tmp_path: Path):
    hold = tmp_path / "hold"
    hold.write_text("")
    proc, job, inbox = start_worker(tmp_path, hold)
    try:
        wait_event(job, proc, "item_start")
        time.sleep(IDLE_S + 0.5)  # no heartbeat: stale while item a runs
        assert proc.poll() is None  # the running item is never abandoned
        hold.unlink()
        assert proc.wait(timeout=60) == 0
    finally:
        hold.unlink(missing_ok=True)
        if proc.poll() is None:
            proc.kill()
    events = read_events(job / "events.jsonl")
    (done,) = of(events, "item_done")
    assert done["item"] == "a"
    for output in done["outputs"].values():  # complete and matching its record
        assert recorded_output(output["path"]) == output["sha256"]
    (warning,) = of(events, "warning")
    assert warning["code"] == "idle_timeout" and "worker_idle_timeout" in warning["message"]
    bye = events[-1]
    assert bye["event"] == "bye" and bye["retired"] == "idle" and bye["exit_code"] == 0
    assert bye["ok"] and bye["items_done"] == 1
    assert [p.name for p in inbox.iterdir()] == ["0002-b.json"]  # left for a resume


def test_fresh_heartbeat_keeps_the_worker_then_it_retires_while_waiting(tmp_path: Path):
    hold = tmp_path / "hold"
    hold.write_text("")
    proc, job, inbox = start_worker(tmp_path, hold)
    beating = threading.Event()
    beating.set()

    def beat() -> None:  # what the laptop's event stream does, every 0.3 s here
        while beating.is_set():
            (job / "heartbeat").touch()
            time.sleep(0.3)

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        wait_event(job, proc, "item_start")
        time.sleep(IDLE_S + 0.5)
        hold.unlink()
        wait_event(job, proc, "item_done", 2)  # went on to item b
        time.sleep(IDLE_S + 0.5)  # idle on an empty inbox, heartbeat fresh: stays
        assert proc.poll() is None
        assert not of(read_events(job / "events.jsonl"), "warning")
        beating.clear()
        beater.join()
        stopped = time.monotonic()
        assert proc.wait(timeout=30) == 0  # no CLOSE: it retired by itself
        assert time.monotonic() - stopped < IDLE_S + 5
    finally:
        beating.clear()
        hold.unlink(missing_ok=True)
        if proc.poll() is None:
            proc.kill()
    events = read_events(job / "events.jsonl")
    assert [e["item"] for e in of(events, "item_done")] == ["a", "b"]
    assert events[-1]["event"] == "bye" and events[-1]["retired"] == "idle"
    assert not os.listdir(inbox)

