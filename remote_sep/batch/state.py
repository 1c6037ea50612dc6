"""The local record of a batch, next to its outputs: what is done (with sha256s) and which
remote job each unit was sent to. It makes a rerun skip finished units (resume) and lets a
rerun pull outputs that a remote worker finished after the laptop went away.

File: ``<out-dir>/.remote-sep-batch.json``. Host threads report concurrently (a thread
lock), and two batches may share an out-dir (another process): every change is merged
into the file under an exclusive ``flock`` on the out-dir itself — re-read, apply only
this change, atomic write (tmp + rename) — so one run never drops another run's records.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from remote_sep.atomic import write_text_atomic
from remote_sep.batch.plan import Unit
from remote_sep.errors import OutputUnwritable
from remote_sep.hosts.base import sha256_file
from remote_sep.jobs.outputs import local_error

STATE_NAME = ".remote-sep-batch.json"
STATE_VERSION = 1
LOCK_WAIT_S = 30.0  # another batch holds the lock only for one read + write


def unit_fingerprint(input_sha256: str, description: str, settings: dict[str, Any],
                     spans: list | None = None) -> str:
    """Changes when the input's content, the description, the settings or the span
    prompts change (no spans: the fingerprint of a batch from before spans existed)."""
    parts: list[Any] = [input_sha256, description, settings]
    if spans:
        parts.append(spans)
    body = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


class BatchState:
    def __init__(self, out_dir: Path):
        self.path = out_dir / STATE_NAME
        self._lock = threading.Lock()
        # This run's view (the file as loaded, plus this run's changes).
        self.done: dict[str, dict[str, Any]] = {}  # unit key -> {fingerprint, outputs{role: sha}}
        self.sent: dict[str, dict[str, Any]] = {}  # unit key -> {host, job, item, fingerprint}
        self.done, self.sent = self._read()

    def _read(self) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            body = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}, {}  # no state (or a damaged one): nothing counts as done, nothing lost
        if isinstance(body, dict) and body.get("v") == STATE_VERSION:
            return dict(body.get("done") or {}), dict(body.get("sent") or {})
        return {}, {}

    def is_done(self, unit: Unit, fingerprint: str) -> bool:
        """Both outputs exist locally with the sha256 recorded when they were pulled."""
        record = self.done.get(unit.key)
        if not record or record.get("fingerprint") != fingerprint:
            return False
        for role, path in unit.outputs.items():
            want = (record.get("outputs") or {}).get(role)
            try:
                if not want or not path.is_file() or sha256_file(path) != want:
                    return False
            except OSError:  # e.g. a name too long: not done (the batch's checks say why)
                return False
        return True

    def mark_sent_many(self, sent: list[tuple[Unit, str, str]], host: str, job: str) -> None:
        """(unit, fingerprint, remote item id) for each unit of one bundle: one save."""
        with self._lock:
            change = {unit.key: {"host": host, "job": job, "item": item,
                                 "fingerprint": fingerprint} for unit, fingerprint, item in sent}
            self.sent.update(change)
            self._merge_save(sent=change)

    def mark_done(self, unit: Unit, fingerprint: str, shas: dict[str, str], host: str,
                  scores: dict | None = None) -> None:
        with self._lock:
            entry = {"fingerprint": fingerprint, "outputs": dict(shas), "host": host}
            if scores:  # kept for a resumed batch's scores.csv
                entry["scores"] = dict(scores)
            self.done[unit.key] = entry
            self.sent.pop(unit.key, None)
            self._merge_save(done={unit.key: entry}, unsent=[unit.key])

    def _merge_save(self, *, done: dict[str, Any] | None = None,
                    sent: dict[str, Any] | None = None, unsent: Sequence[str] = ()) -> None:
        """Apply one change to the file as it is now, under the out-dir's flock. A local
        write error (disk full, read-only) is DiskFull / OutputUnwritable."""
        hint = "free space or fix the folder, then run the same command again to resume"
        try:
            with _locked(self.path.parent):
                on_disk_done, on_disk_sent = self._read()
                on_disk_done.update(done or {})
                on_disk_sent.update(sent or {})
                for key in unsent:
                    on_disk_sent.pop(key, None)
                body = {"v": STATE_VERSION, "done": on_disk_done, "sent": on_disk_sent}
                write_text_atomic(self.path, json.dumps(body, ensure_ascii=False, indent=1))
        except OSError as exc:
            raise local_error(exc, self.path, hint) from None


class _locked:
    """An exclusive flock on a folder (no lock file left behind), waited for at most
    LOCK_WAIT_S: a stopped process holding it must not hang this batch."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fd = -1

    def __enter__(self) -> _locked:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    error = OutputUnwritable(
                        f"{self.folder / STATE_NAME}: another process has held its lock for "
                        f"{LOCK_WAIT_S:.0f} s", hint="is another batch stuck on this --out-dir?")
                    error.local = True
                    raise error from None
                time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the descriptor releases the lock
