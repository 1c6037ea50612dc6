"""Batch worker mode: one load, items taken from an inbox folder until CLOSE."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from payload_util import drop, of, read_events, standin_env, write_audio

from remote_payload.manifest import Item, Manifest, Settings, item_to_json


def test_worker_takes_items_in_order_and_exits_on_close(tmp_path: Path):
    audio = write_audio(tmp_path / "m.wav", seconds=1.0)
    job = tmp_path / "job"
    inbox = job / "inbox"
    inbox.mkdir(parents=True)
    loads = tmp_path / "loads.log"
    settings = Settings(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25)
    first = Item("m0", str(audio), ["voice"], ["out/m0"])
    (job / "manifest.json").write_text(Manifest("w", settings, [first]).to_json())
    proc = subprocess.Popen([sys.executable, "-m", "remote_payload", "run", "--manifest",
                             "manifest.json", "--events", "events.jsonl", "--inbox", "inbox"],
                            cwd=job, env=standin_env(SAM_STANDIN_LOAD_LOG=str(loads)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        drop(inbox, "0002-b.json", item_to_json(Item("b", str(audio), ["bass"], ["out/b"])))
        drop(inbox, "0001-a.json", item_to_json(Item("a", str(audio), ["voice"], ["out/a"])))
        drop(inbox, "0003-bad.json", "{not json")
        deadline = time.monotonic() + 120
        while len(of(read_events(job / "events.jsonl"), "item_done")) < 3:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert proc.poll() is None  # idle worker waits for more
        drop(inbox, "0004-c.json", item_to_json(Item("c", str(audio), ["voice"], ["out/c"])))
        (inbox / "CLOSE").write_text("")
        assert proc.wait(timeout=120) == 4  # the bad item file: bad_config, others ran
    finally:
        if proc.poll() is None:
            proc.kill()
    events = read_events(job / "events.jsonl")
    assert [e["item"] for e in of(events, "item_done")] == ["m0", "a", "b", "c"]
    assert [e["file"] for e in of(events, "error")] == ["0003-bad.json"]
    assert len(loads.read_text().splitlines()) == 1
    assert sorted(p.name for p in (job / "taken").iterdir()) == [
        "0001-a.json", "0002-b.json", "0003-bad.json", "0004-c.json"]
    assert [p.name for p in inbox.iterdir()] == ["CLOSE"]
    assert events[-1]["event"] == "bye" and events[-1]["items_done"] == 4
