"""Local job records: which remote job outputs go to which local files, and how far the
event stream was read, so `attach` (after Ctrl-C or a lost link) writes the same files.

One JSON file per job under the platformdirs user state dir (``REMOTE_SEP_STATE_DIR``
overrides it); written to a temp name and renamed, like every finished-looking file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import platformdirs

from remote_sep.atomic import write_text_atomic

APP_NAME = "remote-sep"
DEFAULT_KINDS = ("target", "residual")


def state_dir() -> Path:
    override = os.environ.get("REMOTE_SEP_STATE_DIR")
    return Path(override) if override else Path(platformdirs.user_state_dir(APP_NAME))


def output_key(item: str, desc: int) -> str:
    return f"{item}/{int(desc)}"


@dataclass
class JobRecord:
    host: str
    job_id: str
    base: str  # resolved remote base path
    ext: str  # output extension (wav/flac)
    pid: int | None = None
    # output_key(item, desc) -> local prefix (files are <prefix>_target.<ext>, _residual.<ext>)
    prefixes: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)  # output_key -> description
    # output_key -> its output kinds when not target/residual (a stem split: stems + other)
    kinds: dict[str, list[str]] = field(default_factory=dict)
    pulled: dict[str, str] = field(default_factory=dict)  # local path -> sha256
    offset: int = 0
    last_seq: int = -1
    created: float = field(default_factory=time.time)

    def local_path(self, key: str, kind: str) -> Path:
        return Path(f"{self.prefixes[key]}_{kind}.{self.ext}")

    def kinds_for(self, key: str) -> list[str]:
        return self.kinds.get(key) or list(DEFAULT_KINDS)


def record_path(host: str, job_id: str) -> Path:
    safe_host = "".join(c if c.isalnum() or c in "-_." else "_" for c in host)
    return state_dir() / "jobs" / f"{safe_host}__{job_id}.json"


def save(record: JobRecord) -> Path:
    # Absolute, so `attach` from another folder writes where the first command would have.
    record.prefixes = {key: str(Path(prefix).expanduser().absolute())
                       for key, prefix in record.prefixes.items()}
    path = record_path(record.host, record.job_id)
    return write_text_atomic(path, json.dumps(asdict(record), ensure_ascii=False, indent=1))


def load(host: str, job_id: str) -> JobRecord | None:
    path = record_path(host, job_id)
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return JobRecord(**raw)
    except (ValueError, TypeError):
        return None  # an unreadable record: attach falls back to default names
