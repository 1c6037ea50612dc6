"""The core of `remote-sep attach`: follow a job from its first event and pull every output
not already here; the output map rebuilt from the remote manifest when this laptop has no
record of the job (or a new --out)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from remote_payload.manifest import Manifest, ManifestError
from remote_sep.errors import ConfigError, OutputExists, RemoteSepError
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs import outputs, records
from remote_sep.jobs.follow import Link, Notify, _quiet, follow_job
from remote_sep.jobs.layout import Cursor, JobPaths, prepare, read_pid
from remote_sep.jobs.payload_sync import payload_hash
from remote_sep.jobs.separate import detached, pull_stopped, result_of, slug


def run_attach(job_id: str, profile: HostProfile, out: str | None = None,
               notify: Notify = _quiet, connect=None, force: bool = False) -> dict[str, Any]:
    """Follow a job from its first event and pull every output not already here."""
    started = time.monotonic()
    record = records.load(profile.name, job_id)
    link = Link(profile, connect, notify=notify)
    try:
        renamed = record is None or bool(out)
        if renamed:
            record = _record_from_remote(link, profile, job_id, out, record)
        _check_writable(record)  # before exists() below: it raises on a name too long
        if renamed and not force:
            _refuse_foreign_outputs(record)
        if record.pid is None:
            record.pid = link.call(lambda h: read_pid(h, JobPaths(record.base, job_id)))
        records.save(record)
        result = follow_job(link, record, Cursor(), notify)
    except KeyboardInterrupt:
        raise detached(profile, record) from None
    except RemoteSepError as exc:
        if exc.local and record is not None:
            raise pull_stopped(exc, record, profile) from None
        raise
    finally:
        link.close()
    return result_of(record, result, started, link)


def _record_from_remote(link: Link, profile: HostProfile, job_id: str, out: str | None,
                        old: records.JobRecord | None) -> records.JobRecord:
    """Rebuild the output map from the remote manifest (no local record, or a new --out)."""
    if not re.fullmatch(r"[\w.-]+", job_id):
        raise ConfigError(f"not a job id: {job_id!r}")
    ready = link.call(lambda h: prepare(h, profile, payload_hash(), None))
    paths = JobPaths(ready.base, job_id)
    try:
        text = link.call(lambda h: h.read_bytes(paths.manifest)).decode("utf-8")
        manifest = Manifest.from_json(text)
    except (RemoteSepError, ManifestError, UnicodeDecodeError) as exc:
        raise ConfigError(f"no job {job_id} on {profile.name} ({exc})",
                          hint=f"list jobs with: remote-sep jobs {profile.name}") from None
    record = old or records.JobRecord(host=profile.name, job_id=job_id, base=ready.base,
                                          ext=manifest.settings.extension)
    for item in manifest.items:
        several = len(manifest.items) > 1
        descs = item.descriptions
        if item.stems is not None:  # a stem split: one output key, one kind per stem
            descs = [" > ".join(item.descriptions)]
            record.kinds[records.output_key(item.id, 0)] = item.output_stems
        for k, desc in enumerate(descs):
            key = records.output_key(item.id, k)
            record.descriptions[key] = desc
            if out and outputs.names_a_folder(out):  # same names, in that folder
                name = Path(record.prefixes[key]).name if key in record.prefixes \
                    else f"{job_id}_{item.id}_{slug(desc)}"
                record.prefixes[key] = str(outputs.absolute(out) / name)
            elif out:
                base = outputs.absolute(out)
                tag = "_".join(([item.id] if several else [])
                               + ([slug(desc)] if len(descs) > 1 else []))
                record.prefixes[key] = str(base.with_name(f"{base.name}_{tag}") if tag else base)
            elif key not in record.prefixes:
                record.prefixes[key] = str(Path.cwd() / f"{job_id}_{item.id}_{slug(desc)}")
    return record


def _check_writable(record: records.JobRecord) -> None:
    outputs.check_writable([record.local_path(key, kind) for key in record.prefixes
                            for kind in record.kinds_for(key)],
                           hint="pick a folder you can write with --out DIR/")


def _refuse_foreign_outputs(record: records.JobRecord) -> None:
    """Names attach picked now (--out, or a job this laptop did not start) must not clobber
    a file this job did not pull there earlier."""
    existing = [path for key in record.prefixes for kind in record.kinds_for(key)
                if (path := record.local_path(key, kind)).exists()
                and str(path) not in record.pulled]
    if existing:
        raise OutputExists(f"output exists: {existing[0]}",
                           hint="pass --force to overwrite, or --out to pick another name")
