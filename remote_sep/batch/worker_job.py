"""One batch worker job on one host: start it, drop items into its inbox, read its events,
pull outputs. Built on jobs/layout.py's primitives (layout, prepare, detached start, event cursor).

Round trips are what a slow link costs, so every step moves many units at once:
- ``submit_many``: ONE exec carries a tar of the units' small inputs and item files; the
  remote script unpacks it in a staging folder, moves inputs into the content-addressed
  cache and renames the item files into ``inbox/`` (so the worker never reads half a file).
  Inputs over ``INLINE_MAX`` go by SFTP first (fast for big files, latency amortized).
- ``pull_many`` (batch/pulls.py): ONE ``cat`` of the small outputs of every finished unit,
  split locally by the sizes in their ``item_done`` events, sha256-checked, tmp + rename;
  big outputs by SFTP.
- events come from a streaming ``tail -f`` (batch/pipe.py EventFeed), or by offset over SFTP.
``inbox/CLOSE`` ends the worker once the inbox is empty.
The stream carries the worker's heartbeat (batch/heartbeat.py).
"""

from __future__ import annotations

import hashlib
import io
import secrets
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remote_payload.manifest import (
    DEFAULT_WORKER_IDLE_TIMEOUT,
    Item,
    Manifest,
    item_to_json,
)
from remote_payload.protocol import ERROR, ITEM_DONE
from remote_sep.batch import heartbeat, pulls
from remote_sep.batch.pipe import Ewma
from remote_sep.batch.plan import Unit
from remote_sep.batch.pulls import BUNDLE_MAX, INLINE_MAX
from remote_sep.errors import TransferError
from remote_sep.hosts.base import RemoteCommandError
from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.shell import quote
from remote_sep.hosts.space import disk_full_on_failure
from remote_sep.jobs import cache, layout
from remote_sep.jobs.payload_sync import payload_dir, payload_hash, sync_payload
from remote_sep.jobs.settings import build_settings
from remote_sep.provision.auto import ReadyOptions, prepare_ready

READ_LIMIT = 1 << 20  # bytes of events read per poll

DAMAGED = 29  # the unpack script's exit status when a file of the bundle fails its sha256


def prepare(host: Any, profile: HostProfile,
            options: ReadyOptions | None = None) -> layout.RemoteReady:
    """Resolve the base and interpreter (one round trip, which also reads the bootstrap
    stamp); bootstrap an unprovisioned host first when `options` allow it (else
    NotProvisioned); sync the payload when missing."""
    ready = prepare_ready(lambda: host, profile, options or ReadyOptions(),
                          lambda: layout.prepare(host, profile, payload_hash(), None))
    if not ready.payload_present:
        sync_payload(host, ready.base)
    return ready


def old_job_events(host: Any, base: str, job_id: str) -> list[dict[str, Any]]:
    """Every event of an earlier job on this host (none when it is gone)."""
    path = layout.JobPaths(base, job_id).events
    if host.size(path) is None:
        return []
    return layout.consume(layout.Cursor(), host.read_bytes(path))


def retire_jobs(host: Any, base: str, job_ids: list[str]) -> None:
    """Earlier workers of this batch: drop their untaken items and close their inboxes, so
    they finish what they hold and exit (one round trip; missing jobs are fine)."""
    if not job_ids:
        return
    lines = []
    for job_id in job_ids:
        inbox = quote(layout.JobPaths(base, job_id).inbox)
        lines.append(f"if [ -d {inbox} ]; then rm -f {inbox}/*.json; : > {inbox}/CLOSE; fi")
    host.run("\n".join(lines) + "\nexit 0\n", check=False)


class WorkerJob:
    """The laptop's handle on one long-lived payload worker (survives reconnects).

    Shared by the host's pump thread (events, pulls) and its uploader thread (submits):
    the maps below are guarded by ``lock``."""

    def __init__(self, host: Any, profile: HostProfile, paths: layout.JobPaths, pid: int,
                 input_shas: dict[Path, str]):
        self.host = host
        self.profile = profile
        self.paths = paths
        self.pid = pid
        self.input_shas = input_shas
        self.cursor = layout.Cursor()
        self.lock = threading.Lock()
        self.inflight: dict[str, Unit] = {}  # unit key -> unit, sent and not finished here
        self.queued_remote: set[str] = set()  # sent, no item_done/error yet (the GPU's queue)
        self.items: dict[str, Unit] = {}  # remote item id -> unit (everything ever sent)
        self.inbox_files: dict[str, str] = {}  # unit key -> its item file's name in inbox/
        self.started_at: dict[str, float] = {}
        self.cached: set[str] | None = None  # cache names present on the remote (None: ask)
        self.incoming: list[dict[str, Any]] = []  # read by the feed thread, not yet taken
        self.backlog: list[dict[str, Any]] = []  # taken by the pump, not yet handled
        self.upload_wake: threading.Event | None = None  # set when the GPU queue shrinks
        self.item_s = Ewma()  # GPU seconds per unit, from item_done events as they arrive
        self.slots = 1  # units the worker runs at once (hello's `slots`: a Ray driver's GPUs)
        self.ended = False
        self.end_reason = ""
        self.closed = False
        self._partial = b""  # bytes of an event line not yet complete (streamed reads)
        self._seq = 0
        self.idle_timeout = DEFAULT_WORKER_IDLE_TIMEOUT  # the worker's, set by start()
        self._stream_seen = time.monotonic()  # the stream (and its heartbeat) last spoke
        self._touched = 0.0  # the heartbeat was last touched by hand (poll mode)

    @property
    def job_id(self) -> str:
        return self.paths.job_id

    @classmethod
    def start(cls, host: Any, profile: HostProfile, settings: dict[str, Any],
              input_shas: dict[Path, str], job_id: str,
              provision: ReadyOptions | None = None,
              idle_timeout: float | None = None) -> WorkerJob:
        """Prepare the host (one round trip; a bootstrap first when it is not provisioned
        and `provision` allows it), sync the payload if missing, start the worker.
        `idle_timeout` (--worker-idle-timeout) beats the profile's `worker_idle_timeout`;
        it is no part of `settings`, which fingerprint the units' outputs."""
        # settings: the batch's requested fields; this host's profile fills in its defaults.
        worker_settings = build_settings(profile, settings)
        ready = prepare(host, profile, provision)
        paths = layout.JobPaths(ready.base, job_id)
        idle = idle_timeout if idle_timeout is not None else profile.worker_idle_timeout
        if idle is not None:
            worker_settings.worker_idle_timeout = float(idle)
        manifest = Manifest(job_id=paths.job_id, settings=worker_settings, items=[])
        job = cls(host, profile, paths, 0, input_shas)
        job.idle_timeout = worker_settings.worker_idle_timeout
        # The cache question travels beside the start (its own channel): one round trip less.
        asked = threading.Thread(target=job._check_cache_quietly, daemon=True)
        asked.start()
        job.pid = layout.start_job(host, profile, paths, manifest.to_json(), ready.python,
                                 payload_dir(ready.base), inbox=True)
        asked.join()
        return job

    # --- sending ----------------------------------------------------------------------
    def _cache_name(self, unit: Unit) -> str:
        return f"{self.input_shas[unit.input]}{unit.input.suffix.lower()}"

    def check_cache(self) -> None:
        """One round trip: which of the batch's inputs the remote cache holds a whole copy
        of (size and sha256 checked, jobs/cache.py); the others are (re)uploaded."""
        sizes = {f"{sha}{path.suffix.lower()}": path.stat().st_size
                 for path, sha in self.input_shas.items()}
        lines = "".join(f"{name} {size}\n" for name, size in sorted(sizes.items()))
        result = self.host.run(cache.check_script(f"{self.paths.base}/cache"),
                               stdin=lines.encode())
        self.cached = set(result.text.split()) & set(sizes)

    def _check_cache_quietly(self) -> None:
        try:
            self.check_cache()
        except Exception:  # noqa: BLE001 - asked again by the first submit
            self.cached = None

    def submit_many(self, units: list[Unit]) -> list[str]:
        """Upload the units' inputs (content addressed, never twice) and drop their items
        into the inbox, in one exec (big inputs by SFTP before it). Returns item ids."""
        if self.cached is None:
            self.check_cache()
        assert self.cached is not None
        bundle, inline, inline_bytes, ids = io.BytesIO(), {}, 0, []
        for unit in units:
            name = self._cache_name(unit)
            if name in self.cached or name in inline:
                continue
            size = unit.input.stat().st_size
            if size <= INLINE_MAX and inline_bytes + size <= BUNDLE_MAX:
                inline[name], inline_bytes = unit.input, inline_bytes + size
            else:
                self.host.put_file(unit.input, f"{self.paths.base}/cache/{name}",
                                   sha256=self.input_shas[unit.input])
                self.cached.add(name)
        sums: list[str] = []  # sha256sum -c lines: the host checks every file before use
        with tarfile.open(fileobj=bundle, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, path in inline.items():
                _add(tar, f"c/{name}", path.read_bytes(), sums)
            for unit in units:
                item_id = f"u{unit.index}"
                item = Item(id=item_id, input=layout.cache_path(
                    self.paths.base, self.input_shas[unit.input], unit.input.suffix.lower()),
                    descriptions=list(unit.stems) or [unit.description],
                    prefixes=[f"out/{item_id}"],
                    stems=unit.stem_names if unit.stems else None,
                    spans=[list(span) for span in unit.spans])
                self._seq += 1
                file_name = f"{self._seq:06d}-{item_id}.json"
                _add(tar, f"i/{file_name}", item_to_json(item).encode(), sums)
                ids.append(item_id)
                with self.lock:  # before the exec: its events may come before its answer
                    self.items[item_id] = unit
                    self.inbox_files[unit.key] = file_name
                    self.inflight[unit.key] = unit
                    self.queued_remote.add(unit.key)
                    self.started_at[unit.key] = time.monotonic()
            _add(tar, "SHA256SUMS", "".join(sums).encode(), [])
        what = (f"the upload of {len(inline)} input file(s) and {len(ids)} item file(s) "
                f"for job {self.job_id}")
        try:
            with disk_full_on_failure(self.host, self.paths.dir, what, len(bundle.getvalue())):
                self.host.run(self._unpack_script(), stdin=bundle.getvalue())
        except RemoteCommandError as exc:
            if exc.result.exit_code != DAMAGED:
                raise
            raise TransferError(f"{what} reached {self.host.name} damaged; nothing of it was "
                                "used", hint="run the batch again to retry") from None
        self.cached.update(inline)
        return ids

    def _unpack_script(self) -> str:
        job, cache_dir = quote(self.paths.dir), quote(f"{self.paths.base}/cache")
        stage = quote(f"{self.paths.dir}/.up-{secrets.token_hex(4)}")
        return "\n".join([
            "set -e", f"S={stage}", 'mkdir -p "$S"', 'trap \'rm -rf "$S"\' EXIT',
            'tar -x --no-same-owner -f - -C "$S"',
            # every file as sent (sha256) before any of it is used: a short one never lands
            f'(cd "$S" && sha256sum -c --quiet --strict SHA256SUMS) >&2 || exit {DAMAGED}',
            f'if [ -d "$S/c" ]; then for f in "$S"/c/*; do mv -f "$f" {cache_dir}/; done; fi',
            # sorted glob: the worker takes items in the order they were sent
            f'for f in "$S"/i/*.json; do mv "$f" {job}/inbox/; done', ""])

    def unit_of(self, item_id: Any) -> Unit | None:
        return self.items.get(item_id) if isinstance(item_id, str) else None

    # --- events -----------------------------------------------------------------------
    def add_data(self, data: bytes) -> None:
        """Streamed event bytes (they continue where the last ones stopped); called on the
        feed thread, so the uploader hears at once that the GPU's queue shrank."""
        data = heartbeat.drop_beats(data)  # they are not in the events file
        self._stream_seen = time.monotonic()
        if data:
            buffer = self._partial + data
            before = self.cursor.offset
            events = layout.consume(self.cursor, buffer)
            self._partial = buffer[self.cursor.offset - before:]
            self._arrived(events)

    def read_events(self) -> None:
        """New events by one SFTP read from the cursor (no stream, or after one ended).
        Without a stream nothing beats for the worker: touch its heartbeat here, one
        exec per beat interval (none while a stream spoke that recently)."""
        self._partial = b""
        data = self.host.read_bytes(self.paths.events, self.cursor.offset, READ_LIMIT)
        if data:
            self._arrived(layout.consume(self.cursor, data))
        now = time.monotonic()
        if now - max(self._stream_seen, self._touched) >= heartbeat.beat_interval(
                self.idle_timeout):
            self.host.run(heartbeat.touch_script(heartbeat.heartbeat_path(self.paths.dir)),
                          check=False)
            self._touched = now

    def _arrived(self, events: list[dict[str, Any]]) -> None:
        shrank = False
        with self.lock:
            for event in events:
                unit = self.unit_of(event.get("item"))
                if unit is not None and event.get("event") in (ITEM_DONE, ERROR):
                    shrank = True
                    self.queued_remote.discard(unit.key)
                    if event.get("seconds") and not event.get("skipped"):
                        self.item_s.add(float(event["seconds"]))
            self.incoming.extend(events)
        if shrank and self.upload_wake is not None:
            self.upload_wake.set()

    def handle_backlog(self, handler: Callable[[WorkerJob, dict[str, Any]], None],
                       pull: Callable[[WorkerJob, list[dict[str, Any]]], None]) -> int:
        """Hand each new event to ``handler``, except ``item_done``s, which go to ``pull``
        together (one bundle). Those leave the backlog only once pulled: a link cut while
        pulling retries them after the reconnect (a unit already completed is skipped
        then). Returns how many events there were."""
        with self.lock:
            self.backlog.extend(self.incoming)
            self.incoming = []
        count, dones = len(self.backlog), []
        for event in self.backlog:
            if event.get("event") == ITEM_DONE and self.unit_of(event.get("item")):
                dones.append(event)
            else:
                handler(self, event)
        self.backlog = dones
        if dones:
            pull(self, dones)
        self.backlog = []
        return count

    def alive(self) -> bool:
        """Is the worker process running (a zombie counts as gone)?"""
        result = self.host.run(layout.ALIVE_FN + f"alive {int(self.pid)}", check=False)
        return result.exit_code == 0

    def follow_command(self) -> str:
        """Stream events.jsonl from the cursor until the worker exits, with its heartbeat."""
        return heartbeat.follow_script(self.paths.events, heartbeat.heartbeat_path(
            self.paths.dir), self.cursor.offset, self.pid, self.idle_timeout)

    # --- pulling (batch/pulls.py) --------------------------------------------------------
    def pull_many(self, todo: list[tuple[Unit, dict[str, Any]]],
                  done: Callable[[Unit, dict[str, str]], None]) -> None:
        """Fetch the outputs of finished units, then ``done(unit, shas)`` (batch/pulls.py)."""
        pulls.pull_many(self.host, self.paths, todo, done)

    def withdraw_untaken(self) -> list[Unit]:
        """Take back every item the worker has not taken yet and close the inbox, in ONE
        round trip (Ctrl-C: only what runs finishes). The worker takes an item by renaming
        it into ``taken/`` (atomic), so an ``rm`` that fails means the worker got it first:
        it runs and will be pulled. A name in neither place was withdrawn by an earlier try
        whose answer a link cut lost. Returns the units withdrawn, now out of ``inflight``
        and ``queued_remote``. The caller must keep submits out until it returns."""
        with self.lock:
            waiting = {self.inbox_files[k]: self.inflight[k] for k in self.queued_remote
                       if k in self.inbox_files and k in self.inflight}
        script = (f"cd {quote(self.paths.inbox)} || exit 0\n"
                  "while IFS= read -r n; do\n"
                  '  if rm -- "$n" 2>/dev/null || [ ! -e "../taken/$n" ]; then\n'
                  '    printf "%s\\n" "$n"\n'
                  "  fi\n"
                  "done\n"
                  ": > CLOSE\n")
        names = "".join(f"{name}\n" for name in sorted(waiting))
        result = self.host.run(script, stdin=names.encode())
        withdrawn = [waiting[name] for name in result.text.split() if name in waiting]
        with self.lock:
            for unit in withdrawn:
                self.inflight.pop(unit.key, None)
                self.queued_remote.discard(unit.key)
                self.inbox_files.pop(unit.key, None)
            self.closed = True
        return sorted(withdrawn, key=lambda unit: unit.index)

    def close_inbox(self) -> None:
        """No more items: the worker finishes what its inbox holds, then exits."""
        if not self.closed:  # an exec: cheaper than opening SFTP just for this marker
            self.host.run(f": > {quote(self.paths.inbox)}/CLOSE")
            self.closed = True


def _add(tar: tarfile.TarFile, name: str, data: bytes, sums: list[str]) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    tar.addfile(info, io.BytesIO(data))
    sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
