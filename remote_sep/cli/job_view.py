"""Rich rendering of a job's progress. ``JobState`` is plain data updated from the cores'
notifications; ``render`` only reads it; ``LiveView`` ties them to a rich Live display.

Times come from the events' own ``t`` stamps, so ETAs are the remote's view and the
rendering is deterministic for a given event list (tests render into a StringIO console).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text


@dataclass
class OutputProgress:
    description: str
    done: int = 0
    total: int = 0
    started_t: float | None = None
    last_t: float | None = None
    state: str = "waiting"  # waiting | running | done | failed

    @property
    def eta_s(self) -> float | None:
        if not self.done or self.started_t is None or self.last_t is None or not self.total:
            return None
        per_chunk = (self.last_t - self.started_t) / self.done
        return per_chunk * (self.total - self.done)


@dataclass
class JobState:
    header: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, OutputProgress] = field(default_factory=dict)  # "item/desc" -> progress
    transfer: tuple[str, int, int] | None = None  # name, done, total
    messages: list[str] = field(default_factory=list)  # warnings, errors, status, pulled

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        """Update from one notification (see jobs/follow.py for the kinds)."""
        if kind == "status":
            self.messages.append(str(data.get("message", "")))
        elif kind == "transfer":
            self.transfer = (str(data["name"]), int(data["done"]), int(data["total"]))
            if data["done"] >= data["total"]:
                self.transfer = None
        elif kind == "pulled":
            self.messages.append(f"wrote {data['path']}")
        elif kind == "event":
            self._apply_event(data)

    def _apply_event(self, event: dict[str, Any]) -> None:
        name, t = event.get("event"), event.get("t")
        if name == "hello":
            gpu = event.get("gpu_name") or event.get("device") or "?"
            torch = event.get("torch", "?")  # None from a Ray driver: torch runs on the actors
            self.header["device"] = gpu if torch is None else f"{gpu} (torch {torch})"
        elif name == "load":
            self.header["model"] = (f"{event.get('model', '?')} {event.get('dtype', '')} "
                                    f"loaded in {float(event.get('seconds') or 0):.1f} s")
        elif name == "item_start":
            progress = self._output(event)
            progress.total = int(event.get("chunks") or 0)
            progress.started_t = progress.last_t = t
            progress.state = "running"
        elif name == "chunk":
            progress = self._output(event)
            progress.done, progress.total = int(event.get("done", 0)), int(event.get("total", 0))
            progress.last_t = t
            progress.state = "running"
        elif name == "item_done":
            progress = self._output(event)
            progress.done = progress.total = max(progress.total, progress.done, 1)
            progress.state = "done"
        elif name == "warning":
            self.messages.append(f"warning: {event.get('message', '')}")
        elif name == "error":
            if event.get("item") is not None:
                self._output(event).state = "failed"
            self.messages.append(f"error ({event.get('kind')}): {event.get('message', '')}")

    def _output(self, event: dict[str, Any]) -> OutputProgress:
        key = f"{event.get('item')}/{event.get('desc') or 0}"
        if key not in self.outputs:
            self.outputs[key] = OutputProgress(str(event.get("description") or key))
        progress = self.outputs[key]
        if event.get("description"):
            progress.description = str(event["description"])
        return progress


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total) if total else 0
    return "█" * filled + "░" * (width - filled)


def render(state: JobState) -> RenderableType:
    """The whole view: header lines, one row per output, the current transfer."""
    parts: list[RenderableType] = [Text(f"{k}: {v}") for k, v in state.header.items()]
    if state.outputs:
        table = Table(show_header=True, box=None, pad_edge=False)
        for column in ("source", "progress", "chunks", "state", "eta"):
            table.add_column(column)
        for progress in state.outputs.values():
            table.add_row(Text(progress.description), _bar(progress.done, progress.total),
                          f"{progress.done}/{progress.total}", progress.state,
                          _duration(progress.eta_s) if progress.state == "running" else "")
        parts.append(table)
    if state.transfer:
        name, done, total = state.transfer
        pct = 100 * done / total if total else 100
        parts.append(Text(f"{name}: {_bar(done, total)} {pct:3.0f}% "
                          f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"))
    return Group(*parts)


class LiveView:
    """A notify callback that keeps a JobState and redraws it; messages print above."""

    def __init__(self, console: Console):
        self.console = console
        self.state = JobState()
        self._live = Live(console=console, refresh_per_second=4, transient=False,
                          get_renderable=lambda: render(self.state))

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        before = len(self.state.messages)
        self.state.apply(kind, data)
        for message in self.state.messages[before:]:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)
        self._live.refresh()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop redrawing while the user is asked something on the same terminal."""
        self._live.stop()
        try:
            yield
        finally:
            self._live.start()

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()
        shown = self.state.header or self.state.outputs or self.state.transfer
        if shown and not self.console.is_terminal:  # the last frame ends without a newline
            self.console.line()
