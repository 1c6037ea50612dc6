"""Pulling a batch worker's finished outputs: small ones in ONE ``cat`` per bundle, split
locally by the sizes in their ``item_done`` events, big ones by SFTP; every file
sha256-checked against its event and written by temp name + rename."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remote_sep.batch.plan import Unit
from remote_sep.errors import TransferError
from remote_sep.jobs import layout
from remote_sep.jobs.outputs import local_error

INLINE_MAX = 8 << 20  # a file this small travels inside a bundle (in memory), not by SFTP
BUNDLE_MAX = 32 << 20  # bytes per upload or download bundle


def pull_many(host: Any, paths: layout.JobPaths, todo: list[tuple[Unit, dict[str, Any]]],
              done: Callable[[Unit, dict[str, str]], None]) -> None:
    """Fetch the outputs of finished units: small ones in ``cat`` bundles (one round
    trip each), big ones by SFTP; each sha256-checked against its event, tmp + rename,
    then ``done(unit, shas)``."""
    bundle: list[tuple[Unit, list[tuple[str, str, int, str | None]]]] = []
    bundle_bytes = 0
    for unit, outputs in todo:
        files = []
        for role in unit.outputs:
            info = outputs.get(role)
            if not isinstance(info, dict) or not info.get("path"):
                raise TransferError(f"{unit.label}: the worker reported no {role} output")
            files.append((role, paths.resolve(str(info["path"])),
                          info.get("bytes"), info.get("sha256")))
        size = sum(f[2] if isinstance(f[2], int) else INLINE_MAX + 1 for f in files)
        if size > INLINE_MAX:
            done(unit, _pull_sftp(host, unit, files))
            continue
        if bundle_bytes + size > BUNDLE_MAX:
            _pull_cat(host, bundle, done)
            bundle, bundle_bytes = [], 0
        bundle.append((unit, files))
        bundle_bytes += size
    if bundle:
        _pull_cat(host, bundle, done)


def _pull_sftp(host: Any, unit: Unit, files: list) -> dict[str, str]:
    shas = {}
    for role, remote, _, sha in files:
        local = unit.outputs[role]
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise local_error(exc, local.parent) from None
        shas[role] = host.get_file(remote, local, expected_sha256=sha)
    return shas


def _pull_cat(host: Any, bundle: list, done: Callable[[Unit, dict[str, str]], None]) -> None:
    paths = [remote for _, files in bundle for _, remote, _, _ in files]
    result = host.run(["cat", "--", *paths], check=False)
    data, at = result.stdout, 0
    if result.exit_code != 0 or len(data) != sum(f[2] for _, fs in bundle for f in fs):
        raise TransferError(f"pulling {len(paths)} outputs from {host.name} failed "
                            f"(exit {result.exit_code}): "
                            f"{result.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    for unit, files in bundle:
        shas = {}
        for role, remote, size, sha in files:
            shas[role] = _write_verified(unit.outputs[role], data[at:at + size], sha,
                                         f"{remote} from {host.name}")
            at += size
        done(unit, shas)


def _write_verified(local: Path, data: bytes, expected: str | None, what: str) -> str:
    """Write ``data`` to ``local`` by temp name + rename once its sha256 is the expected one."""
    got = hashlib.sha256(data).hexdigest()
    if not expected or got != expected.lower():  # the payload always records one
        raise TransferError(f"{what} arrived with sha256 {got}, expected {expected}; the file "
                            "was not written", hint="run the command again to retry the pull")
    tmp = local.with_name(f".{local.name}.part-{secrets.token_hex(4)}")
    try:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, local)
    except OSError as exc:  # this machine's disk or folder: not a link error
        raise local_error(exc, local) from None
    finally:
        with contextlib.suppress(OSError):  # fails itself on a name too long
            tmp.unlink(missing_ok=True)
    return got
