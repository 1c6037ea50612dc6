"""One batch worker job on one host: start it, drop items into its inbox, read its events,
pull outputs. Built on jobs.py's primitives (layout, prepare, detached start, event cursor).

Item files go to ``P/jobs/<id>/inbox/<seq>-<item>.json`` through ``Host.write_bytes``
(tmp + rename, so the worker never reads half a file); ``inbox/CLOSE`` ends the worker once
the inbox is empty. Events are read by offset over SFTP (no shell per poll).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remote_payload.manifest import Item, Manifest, Settings, item_to_json
from remote_sep import jobs
from remote_sep.batch_plan import Unit
from remote_sep.errors import TransferError
from remote_sep.payload_sync import payload_dir, payload_hash, sync_payload
from remote_sep.profile_model import HostProfile

READ_LIMIT = 1 << 20  # bytes of events read per poll


def prepare(host: Any, profile: HostProfile) -> jobs.RemoteReady:
    """Resolve the base and interpreter (one round trip); sync the payload when missing."""
    ready = jobs.prepare(host, profile, payload_hash(), None)
    if not ready.payload_present:
        sync_payload(host, ready.base)
    return ready


def old_job_events(host: Any, base: str, job_id: str) -> list[dict[str, Any]]:
    """Every event of an earlier job on this host (none when it is gone)."""
    path = jobs.JobPaths(base, job_id).events
    if host.size(path) is None:
        return []
    return jobs.consume(jobs.Cursor(), host.read_bytes(path))


def retire_jobs(host: Any, base: str, job_ids: list[str]) -> None:
    """Earlier workers of this batch: drop their untaken items and close their inboxes, so
    they finish what they hold and exit (one round trip; missing jobs are fine)."""
    if not job_ids:
        return
    lines = []
    for job_id in job_ids:
        inbox = shlex.quote(jobs.JobPaths(base, job_id).inbox)
        lines.append(f"if [ -d {inbox} ]; then rm -f {inbox}/*.json; : > {inbox}/CLOSE; fi")
    host.run("\n".join(lines) + "\nexit 0\n", check=False)


class WorkerJob:
    """The laptop's handle on one long-lived payload worker (survives reconnects)."""

    def __init__(self, host: Any, profile: HostProfile, paths: jobs.JobPaths, pid: int,
                 input_shas: dict[Path, str]):
        self.host = host
        self.profile = profile
        self.paths = paths
        self.pid = pid
        self.input_shas = input_shas
        self.cursor = jobs.Cursor()
        self.inflight: dict[str, Unit] = {}  # unit key -> unit, sent and not finished here
        self.items: dict[str, Unit] = {}  # remote item id -> unit (everything ever sent)
        self.started_at: dict[str, float] = {}
        self.cached: set[str] = set()  # cache names known present on the remote
        self.backlog: list[dict[str, Any]] = []  # read, not yet handled
        self.ended = False
        self.end_reason = ""
        self.closed = False
        self._seq = 0

    @property
    def job_id(self) -> str:
        return self.paths.job_id

    @classmethod
    def start(cls, host: Any, profile: HostProfile, settings: dict[str, Any],
              input_shas: dict[Path, str], job_id: str) -> WorkerJob:
        """Prepare the host (one round trip), sync the payload if missing, start the worker."""
        ready = prepare(host, profile)
        paths = jobs.JobPaths(ready.base, job_id)
        manifest = Manifest(job_id=paths.job_id, settings=Settings(**settings), items=[])
        pid = jobs.start_job(host, profile, paths, manifest.to_json(), ready.python,
                             payload_dir(ready.base), inbox=True)
        return cls(host, profile, paths, pid, input_shas)

    def submit(self, unit: Unit) -> str:
        """Upload the unit's input (content addressed) and drop its item into the inbox."""
        sha = self.input_shas[unit.input]
        name = f"{sha}{unit.input.suffix.lower()}"
        remote_input = jobs.cache_path(self.paths.base, sha, unit.input.suffix.lower())
        if name not in self.cached:
            if self.host.size(remote_input) is None:
                self.host.put_file(unit.input, remote_input)
            self.cached.add(name)
        item_id = f"u{unit.index}"
        item = Item(id=item_id, input=remote_input, descriptions=[unit.description],
                    prefixes=[f"out/{item_id}"])
        self._seq += 1
        self.items[item_id] = unit  # before the write: a write that lands but fails still maps
        self.host.write_bytes(f"{self.paths.inbox}/{self._seq:06d}-{item_id}.json",
                              item_to_json(item).encode())
        self.inflight[unit.key] = unit
        self.started_at[unit.key] = time.monotonic()
        return item_id

    def unit_of(self, item_id: Any) -> Unit | None:
        return self.items.get(item_id) if isinstance(item_id, str) else None

    def handle_events(self, handler: Callable[[WorkerJob, dict[str, Any]], None]) -> int:
        """Read new events (one SFTP read) and hand each to ``handler``. An event leaves the
        backlog only once handled: a link cut while pulling an output retries that event
        after the reconnect instead of losing it. Returns how many were handled."""
        data = self.host.read_bytes(self.paths.events, self.cursor.offset, READ_LIMIT)
        if data:
            self.backlog.extend(jobs.consume(self.cursor, data))
        handled = 0
        while self.backlog:
            handler(self, self.backlog[0])
            self.backlog.pop(0)
            handled += 1
        return handled

    def alive(self) -> bool:
        result = self.host.run(f"kill -0 {int(self.pid)} 2>/dev/null", check=False)
        return result.exit_code == 0

    def pull(self, unit: Unit, outputs: dict[str, Any]) -> dict[str, str]:
        """Fetch the unit's outputs, sha256-verified against the event, tmp + rename."""
        shas = {}
        for role, local in unit.outputs.items():
            info = outputs.get(role)
            if not isinstance(info, dict) or not info.get("path"):
                raise TransferError(f"{unit.label}: the worker reported no {role} output")
            local.parent.mkdir(parents=True, exist_ok=True)
            shas[role] = self.host.get_file(self.paths.resolve(str(info["path"])), local,
                                            expected_sha256=info.get("sha256"))
        return shas

    def close_inbox(self) -> None:
        """No more items: the worker finishes what its inbox holds, then exits."""
        if not self.closed:
            self.host.write_bytes(f"{self.paths.inbox}/CLOSE", b"")
            self.closed = True
