"""One host's part of a batch: a thread that keeps one long-lived payload worker fed.

Three activities overlap, on channels of one SSH connection (batch/pipe.py): an uploader
thread keeps the remote inbox deep enough to cover a round trip (bundles of units per
exec); an event feed streams events.jsonl as it grows; this thread handles the events and
pulls the outputs of every unit finished meanwhile in one bundle (sha256-verified, tmp +
rename), then reports to the shared WorkQueue.

Failures: a link error reconnects with back-off; beyond ``retry_budget`` consecutive
failures the host's unfinished units go back to the shared queue, but the thread keeps
trying (slowly) so that outputs its worker finished meanwhile are still pulled. Failures
count as consecutive until the host gets work done again (or its link stays up for
STABLE_LINK_S): a link that connects and drops at once leaves after ``give_up_s``. A worker
that dies is restarted once per ``max_restarts``; its unfinished units are released.
A local write error (this machine's disk full, an unwritable output) stops the whole batch:
no host can fix it, and a reconnect would only retry the same write.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remote_payload.protocol import BYE, CHUNK, ERROR, HELLO, ITEM_DONE, ITEM_START, LOAD
from remote_sep.batch.host_status import HostReady, HostStatus, WorkerOptions
from remote_sep.batch.pipe import EventFeed, Ewma, Uploader, queue_depth, timed
from remote_sep.batch.plan import Unit
from remote_sep.batch.queue import DONE, FAILED, QUEUED, SKIPPED, WorkQueue
from remote_sep.batch.state import BatchState
from remote_sep.batch.worker_job import WorkerJob, old_job_events, prepare, retire_jobs
from remote_sep.errors import AuthFailed, ConfigError, HostKeyError, NotProvisioned, RemoteSepError
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs import layout
from remote_sep.jobs.follow import error_from_event

# Connection failures no retry will fix: the host leaves the batch at once.
FATAL_HOST_ERRORS = (AuthFailed, HostKeyError, NotProvisioned, ConfigError)
# ... and the kinds of a failed automatic bootstrap (rerunning it would fail alike).
FATAL_HOST_KINDS = {"auth", "host_key", "not_provisioned", "bad_config", "gated", "no_gpu",
                    "unknown_model", "disk_full"}
STABLE_LINK_S = 10.0  # a connection that lasted this long was not a flapping one


class HostWorker(threading.Thread):
    def __init__(self, profile: HostProfile, queue: WorkQueue, state: BatchState,
                 fingerprints: dict[str, str], settings: dict[str, Any],
                 input_shas: dict[Path, str], connect: Callable[[HostProfile], Any],
                 stop: threading.Event,
                 options: WorkerOptions | None = None, fleet_size: int = 1):
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
        self.local_error: RemoteSepError | None = None  # set: it stopped the batch
        self._progress = 0  # events handled, bundles sent, units pulled
        self.fleet_size = fleet_size
        self._restarts = 0
        self._link_s = Ewma()  # seconds per upload bundle (round trips + bytes)
        self._started_ids: list[str] = []  # job ids this thread tried to start
        self._ready = HostReady(self.opts.ready, self.status)  # asks about bootstrap once
        self._worker_error: RemoteSepError | None = None  # the worker's own error event
        # The uploader's take + submit and the drain's withdrawal exclude each other, so a
        # unit is never submitted into an inbox that was already withdrawn and closed.
        self._submit_lock = threading.Lock()

    @property
    def host_name(self) -> str:
        return self.profile.name

    def run(self) -> None:
        failures, released, failing_since = 0, False, 0.0
        progress_seen, connected_at = 0, None
        while not self.stop.is_set():
            if self.queue.all_settled() and (released or not self._waiting()):
                break
            host, connected_at = None, None
            try:
                host = self.connect_fn(self.profile)
                connected_at = time.monotonic()
                if self.job is None:
                    self.status.state = "loading"
                    self._recover(host)
                    job_id = layout.new_job_id()
                    self._started_ids.append(job_id)  # if the start fails half-way: retire it
                    self._worker_error = None
                    self.job = WorkerJob.start(host, self.profile, self.settings,
                                               self.input_shas, job_id, self._ready.options(),
                                               idle_timeout=self.opts.idle_timeout)
                else:
                    self.job.host = host
                self.status.state, self.status.message = "running", None
                self._pump()
                if not self.stop.is_set():
                    self.job.close_inbox()
                break
            except FATAL_HOST_ERRORS as exc:
                self._give_up(str(exc).splitlines()[0], exc.kind, exc.hint)
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
                if isinstance(exc, RemoteSepError) and exc.local:
                    self._stop_batch(exc)
                    return
                if isinstance(exc, RemoteSepError) and exc.kind in FATAL_HOST_KINDS:
                    self._give_up(str(exc).splitlines()[0], exc.kind, exc.hint)
                    return  # e.g. a bootstrap that failed on the gated check
                # Not on every connect: a link that drops at once must not reset the count.
                if self._progress != progress_seen or (
                        connected_at is not None
                        and time.monotonic() - connected_at >= STABLE_LINK_S):
                    failures, released, progress_seen = 0, False, self._progress
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
        ready = prepare(host, self.profile, self._ready.options())
        for job_id, items in previous.items():
            old = WorkerJob(host, self.profile, layout.JobPaths(ready.base, job_id), 0,
                            self.input_shas)
            old.items = dict(items)
            self._pull_many(old, [e for e in old_job_events(host, ready.base, job_id)
                                  if e.get("event") == ITEM_DONE and old.unit_of(e.get("item"))])
        retire_jobs(host, ready.base, old_ids)
        self._started_ids.clear()

    def _give_up(self, message: str, kind: str = "unreachable",
                 hint: str | None = None) -> None:
        self.status.state, self.status.message, self.status.kind = "failed", message, kind
        self.status.hint = hint
        self.status.current, self.status.chunk = None, None
        self.queue.release(self.host_name)

    def _stop_batch(self, exc: RemoteSepError) -> None:
        """This machine cannot take the outputs: stop every host now (the fleet then tells
        the remote workers to finish what runs and exit); a rerun resumes."""
        self.local_error = exc
        self._give_up(exc.message, exc.kind, exc.hint)
        self.queue.drain()
        self.stop.set()

    def _waiting(self) -> bool:
        """Does our worker still hold units nobody has finished?"""
        if self.job is None:
            return False
        with self.job.lock:
            for key in list(self.job.inflight):
                if self.queue.results[key].status in (DONE, SKIPPED, FAILED):
                    del self.job.inflight[key]  # finished elsewhere (after a failover)
            return bool(self.job.inflight)

    def close_leftovers(self) -> None:
        """Best effort once the batch is over: a worker on a host we lost touch with (its
        units went to other hosts) still waits on its inbox. Drop its untaken items and
        close it, so it finishes what it holds and exits (bounded by the caller)."""
        job = self.job
        if job is None or job.closed:
            return
        host = self.connect_fn(self.profile)
        try:
            retire_jobs(host, job.paths.base, [job.job_id])
            job.closed = True
        finally:
            _close_quietly(host)

    # --- the steady state --------------------------------------------------------------
    def _pump(self) -> None:
        job = self.job
        assert job is not None
        events_wake, upload_wake = threading.Event(), threading.Event()
        job.upload_wake = upload_wake
        feed: EventFeed | None = EventFeed(job.host, job.follow_command(), job.add_data,
                                           events_wake)
        uploader = Uploader(lambda: self._feed(job), upload_wake, self.opts.poll)
        uploader.start()
        quiet_since = time.monotonic()
        try:
            while not self.stop.is_set():
                if uploader.error is not None:
                    raise uploader.error
                if self.queue.draining and not job.closed:
                    self._withdraw(job)
                if feed is not None:
                    if feed.error is not None:
                        raise feed.error
                    if feed.ended:  # the worker exited, or tail cannot follow here: poll
                        feed.close()
                        feed = None
                        self._check_alive(job)
                else:
                    job.read_events()
                events = job.handle_backlog(self._on_event, self._pull_many)
                if events:
                    quiet_since = time.monotonic()
                    self._progress += 1
                if self.queue.all_settled() and not self._waiting():
                    return
                if job.ended:
                    raise self._end_error(job)
                if events:
                    continue
                if time.monotonic() - quiet_since > self.opts.liveness_every:
                    quiet_since = time.monotonic()
                    if feed is not None and not job.alive():  # a zombie fools tail --pid
                        feed.close()
                        feed = None
                        self._check_alive(job)
                events_wake.wait(self.opts.poll)
                events_wake.clear()
        except BaseException:
            _close_quietly(job.host)  # unblocks the uploader's call on a dead link
            raise
        finally:
            uploader.stop()
            if feed is not None:
                feed.close()

    def _end_error(self, job: WorkerJob) -> RemoteSepError:
        """Why the worker ended while units were left: the error it reported, as itself
        (a kind no retry fixes makes the host leave the batch with it), else a death."""
        error, self._worker_error = self._worker_error, None
        if error is None:
            return _WorkerDied(f"worker ended early ({job.end_reason})")
        if error.kind in FATAL_HOST_KINDS:
            return error
        return _WorkerDied(error.message)

    def _check_alive(self, job: WorkerJob) -> None:
        """After the event stream stopped: read what is left; a dead worker that did not
        say bye (or still holds units) is a dead worker."""
        job.read_events()
        job.handle_backlog(self._on_event, self._pull_many)
        if not job.ended and not job.alive():
            raise _WorkerDied("worker process died")

    def _depth(self) -> int:
        fair = math.ceil(self.queue.pending() / max(1, self.fleet_size))
        return queue_depth(base=self.opts.ahead, max_ahead=self.opts.max_ahead,
                           item_s=self.job.item_s.value if self.job else None,
                           link_s=self._link_s.value, fair_share=fair,
                           slots=self.job.slots if self.job else 1)

    def _withdraw(self, job: WorkerJob) -> None:
        """Ctrl-C (drain): the items the worker has not taken yet come back unrun (queued
        again, for a rerun to do) and the inbox is closed; only the running ones finish."""
        # Wait for a bundle on its way (its items are withdrawn too), unless we detach.
        while not self._submit_lock.acquire(timeout=0.1):
            if self.stop.is_set():
                return
        try:
            units = job.withdraw_untaken()
        finally:
            self._submit_lock.release()
        for unit in reversed(units):  # back to the front, in their order
            self.queue.give_back(unit.key, self.host_name)

    def _feed(self, job: WorkerJob) -> bool:
        """The uploader's step: top the inbox up in one bundle; returns whether it sent."""
        with self._submit_lock:
            if self.stop.is_set() or self.queue.draining or job.closed:
                return False
            with job.lock:
                want = self._depth() - len(job.queued_remote)
            units = []
            while len(units) < want and (unit := self.queue.take(self.host_name)) is not None:
                units.append(unit)
            if not units:
                return False
            try:
                items = timed(lambda: job.submit_many(units), self._link_s)
            except BaseException:
                with job.lock:
                    for unit in units:
                        job.inflight.pop(unit.key, None)
                        job.queued_remote.discard(unit.key)
                for unit in units:  # if the bundle did land, its results are still pulled
                    self.queue.give_back(unit.key, self.host_name)
                raise
            self._progress += 1
            self.state.mark_sent_many([(u, self.fingerprints[u.key], i)
                                       for u, i in zip(units, items, strict=True)],
                                      self.host_name, job.job_id)
            return True

    def _on_event(self, job: WorkerJob, event: dict[str, Any]) -> None:
        name = event.get("event")
        unit = job.unit_of(event.get("item"))
        if name == HELLO:  # a Ray driver runs `slots` units at once (docs/ray.md)
            job.slots = max(1, int(event.get("slots") or 1))
        elif name == LOAD:
            self.status.loads += 1
            self.status.state = "running"
        elif name == ITEM_START and unit is not None:
            self.status.state, self.status.current = "running", unit.label
            self.status.chunk = (0, int(event.get("chunks") or 0))
            job.started_at[unit.key] = time.monotonic()
        elif name == CHUNK and unit is not None:
            self.status.chunk = (int(event.get("done") or 0), int(event.get("total") or 0))
        elif name == ERROR and unit is not None:
            with job.lock:
                job.inflight.pop(unit.key, None)
            self.queue.fail(unit.key, self.host_name, str(event.get("kind") or "internal"),
                            str(event.get("message") or "item failed"))
        elif name == ERROR and event.get("file") is None:
            # The worker's own failure (manifest rejected, model unusable): its bye follows.
            self._worker_error = error_from_event(event, self.host_name)
        elif name == BYE:
            job.ended, job.end_reason = True, f"bye, exit code {event.get('exit_code')}"

    def _pull_many(self, job: WorkerJob, dones: list[dict[str, Any]]) -> None:
        """Pull every finished unit nobody else has finished (claimed first), in bundles."""
        claimed: dict[str, dict[str, Any]] = {}
        for event in dones:
            unit = job.unit_of(event.get("item"))
            if unit is None:
                continue
            if self.queue.claim(unit.key, self.host_name):
                claimed[unit.key] = event
            else:  # finished elsewhere, or being pulled by another host
                self._forget(job, unit)

        def done(unit: Unit, shas: dict[str, str]) -> None:
            event = claimed.pop(unit.key)
            seconds, scores = event.get("seconds"), event.get("scores")
            self.queue.results[unit.key].predicted_spans = event.get("predicted_spans")
            # Delivered (verified, renamed) even if the state cannot be saved (disk full):
            # the report says so; a rerun pulls it again from the worker's job.
            self.queue.complete(unit.key, self.host_name, shas, seconds, scores)
            self.status.done += 1
            self.status.busy_seconds += float(seconds or 0)
            self._forget(job, unit)
            self.state.mark_done(unit, self.fingerprints[unit.key], shas, self.host_name,
                                 scores)

        try:
            job.pull_many([(job.items[e["item"]], e.get("outputs") or {})
                           for e in claimed.values()], done)
        except BaseException:
            for key in claimed:
                self.queue.unclaim(key)
            raise

    def _forget(self, job: WorkerJob, unit: Unit) -> None:
        with job.lock:
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
