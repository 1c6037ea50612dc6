"""A file under an output's final name is always complete: the payload is killed by pid
(SIGKILL, no cleanup) in the middle of writing a big output while a watcher looks at the
output folder the whole time. A writer that wrote straight to the final name fails this."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from payload_util import of, read_events, standin_env, write_audio

from remote_payload.audio_io import recorded_output
from remote_payload.manifest import Item, Manifest, Settings

FINAL_SUFFIXES = ("_target.wav", "_residual.wav")


class Watcher(threading.Thread):
    """Records the size of every final-named output each time it looks (about every ms)."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder = folder
        self.seen: dict[str, set[int]] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                names = os.listdir(self.folder)
            except FileNotFoundError:
                names = []
            for name in names:
                if name.endswith(FINAL_SUFFIXES):
                    try:
                        size = os.path.getsize(self.folder / name)
                    except FileNotFoundError:
                        continue
                    self.seen.setdefault(name, set()).add(size)
            time.sleep(0.001)


def test_killed_mid_write_leaves_no_partial_file_under_a_final_name(tmp_path: Path):
    short = write_audio(tmp_path / "short.wav", seconds=0.5, rate=48000)
    long = write_audio(tmp_path / "long.wav", seconds=8.0, rate=48000)
    job = tmp_path / "job"
    out = job / "out"
    out.mkdir(parents=True)
    settings = Settings(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25, batch_size=1)
    items = [Item("a", str(short), ["voice"], ["out/a"]), Item("b", str(long), ["voice"],
                                                                  ["out/b"])]
    (job / "manifest.json").write_text(Manifest("w", settings, items).to_json())
    watcher = Watcher(out)
    watcher.start()
    proc = subprocess.Popen([sys.executable, "-m", "remote_payload", "run", "--manifest",
                             "manifest.json", "--events", "events.jsonl"], cwd=job,
                            env=standin_env(SAM_STANDIN_SECONDS_PER_SECOND="0.3"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:  # b's outputs are being written: several of its chunks are out
            chunks = [e for e in of(read_events(job / "events.jsonl"), "chunk")
                      if e["item"] == "b"]
            if chunks and 4 <= chunks[-1]["done"] < chunks[-1]["total"]:
                break
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        writing = os.listdir(out)
        proc.kill()  # SIGKILL by pid: nothing gets to clean up
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.halt.set()
        watcher.join()
    events = read_events(job / "events.jsonl")
    assert [e["item"] for e in of(events, "item_done")] == ["a"]
    finals = sorted(name for name in os.listdir(out) if name.endswith(FINAL_SUFFIXES))
    assert finals == ["a_residual.wav", "a_target.wav"]  # nothing of b under a final name
    for name in finals:  # a's are complete and match their records
        assert recorded_output(str(out / name)) is not None
        assert watcher.seen[name] == {os.path.getsize(out / name)}  # never seen partial
    assert set(watcher.seen) == set(finals)
    assert any(name.startswith(".b_") for name in writing)  # it was killed mid-write
