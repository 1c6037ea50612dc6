"""A batch over a fleet: plan -> skip what is done (resume) -> one HostWorker thread per
host pulling from one shared WorkQueue -> a report with one result per unit.

Ctrl-C: the first press drains (no new units; running ones finish and are pulled), the
second detaches at once (remote workers run on; rerunning the batch resumes).

Local outputs: the output folders are checked writable before any host is contacted; a
local write error mid-batch (disk full, read-only) stops every host, tells the remote
workers to finish what runs and exit, and reports what was delivered (rerun: resume).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from remote_sep.batch.host_worker import HostWorker, WorkerOptions
from remote_sep.batch.plan import BatchPlan, Unit
from remote_sep.batch.queue import DONE, FAILED, QUEUED, RUNNING, SKIPPED, WorkQueue
from remote_sep.batch.state import BatchState, unit_fingerprint
from remote_sep.errors import OutputExists, RemoteSepError
from remote_sep.hosts.base import sha256_file
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs.outputs import check_writable


@dataclass
class BatchRun:
    """Live state the view reads (never acts on)."""

    plan: BatchPlan
    queue: WorkQueue
    workers: list[HostWorker]
    interrupts: int = 0
    started: float = 0.0

    @property
    def draining(self) -> bool:
        return self.queue.draining


@dataclass
class BatchReport:
    items: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    loads: dict[str, int] = field(default_factory=dict)  # host -> model loads seen
    detached: bool = False
    state_file: str = ""
    hints: list[str] = field(default_factory=list)  # what to do about hosts that failed
    # What stopped the whole batch (a local write error): {kind, message, hint}.
    error: dict[str, Any] | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [item for item in self.items if item["status"] == FAILED]

    @property
    def ok(self) -> bool:
        return not self.detached and self.error is None and all(
            i["status"] in (DONE, SKIPPED) for i in self.items)


def run_batch(
    plan: BatchPlan,
    profiles: list[HostProfile],
    settings: dict[str, Any],
    *,
    connect: Callable[[HostProfile], Any],
    force: bool = False,
    options: WorkerOptions | None = None,
    on_tick: Callable[[BatchRun], None] | None = None,
    tick_s: float = 0.1,
) -> BatchReport:
    """Run ``plan`` on ``profiles``; returns when every unit is settled or on detach."""
    input_shas = {unit.input: "" for unit in plan.units}
    for path in input_shas:
        input_shas[path] = sha256_file(path)
    fingerprints = {u.key: unit_fingerprint(input_shas[u.input], u.description, settings,
                                            u.spans) for u in plan.units}
    state = BatchState(plan.out_dir)
    queue = WorkQueue(plan.units)
    for unit in plan.units:
        if not force and state.is_done(unit, fingerprints[unit.key]):
            queue.skip(unit.key)
            queue.results[unit.key].outputs = dict(state.done[unit.key]["outputs"])
            queue.results[unit.key].scores = state.done[unit.key].get("scores")
    to_write = [path for unit in plan.units if queue.results[unit.key].status != SKIPPED
                for path in unit.outputs.values()]
    if to_write:  # before the exists() checks below: they raise on a name too long
        check_writable([*to_write, state.path],
                       hint="pick another --out-dir (a folder you can write)")
    if not force:
        _refuse_foreign_outputs(plan, queue, state)
    stop = threading.Event()
    workers = [HostWorker(p, queue, state, fingerprints, settings, input_shas, connect, stop,
                          options, fleet_size=len(profiles)) for p in profiles]
    run = BatchRun(plan, queue, workers, started=time.monotonic())
    if queue.pending():
        with _interrupts(run, stop):
            for worker in workers:
                worker.start()
            while any(w.is_alive() for w in workers):
                if on_tick is not None:
                    on_tick(run)
                queue.wait(tick_s)
                if queue.pending() and not any(w.is_alive() for w in workers):
                    break
            for worker in workers:
                worker.join(timeout=1.0 if stop.is_set() else None)
            if not stop.is_set() or _local_error(workers) is not None:
                _close_leftovers(workers, (options or WorkerOptions()).close_wait_s)
    if on_tick is not None:
        on_tick(run)
    error = _local_error(workers)
    report = _report(plan, queue, workers, state, detached=stop.is_set() and error is None)
    if error is not None:
        report.error = {"kind": error.kind, "message": error.message, "hint": LOCAL_HINTS.get(
            error.kind, "fix the output folder, then run the same command again: it resumes")}
    return report


# What to do once a local write stopped the batch (the CLI adds the command to rerun).
LOCAL_HINTS = {
    "disk_full": "free space on this machine (or pick another --out-dir), then run the same "
                 "command again: it resumes",
    "output_unwritable": "make the output folder writable (or shorten --name-template), then "
                         "run the same command again: it resumes",
}


def _local_error(workers: list[HostWorker]) -> RemoteSepError | None:
    return next((w.local_error for w in workers if w.local_error is not None), None)


def _close_leftovers(workers: list[HostWorker], wait_s: float) -> None:
    """Workers on hosts lost mid-batch still wait on their inboxes: close them, best effort,
    all at once and for at most ``wait_s`` (a host still down stays as it is; the next run
    of the batch retires its worker)."""
    def close(worker: HostWorker) -> None:
        try:
            worker.close_leftovers()
        except Exception:  # noqa: BLE001 - best effort: the host may still be down
            pass

    threads = [threading.Thread(target=close, args=(w,), daemon=True, name=f"close-{w.name}")
               for w in workers if w.job is not None and not w.job.closed]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + wait_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


class _interrupts:
    """SIGINT handler for the run: 1st press drains, 2nd detaches (main thread only)."""

    def __init__(self, run: BatchRun, stop: threading.Event):
        self.run, self.stop, self.previous = run, stop, None

    def __enter__(self) -> _interrupts:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.run.interrupts += 1
        if self.run.interrupts == 1:
            self.run.queue.drain()
        else:
            self.stop.set()
            self.run.queue.drain()

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _refuse_foreign_outputs(plan: BatchPlan, queue: WorkQueue, state: BatchState) -> None:
    """A file at an output name that this batch never wrote there is the user's: refuse
    before anything runs (an output the batch wrote, then damaged or outdated, is redone)."""
    for unit in plan.units:
        if (queue.results[unit.key].status == SKIPPED or unit.key in state.done
                or unit.key in state.sent):  # sent: a pull may have stopped between files
            continue
        existing = [path for path in unit.outputs.values() if path.exists()]
        if existing:
            raise OutputExists(f"output exists: {existing[0]}",
                               hint="pass --force to overwrite, or pick another --out-dir or "
                                    "--name-template")


def _report(plan: BatchPlan, queue: WorkQueue, workers: list[HostWorker], state: BatchState,
            *, detached: bool) -> BatchReport:
    failed_hosts = [w.status for w in workers if w.status.state == "failed"]
    host_failure = {s.name: s.message for s in failed_hosts}
    kinds = {s.kind for s in failed_hosts}
    # Every host failed the same way (all host_key, say): that is the units' kind too.
    unit_kind = kinds.pop() if len(kinds) == 1 and len(failed_hosts) == len(workers) \
        else "unreachable"
    report = BatchReport(detached=detached, state_file=str(state.path),
                         hints=list(dict.fromkeys(s.hint for s in failed_hosts if s.hint)))
    for unit in plan.units:
        result = queue.results[unit.key]
        if result.status in (QUEUED, RUNNING) and not detached and not queue.draining:
            # Every host left the batch: the unit could not run anywhere.
            result.status, result.kind = FAILED, unit_kind
            result.message = "; ".join(f"{h}: {m}" for h, m in host_failure.items()) or \
                "no host could run it"
        report.items.append(_item(unit, result))
    report.counts = queue.counts()
    report.loads = {w.host_name: w.status.loads for w in workers}
    return report


def _item(unit: Unit, result: Any) -> dict[str, Any]:
    outputs = {role: {"path": str(path), "sha256": result.outputs.get(role)}
               for role, path in unit.outputs.items()}
    extra = {"spans": unit.spans} if unit.spans else {}
    if result.predicted_spans is not None:
        extra["predicted_spans"] = result.predicted_spans
    return {"input": str(unit.input), "description": unit.description, "status": result.status,
            "host": result.host, "kind": result.kind, "message": result.message,
            "seconds": result.seconds, "outputs": outputs, "scores": result.scores, **extra}
