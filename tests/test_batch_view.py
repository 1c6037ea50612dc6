"""The batch view renders the run's state (rendered into a string console)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from rich.console import Console

from remote_sep.batch.fleet import BatchRun, _report
from remote_sep.batch.host_worker import HostWorker
from remote_sep.batch.plan import BatchPlan, Unit
from remote_sep.batch.queue import WorkQueue
from remote_sep.batch.state import BatchState
from remote_sep.cli.batch_view import render, render_failures
from remote_sep.hosts.profile import HostProfile


def text_of(renderable) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def make_run(tmp_path: Path) -> tuple[BatchRun, WorkQueue]:
    units = [Unit(key=f"k{i}", index=i, input=Path(f"/in/song{i}.wav"), description="drums",
                  outputs={"target": tmp_path / f"{i}_t.wav", "residual": tmp_path / f"{i}_r.wav"})
             for i in range(4)]
    queue = WorkQueue(units)
    workers = [HostWorker(HostProfile(name), queue, BatchState(tmp_path), {}, {}, {},
                          connect=lambda p: None, stop=threading.Event())
               for name in ("gpu1", "gpu2")]
    return BatchRun(BatchPlan(units, tmp_path), queue, workers, started=1.0), queue


def test_view_shows_overall_progress_hosts_and_drain_notice(tmp_path):
    run, queue = make_run(tmp_path)
    queue.take("gpu1")
    queue.claim("k0", "gpu1")
    queue.complete("k0", "gpu1", {}, 2.0)
    queue.take("gpu2")
    gpu1, gpu2 = (w.status for w in run.workers)
    gpu1.state, gpu1.done, gpu1.busy_seconds = "running", 1, 2.0
    gpu2.state, gpu2.current, gpu2.chunk = "retrying", "song1.wav [drums]", (3, 7)
    gpu2.message = "Unreachable: connection lost"
    text = text_of(render(run, now=11.0))
    assert "1/4 units" in text and "ETA 00:30" in text
    assert "gpu1" in text and "2.0 s/unit" in text and "1 done" in text
    assert "retrying" in text and "song1.wav [drums]" in text and "chunk 3/7" in text
    assert "connection lost" in text
    run.interrupts = 1
    assert "press Ctrl-C again to detach" in text_of(render(run, now=11.0))


def test_failures_are_listed_with_their_kind(tmp_path):
    run, queue = make_run(tmp_path)
    queue.take("gpu1")
    queue.fail("k0", "gpu1", "bad_audio", "not an audio file")
    for key in ("k1", "k2", "k3"):
        queue.skip(key)
    report = _report(run.plan, queue, run.workers, BatchState(tmp_path), detached=False)
    assert [i["status"] for i in report.items] == ["failed", "skipped", "skipped", "skipped"]
    text = text_of(render_failures(report))
    assert "1 failed" in text and "bad_audio" in text and "not an audio file" in text
