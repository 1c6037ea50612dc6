"""One host's part of a batch: a thread that keeps one long-lived payload worker fed.

Loop: keep the remote inbox ``ahead`` units ahead (upload the next input while the GPU
works), read new events by offset, pull each unit's outputs as soon as its ``item_done``
arrives (sha256-verified, tmp + rename), and report to the shared WorkQueue.

Failures: a link error reconnects with back-off; beyond ``retry_budget`` consecutive
failures the host's unfinished units go back to the shared queue, but the thread keeps
trying (slowly) so that outputs its worker finished meanwhile are still pulled. A worker
that dies is restarted once per ``max_restarts``; its unfinished units are released.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remote_payload.protocol import BYE, CHUNK, ERROR, ITEM_DONE, ITEM_START, LOAD
from remote_sep import jobs
from remote_sep.batch_plan import Unit
from remote_sep.batch_queue import DONE, FAILED, QUEUED, SKIPPED, WorkQueue
from remote_sep.batch_remote import WorkerJob, old_job_events, prepare, retire_jobs
from remote_sep.batch_state import BatchState
from remote_sep.errors import AuthFailed, ConfigError, HostKeyError, NotProvisioned, RemoteSepError
from remote_sep.profile_model import HostProfile

# Connection failures no retry will fix: the host leaves the batch at once.
FATAL_HOST_ERRORS = (AuthFailed, HostKeyError, NotProvisioned, ConfigError)


@dataclass
class HostStatus:
    """What the view shows for one host (written by its thread, read by the view)."""

    name: str
    state: str = "connecting"  # connecting|loading|running|retrying|lost|done|failed|detached
    current: str | None = None  # label of the unit on the GPU
    chunk: tuple[int, int] | None = None
    done: int = 0
    loads: int = 0
    busy_seconds: float = 0.0
    message: str | None = None
    kind: str | None = None  # why the host left the batch
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds_per_item(self) -> float | None:
        return self.busy_seconds / self.done if self.done else None


@dataclass
class WorkerOptions:
    ahead: int = 2  # units in the remote inbox beyond the one on the GPU
    retry_budget: int = 3  # consecutive link failures before releasing the host's units
    backoff: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
    max_restarts: int = 1  # worker deaths tolerated per host
    poll: float = 0.03  # seconds between event reads when nothing happened
    liveness_every: float = 2.0  # check the worker pid after this long without events
    give_up_s: float = 60.0  # a host failing this long leaves the batch


class HostWorker(threading.Thread):
    def __init__(self, profile: HostProfile, queue: WorkQueue, state: BatchState,
                 fingerprints: dict[str, str], settings: dict[str, Any],
                 input_shas: dict[Path, str], connect: Callable[[HostProfile], Any],
                 stop: threading.Event,
                 options: WorkerOptions | None = None):
        super().__init__(name=f"batch-{profile.name}", daemon=True)
        self.profile = profile
        self.queue = queue
        self.state = state
        self.fingerprints = fingerprints
        self.settings = settings
        self.input_shas = input_shas
        self.connect_fn = connect
        self.stop = stop  # set: detach now (second Ctrl-C or fatal error)
        self.opts = options or WorkerOptions()
        self.status = HostStatus(profile.name)
        self.job: WorkerJob | None = None
        self._restarts = 0
        self._started_ids: list[str] = []  # job ids this thread tried to start

    @property
    def host_name(self) -> str:
        return self.profile.name

    def run(self) -> None:
        failures, released, failing_since = 0, False, 0.0
        while not self.stop.is_set():
            if self.queue.all_settled() and (released or not self._waiting()):
                break
            host = None
            try:
                host = self.connect_fn(self.profile)
                if self.job is None:
                    self.status.state = "loading"
                    self._recover(host)
                    job_id = jobs.new_job_id()
                    self._started_ids.append(job_id)  # if the start fails half-way: retire it
                    self.job = WorkerJob.start(host, self.profile, self.settings,
                                               self.input_shas, job_id)
                else:
                    self.job.host = host
                failures, released = 0, False
                self.status.state, self.status.message = "running", None
                self._pump()
                if not self.stop.is_set():
                    self.job.close_inbox()
                break
            except FATAL_HOST_ERRORS as exc:
                self._give_up(str(exc).splitlines()[0], exc.kind)
                return
            except _WorkerDied as exc:
                self.status.message = str(exc)
                self.queue.release(self.host_name)
                self.job = None
                self._restarts += 1
                if self._restarts > self.opts.max_restarts:
                    self._give_up(str(exc), "job_failed")
                    return
            except Exception as exc:  # link errors: EOF, socket, SSH, transfer
                failures += 1
                failing_since = failing_since if failures > 1 else time.monotonic()
                self.status.message = _short(exc)
                if failures > self.opts.retry_budget and not released:
                    self.queue.release(self.host_name)  # others take them; we may still pull
                    released = True
                if time.monotonic() - failing_since > self.opts.give_up_s:
                    self._give_up(self.status.message)
                    return
                self.status.state = "lost" if released else "retrying"
                self.stop.wait(self.opts.backoff[min(failures, len(self.opts.backoff)) - 1])
            finally:
                if host is not None:
                    _close_quietly(host)
        self.status.state = "detached" if self.stop.is_set() else "done"
        self.status.current, self.status.chunk = None, None

    def _recover(self, host: Any) -> None:
        """Pull what earlier workers of this batch finished (a previous run that detached or
        lost its link, or a start cut off half-way), then retire those workers."""
        previous = {}  # job id -> {item id: unit}
        for unit in self.queue.units.values():
            record = self.state.sent.get(unit.key)
            if (record and record.get("host") == self.host_name
                    and record.get("fingerprint") == self.fingerprints[unit.key]
                    and self.queue.results[unit.key].status == QUEUED):
                previous.setdefault(record["job"], {})[record["item"]] = unit
        old_ids = list(dict.fromkeys([*previous, *self._started_ids]))
        if not old_ids:
            return
        ready = prepare(host, self.profile)
        for job_id, items in previous.items():
            old = WorkerJob(host, self.profile, jobs.JobPaths(ready.base, job_id), 0,
                            self.input_shas)
            old.items = dict(items)
            for event in old_job_events(host, ready.base, job_id):
                unit = old.unit_of(event.get("item"))
                if event.get("event") == ITEM_DONE and unit is not None:
                    self._pull(old, unit, event)
        retire_jobs(host, ready.base, old_ids)
        self._started_ids.clear()

    def _give_up(self, message: str, kind: str = "unreachable") -> None:
        self.status.state, self.status.message, self.status.kind = "failed", message, kind
        self.status.current, self.status.chunk = None, None
        self.queue.release(self.host_name)

    def _waiting(self) -> bool:
        """Does our worker still hold units nobody has finished?"""
        if self.job is None:
            return False
        for key in list(self.job.inflight):
            if self.queue.results[key].status in (DONE, SKIPPED, FAILED):
                del self.job.inflight[key]  # finished elsewhere (after a failover)
        return bool(self.job.inflight)

    # --- the steady state --------------------------------------------------------------
    def _pump(self) -> None:
        job = self.job
        assert job is not None
        quiet_since = time.monotonic()
        while not self.stop.is_set():
            busy = self._feed(job)
            events = job.handle_events(self._on_event)
            if events:
                quiet_since = time.monotonic()
            if self.queue.all_settled() and not self._waiting():
                return
            if job.ended:
                raise _WorkerDied(f"worker ended early ({job.end_reason})")
            if busy or events:
                continue
            if time.monotonic() - quiet_since > self.opts.liveness_every:
                quiet_since = time.monotonic()
                if not job.alive():
                    job.handle_events(self._on_event)
                    if job.inflight or not job.ended:
                        raise _WorkerDied("worker process died")
            self.queue.wait(self.opts.poll)

    def _feed(self, job: WorkerJob) -> bool:
        """Keep the inbox topped up; returns whether it sent something."""
        sent = False
        while len(job.inflight) <= self.opts.ahead and not self.stop.is_set():
            unit = self.queue.take(self.host_name)
            if unit is None:
                break
            try:
                item = job.submit(unit)
            except BaseException:
                job.inflight.pop(unit.key, None)
                self.queue.give_back(unit.key, self.host_name)  # if it did land, we still pull
                raise
            self.state.mark_sent(unit, self.fingerprints[unit.key], self.host_name,
                                 job.job_id, item)
            sent = True
        return sent

    def _on_event(self, job: WorkerJob, event: dict[str, Any]) -> None:
        name = event.get("event")
        unit = job.unit_of(event.get("item"))
        if name == LOAD:
            self.status.loads += 1
            self.status.state = "running"
        elif name == ITEM_START and unit is not None:
            self.status.state, self.status.current = "running", unit.label
            self.status.chunk = (0, int(event.get("chunks") or 0))
            job.started_at[unit.key] = time.monotonic()
        elif name == CHUNK and unit is not None:
            self.status.chunk = (int(event.get("done") or 0), int(event.get("total") or 0))
        elif name == ITEM_DONE and unit is not None:
            self._pull(job, unit, event)
        elif name == ERROR and unit is not None:
            job.inflight.pop(unit.key, None)
            self.queue.fail(unit.key, self.host_name, str(event.get("kind") or "internal"),
                            str(event.get("message") or "item failed"))
        elif name == BYE:
            job.ended, job.end_reason = True, f"bye, exit code {event.get('exit_code')}"

    def _pull(self, job: WorkerJob, unit: Unit, event: dict[str, Any]) -> None:
        outputs = event.get("outputs") or {}
        if self.queue.claim(unit.key, self.host_name):
            try:
                shas = job.pull(unit, outputs)
            except BaseException:
                self.queue.unclaim(unit.key)
                raise
            seconds = event.get("seconds")
            self.state.mark_done(unit, self.fingerprints[unit.key], shas, self.host_name)
            self.queue.complete(unit.key, self.host_name, shas, seconds)
            self.status.done += 1
            self.status.busy_seconds += float(seconds or 0)
        job.inflight.pop(unit.key, None)
        if self.status.current == unit.label:
            self.status.current, self.status.chunk = None, None


class _WorkerDied(RemoteSepError):
    kind = "job_failed"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:120]


def _close_quietly(host: Any) -> None:
    try:
        host.close()
    except Exception:  # a dead link may fail to close; nothing to save there
        pass
