"""The parts of a host's batch pipeline that run beside its pump thread, so that round trips
overlap the GPU work and each other on a slow link:

- ``EventFeed``: one streaming channel (``tail -f`` of events.jsonl) read by a thread; each
  event reaches the laptop half a round trip after the worker wrote it, with no polling.
- ``Uploader``: a thread that keeps the worker's inbox ``depth`` units deep, sending the
  units it takes in one bundle per round trip (``WorkerJob.submit_many``).
- ``queue_depth``: how deep that is: enough units to cover one upload round trip at the
  measured seconds per unit, bounded by ``max_ahead`` and by a fair share of what is left
  (a host must not hoard units that other hosts could run, nor that failover must move).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any


class EventFeed:
    """Reads ``command``'s stdout on a thread and hands each piece to ``on_data`` there."""

    def __init__(self, host: Any, command: str, on_data: Callable[[bytes], None],
                 wake: threading.Event):
        self._stream = host.stream(command)
        self._on_data, self._wake = on_data, wake
        self.ended = False  # the command ended (the worker exited, or tail could not run)
        self.error: BaseException | None = None  # the link failed while reading
        self._thread = threading.Thread(target=self._read, daemon=True, name="batch-events")
        self._thread.start()

    def _read(self) -> None:
        try:
            while data := self._stream.read():
                self._on_data(data)
                self._wake.set()
        except BaseException as exc:  # noqa: BLE001 - handed to the pump thread
            self.error = exc
        self.ended = True
        self._wake.set()

    def close(self) -> None:
        try:
            self._stream.close()
        except Exception:  # noqa: BLE001 - closing a dead link
            pass
        self._thread.join(timeout=2.0)


def queue_depth(*, base: int, max_ahead: int, item_s: float | None, link_s: float | None,
                fair_share: int, slots: int = 1) -> int:
    """Units to keep queued on the remote (beyond none): ``base + 1`` until both timings are
    known, then enough to cover two upload round trips (``link_s``) at ``item_s`` per unit
    plus ``base`` spare, never above ``max_ahead`` nor above ``fair_share`` (but >= 1).

    ``slots``: units the worker runs at once (a Ray driver: one per GPU actor). Each slot
    holds a unit of its own and they finish ``slots`` times as often, so the spare and the
    cap grow by the slots and the time per unit shrinks by them."""
    slots = max(1, slots)
    base += slots - 1
    max_ahead = max(max_ahead, 2 * slots)
    depth = base + 1
    if item_s is not None and link_s is not None:
        # A bundle is sent only once the previous one landed: the queue must last while
        # the GPU eats through one upload's worth of units and the next upload travels.
        depth = max(depth, math.ceil(2 * link_s / max(item_s / slots, 0.005)) + base)
    return max(1, min(depth, max_ahead, max(fair_share, base + 1)))


class Ewma:
    """A smoothed duration (the last value counts for ``weight``)."""

    def __init__(self, weight: float = 0.3):
        self.value: float | None = None
        self.weight = weight

    def add(self, sample: float) -> None:
        self.value = sample if self.value is None else \
            self.value + self.weight * (sample - self.value)


class Uploader(threading.Thread):
    """Keeps the inbox topped up: ``step()`` (supplied by the host worker) sends one bundle
    and says whether it sent anything; between steps it sleeps until woken."""

    def __init__(self, step: Callable[[], bool], wake: threading.Event, poll: float):
        super().__init__(daemon=True, name="batch-upload")
        self._step, self.wake, self._poll = step, wake, poll
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                if not self._step():
                    self.wake.wait(self._poll)
                    self.wake.clear()
        except BaseException as exc:  # noqa: BLE001 - handed to the pump thread
            self.error = exc

    def stop(self, timeout: float = 5.0) -> None:
        self.halt.set()
        self.wake.set()
        self.join(timeout)


def timed(fn: Callable[[], Any], into: Ewma) -> Any:
    started = time.monotonic()
    result = fn()
    into.add(time.monotonic() - started)
    return result
