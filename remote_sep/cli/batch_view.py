"""The batch's rich view: an overall bar (units done / total, ETA), one line per host, and
the failures with their kind at the end. It only reads a BatchRun; it never acts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from remote_sep.batch.fleet import BatchReport, BatchRun
from remote_sep.batch.queue import DONE, FAILED, SKIPPED

DRAIN_NOTICE = ("Ctrl-C: no new units; waiting for the running ones "
                "(press Ctrl-C again to detach)")
STATE_STYLE = {"running": "green", "loading": "cyan", "bootstrapping": "magenta",
               "connecting": "cyan", "retrying": "yellow", "lost": "red",
               "failed": "bold red", "done": "dim", "detached": "yellow"}


def _eta(run: BatchRun, done_now: int, remaining: int, now: float) -> str:
    elapsed = now - run.started if run.started else 0.0
    if done_now <= 0 or remaining <= 0 or elapsed <= 0:
        return "--:--"
    seconds = int(elapsed / done_now * remaining)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def render(run: BatchRun, now: float | None = None) -> RenderableType:
    """The whole view for one refresh."""
    now = time.monotonic() if now is None else now
    counts = run.queue.counts()
    total = len(run.plan.units)
    finished = counts[DONE] + counts[SKIPPED] + counts[FAILED]
    head = Table.grid(padding=(0, 1))
    head.add_row(
        Text("batch", style="bold"),
        ProgressBar(total=max(total, 1), completed=finished, width=30),
        Text(f"{finished}/{total} units"),
        Text(f"ETA {_eta(run, counts[DONE], total - finished, now)}"),
        Text(f"{counts[FAILED]} failed" if counts[FAILED] else "", style="red"),
    )
    hosts = Table.grid(padding=(0, 2))
    for worker in run.workers:
        status = worker.status
        chunk = f"chunk {status.chunk[0]}/{status.chunk[1]}" if status.chunk else ""
        rate = f"{status.seconds_per_item:.1f} s/unit" if status.seconds_per_item else ""
        hosts.add_row(
            Text(status.name, style="bold"),
            Text(status.state, style=STATE_STYLE.get(status.state, "")),
            Text(status.current or "", overflow="ellipsis", no_wrap=True),
            Text(chunk), Text(f"{status.done} done"), Text(rate),
            Text(status.message or "", style="dim", overflow="ellipsis", no_wrap=True),
        )
    parts: list[RenderableType] = [head, hosts]
    if run.interrupts == 1:
        parts.append(Text(DRAIN_NOTICE, style="yellow"))
    return Group(*parts)


def render_failures(report: BatchReport) -> RenderableType | None:
    failed = report.failed
    if not failed:
        return None
    table = Table(title=f"{len(failed)} failed", title_style="bold red", show_edge=False)
    for column in ("input", "description", "kind", "message"):
        table.add_column(column)
    for item in failed:
        # Text, not str: a table cell string is read as markup ("[live]" in a name).
        table.add_row(Text(item["input"]), Text(item["description"]), Text(item["kind"] or ""),
                      Text(item["message"] or ""))
    return table


class LiveView:
    """Drives rich.Live from fleet.run_batch's on_tick (or stays silent)."""

    def __init__(self, console: Console, enabled: bool = True):
        self.console = console
        self.enabled = enabled
        self._live: Live | None = None
        self._said_drain = False
        self._lock = threading.Lock()  # ticks come from the main thread, pauses from hosts'
        self._paused = 0

    def tick(self, run: BatchRun) -> None:
        if not self.enabled:
            if run.interrupts == 1 and not self._said_drain:  # no live view: say it once
                self._said_drain = True
                self.console.print(DRAIN_NOTICE, markup=False)
            return
        with self._lock:
            if self._paused:
                return
            if self._live is None:
                self._live = Live(render(run), console=self.console, refresh_per_second=8,
                                  transient=False)
                self._live.start()
            else:
                self._live.update(render(run))

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop redrawing while a host thread asks the user something on the terminal
        (bootstrap question, token prompt); the next tick draws the view again."""
        with self._lock:
            self._paused += 1
            if self._live is not None:
                self._live.stop()
                self._live = None
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
