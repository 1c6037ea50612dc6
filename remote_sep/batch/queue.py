"""The shared local queue of a batch and its failover rules (pure, thread-safe, no I/O).

Host threads ``take`` units (a fast host takes more), ``claim`` a unit before pulling its
outputs (so two hosts never write the same output), then ``complete`` it. A host that is
lost ``release``s its unfinished units back to the front of the queue; if it comes back
and finishes one of them anyway, its result still counts when nobody finished it first.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from remote_sep.batch.plan import Unit

# Failures that will fail the same way on any host: not retried.
PERMANENT_KINDS = frozenset(
    {"bad_audio", "bad_description", "bad_config", "unknown_model", "gated", "auth"}
)

QUEUED, RUNNING, DONE, FAILED, SKIPPED = "queued", "running", "done", "failed", "skipped"


@dataclass
class UnitResult:
    status: str = QUEUED
    host: str | None = None
    kind: str | None = None
    message: str | None = None
    attempts: int = 0
    seconds: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # role -> sha256
    scores: dict | None = None  # the judge's scores of the target (--score)
    predicted_spans: list | None = None  # [[start_s, end_s], …] with predict_spans


class WorkQueue:
    def __init__(self, units: list[Unit], *, max_attempts: int = 3):
        self.units = {unit.key: unit for unit in units}
        self.results = {unit.key: UnitResult() for unit in units}
        self._queue: deque[str] = deque(unit.key for unit in units)
        self._owner: dict[str, str] = {}  # unit key -> host it is assigned to
        self._claims: dict[str, str] = {}  # unit key -> host pulling its outputs now
        self._max_attempts = max_attempts
        self._lock = threading.Condition()
        self.draining = False

    # --- what hosts call -------------------------------------------------------------
    def take(self, host: str) -> Unit | None:
        """The next unit for ``host``, or None when there is none to hand out now."""
        with self._lock:
            if self.draining or not self._queue:
                return None
            key = self._queue.popleft()
            self._owner[key] = host
            result = self.results[key]
            result.status, result.host = RUNNING, host
            result.attempts += 1
            return self.units[key]

    def claim(self, key: str, host: str) -> bool:
        """May ``host`` pull this unit's outputs? False when done or being pulled elsewhere."""
        with self._lock:
            if self.results[key].status in (DONE, SKIPPED) or key in self._claims:
                return False
            self._claims[key] = host
            return True

    def unclaim(self, key: str) -> None:
        with self._lock:
            self._claims.pop(key, None)
            self._lock.notify_all()

    def complete(self, key: str, host: str, outputs: dict[str, str], seconds: float | None,
                 scores: dict | None = None) -> None:
        with self._lock:
            self._claims.pop(key, None)
            self._owner.pop(key, None)
            if key in self._queue:  # released earlier, then finished by its old host anyway
                self._queue.remove(key)
            result = self.results[key]
            result.status, result.host, result.outputs = DONE, host, dict(outputs)
            result.seconds, result.kind, result.message = seconds, None, None
            result.scores = scores
            self._lock.notify_all()

    def fail(self, key: str, host: str, kind: str, message: str) -> None:
        """An item failed on ``host``: retry elsewhere unless permanent or out of attempts."""
        with self._lock:
            result = self.results[key]
            if result.status in (DONE, SKIPPED) or self._owner.get(key) != host:
                return  # someone else owns or finished it by now
            self._owner.pop(key, None)
            result.kind, result.message, result.host = kind, message, host
            if kind in PERMANENT_KINDS or result.attempts >= self._max_attempts:
                result.status = FAILED
            else:
                result.status = QUEUED
                self._queue.appendleft(key)
            self._lock.notify_all()

    def release(self, host: str) -> list[str]:
        """``host`` is lost: its unfinished units go back to the front of the queue."""
        with self._lock:
            keys = [k for k, owner in self._owner.items() if owner == host]
            for key in reversed(keys):
                del self._owner[key]
                result = self.results[key]
                result.status = QUEUED
                result.attempts = max(0, result.attempts - 1)  # not the unit's fault
                self._queue.appendleft(key)
            self._lock.notify_all()
            return keys

    def give_back(self, key: str, host: str) -> None:
        """One unit of ``host`` back to the front, no attempt used: ``host`` could not hand it
        to its worker, or took it back from the worker's inbox unrun (Ctrl-C). A unit that
        is no longer ``host``'s (released, finished elsewhere) stays as it is."""
        with self._lock:
            if self._owner.get(key) != host:
                return
            del self._owner[key]
            result = self.results[key]
            if result.status == RUNNING:
                result.status = QUEUED
                result.attempts = max(0, result.attempts - 1)
                self._queue.appendleft(key)
            self._lock.notify_all()

    def owned_by(self, host: str) -> list[str]:
        with self._lock:
            return [k for k, owner in self._owner.items() if owner == host]

    def skip(self, key: str) -> None:
        """Already done locally (resume): never handed out."""
        with self._lock:
            if key in self._queue:
                self._queue.remove(key)
            self.results[key].status = SKIPPED

    # --- what the coordinator asks ---------------------------------------------------
    def drain(self) -> None:
        """Stop handing out units; running ones finish."""
        with self._lock:
            self.draining = True
            self._lock.notify_all()

    def pending(self) -> int:
        """Units not yet finished for good (queued or running)."""
        with self._lock:
            return sum(r.status in (QUEUED, RUNNING) for r in self.results.values())

    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def running(self) -> int:
        with self._lock:
            return len(self._owner)

    def all_settled(self) -> bool:
        """Nothing left that any host could still do (drain: nothing running either)."""
        with self._lock:
            if self.draining:
                return not self._owner and not self._claims
            return not self._queue and not self._owner and not self._claims

    def wait(self, timeout: float) -> None:
        with self._lock:
            self._lock.wait(timeout)

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = {s: 0 for s in (QUEUED, RUNNING, DONE, FAILED, SKIPPED)}
            for result in self.results.values():
                out[result.status] += 1
            return out
