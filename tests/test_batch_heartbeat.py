"""The heartbeat the batch's event stream carries (batch/heartbeat.py), with real processes:
the remote loop beside tail, its bytes never reaching the event parser, its life tied to
the stream."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from remote_payload.protocol import LineBuffer, parse_event_line
from remote_sep.batch import heartbeat
from remote_sep.batch.worker_job import WorkerJob
from remote_sep.hosts.local import LocalHost
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs import layout

IDLE_S = 1.0  # beats every 0.25 s


def event_lines(count: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"v": 1, "seq": k, "event": "chunk", "item": "ü/\u0000"},
                               ensure_ascii=False).encode() + b"\n"
                    for k in range(start, start + count))


def test_beat_bytes_anywhere_in_the_stream_never_reach_the_events():
    data = event_lines(5)
    assert heartbeat.BEAT not in data  # json escapes NUL, even inside a string
    cut = [3, 40, 41, len(data) // 2, len(data) - 1]  # mid-line, line starts, the end
    streamed = b"".join(heartbeat.BEAT + data[a:b] for a, b in zip([0, *cut], [*cut, None],
                                                                   strict=True))
    job = WorkerJob(None, HostProfile("h"), layout.JobPaths("/b", "j"), 1, {})
    for piece in (streamed[i:i + 7] for i in range(0, len(streamed), 7)):
        job.add_data(piece)
    assert [e["seq"] for e in job.incoming] == list(range(5))
    assert job.cursor.offset == len(data) and job.cursor.problems == []  # exact file offset


def test_blank_lines_are_ignored_by_the_parser():
    buffer = LineBuffer()
    lines = buffer.feed(b"\n" + event_lines(1) + b"\n")
    parsed = [parse_event_line(line) for line in lines]
    assert [p.event is not None for p in parsed] == [False, True, False]
    assert layout.consume(layout.Cursor(), b"\n" + event_lines(2) + b"\n") \
        == [json.loads(line) for line in event_lines(2).splitlines()]


def reaped_sleep(seconds: float) -> subprocess.Popen:
    """Stands for the payload worker that tail --pid follows (reaped at once when it exits:
    a zombie would fool tail)."""
    proc = subprocess.Popen(["sleep", str(seconds)])
    threading.Thread(target=proc.wait, daemon=True).start()
    return proc


def follow(tmp_path: Path, pid: int, idle: float = IDLE_S
           ) -> tuple[LocalHost, object, Path, Path]:
    events, beat = tmp_path / "events.jsonl", tmp_path / "heartbeat"
    events.write_bytes(event_lines(3))
    script = heartbeat.follow_script(str(events), str(beat), 0, pid, idle)
    host = LocalHost()
    return host, host.stream(script), events, beat


def read_all(stream, until: float) -> bytes:
    got = b""
    while time.monotonic() < until and (data := stream.read()):
        got += data
    return got


def test_stream_beats_while_it_lives(tmp_path: Path):
    worker = reaped_sleep(2)
    _, stream, events, beat = follow(tmp_path, worker.pid)
    try:
        with open(events, "ab") as out:  # the worker goes on writing events
            out.write(event_lines(2, start=3))
        got = read_all(stream, time.monotonic() + 20)
    finally:
        stream.close()
        worker.kill()
    assert heartbeat.drop_beats(got) == events.read_bytes()
    assert got.count(heartbeat.BEAT) >= 5  # one about every 0.25 s for 2 s
    mtime = beat.stat().st_mtime
    time.sleep(0.6)
    assert beat.stat().st_mtime == mtime  # the loop was killed with tail


def test_stream_ends_with_tail_not_with_the_beats_sleep(tmp_path: Path):
    worker = reaped_sleep(1)
    _, stream, _, _ = follow(tmp_path, worker.pid, idle=400)  # a beat every 20 s
    try:
        started = time.monotonic()
        read_all(stream, started + 30)
        assert time.monotonic() - started < 8  # no beat loop or sleep kept it open
    finally:
        stream.close()
        worker.kill()


def test_a_closed_stream_stops_the_beat(tmp_path: Path):
    worker = reaped_sleep(30)
    _, stream, _, beat = follow(tmp_path, worker.pid)
    try:
        assert stream.read()
        stream.close()  # the laptop went away: the reader's end of the pipe is gone
        time.sleep(0.6)  # the next beat gets EPIPE
        mtime = beat.stat().st_mtime
        time.sleep(0.8)
        assert beat.stat().st_mtime == mtime
    finally:
        worker.kill()
    assert os.path.exists(beat)
