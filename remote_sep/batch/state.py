"""The local record of a batch, next to its outputs: what is done (with sha256s) and which
remote job each unit was sent to. It makes a rerun skip finished units (resume) and lets a
rerun pull outputs that a remote worker finished after the laptop went away.

File: ``<out-dir>/.remote-sep-batch.json``, rewritten atomically (tmp + rename) on every
change, guarded by a lock because host threads report concurrently.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from remote_sep.atomic import write_text_atomic
from remote_sep.batch.plan import Unit
from remote_sep.hosts.base import sha256_file

STATE_NAME = ".remote-sep-batch.json"
STATE_VERSION = 1


def unit_fingerprint(input_sha256: str, description: str, settings: dict[str, Any]) -> str:
    """Changes when the input's content, the description or the settings change."""
    body = json.dumps([input_sha256, description, settings], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


class BatchState:
    def __init__(self, out_dir: Path):
        self.path = out_dir / STATE_NAME
        self._lock = threading.Lock()
        self.done: dict[str, dict[str, Any]] = {}  # unit key -> {fingerprint, outputs{role: sha}}
        self.sent: dict[str, dict[str, Any]] = {}  # unit key -> {host, job, item, fingerprint}
        self._load()

    def _load(self) -> None:
        try:
            body = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no state (or a damaged one): nothing counts as done, nothing is lost
        if isinstance(body, dict) and body.get("v") == STATE_VERSION:
            self.done = dict(body.get("done") or {})
            self.sent = dict(body.get("sent") or {})

    def is_done(self, unit: Unit, fingerprint: str) -> bool:
        """Both outputs exist locally with the sha256 recorded when they were pulled."""
        record = self.done.get(unit.key)
        if not record or record.get("fingerprint") != fingerprint:
            return False
        for role, path in unit.outputs.items():
            want = (record.get("outputs") or {}).get(role)
            if not want or not path.is_file() or sha256_file(path) != want:
                return False
        return True

    def mark_sent_many(self, sent: list[tuple[Unit, str, str]], host: str, job: str) -> None:
        """(unit, fingerprint, remote item id) for each unit of one bundle: one save."""
        with self._lock:
            for unit, fingerprint, item in sent:
                self.sent[unit.key] = {"host": host, "job": job, "item": item,
                                       "fingerprint": fingerprint}
            self._save()

    def mark_done(self, unit: Unit, fingerprint: str, shas: dict[str, str], host: str) -> None:
        with self._lock:
            self.done[unit.key] = {"fingerprint": fingerprint, "outputs": dict(shas), "host": host}
            self.sent.pop(unit.key, None)
            self._save()

    def _save(self) -> None:
        body = {"v": STATE_VERSION, "done": self.done, "sent": self.sent}
        write_text_atomic(self.path, json.dumps(body, ensure_ascii=False, indent=1))
