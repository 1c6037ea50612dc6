"""Plain data of one host's part of a batch: what the view shows, how the worker behaves."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from remote_sep.provision.auto import ReadyOptions


@dataclass
class HostStatus:
    """What the view shows for one host (written by its thread, read by the view)."""

    name: str
    # connecting|bootstrapping|loading|running|retrying|lost|done|failed|detached
    state: str = "connecting"
    current: str | None = None  # label of the unit on the GPU
    chunk: tuple[int, int] | None = None
    done: int = 0
    loads: int = 0
    busy_seconds: float = 0.0
    message: str | None = None
    kind: str | None = None  # why the host left the batch
    hint: str | None = None  # what to do about it (e.g. `remote-sep bootstrap NAME`)
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds_per_item(self) -> float | None:
        return self.busy_seconds / self.done if self.done else None


@dataclass
class WorkerOptions:
    ahead: int = 2  # units in the remote inbox beyond the one on the GPU (at least)
    max_ahead: int = 16  # a slow link may raise it up to this (batch/pipe.py queue_depth)
    retry_budget: int = 3  # consecutive link failures before releasing the host's units
    backoff: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
    max_restarts: int = 1  # worker deaths tolerated per host
    poll: float = 0.03  # seconds between event reads when nothing happened
    liveness_every: float = 2.0  # check the worker pid after this long without events
    give_up_s: float = 60.0  # a host failing this long leaves the batch
    close_wait_s: float = 5.0  # at the end: time to close workers of hosts we lost touch with
    # --worker-idle-timeout: a worker whose laptop is gone this long exits (None: the
    # profile's worker_idle_timeout, else the payload's 900 s; 0: never).
    idle_timeout: float | None = None
    # May an unprovisioned host be bootstrapped (--yes, a question)? Default: no, it fails.
    ready: ReadyOptions = field(default_factory=ReadyOptions)


class HostReady:
    """The batch's ReadyOptions for one host: the view shows it bootstrapping, and a yes
    answered once is not asked again when a reconnect prepares the host anew."""

    def __init__(self, base: ReadyOptions, status: HostStatus):
        self.base, self.status, self.agreed = base, status, False

    def options(self) -> ReadyOptions:
        base = self.base

        def ask(question: str) -> bool:
            assert base.ask is not None
            self.agreed = self.agreed or base.ask(question)
            return self.agreed

        def report(event: dict[str, Any]) -> None:
            if event.get("event") == "auto_bootstrap":
                self.status.state, self.status.message = "bootstrapping", None
            base.report(event)

        return replace(base, assume_yes=base.assume_yes or self.agreed, report=report,
                       ask=ask if base.ask is not None else None)
