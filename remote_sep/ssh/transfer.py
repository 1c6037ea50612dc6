"""Fast, atomic SFTP transfers on an already open SFTP client (ssh/host.py passes it in;
this module never imports paramiko itself).

Why these numbers (DESIGN.md §5, loopback): paramiko's default 32 KiB requests, issued one
at a time, leave the link idle; 255 KiB requests, pipelined for writes and prefetched for
reads, run near OpenSSH speed. 256 KiB and above make OpenSSH's sftp-server drop the
channel. The prefetch is bounded so a fast link cannot fill memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from remote_sep.errors import TransferError, local_write_error
from remote_sep.hosts.base import Progress, tmp_name

REQUEST = 255 * 1024
PREFETCH_REQUESTS = 32  # 8 MiB in flight: matches the receive window


def _big_requests(handle) -> None:
    handle.MAX_REQUEST_SIZE = REQUEST  # instance attribute: read/write/prefetch use it


def _remove_quietly(sftp, path: str) -> None:
    try:
        sftp.remove(path)
    except OSError:
        pass


def send_to_temp(sftp, local: Path, tmp: str, progress: Progress | None,
                 known_sha256: str | None = None) -> tuple[int, str]:
    """Pipelined 255 KiB writes of LOCAL to the remote temp name TMP; returns (bytes sent,
    their sha256): hashed while sending, or KNOWN_SHA256 when the caller already hashed
    LOCAL (then a file that changed since simply fails the check on the host). paramiko
    drops the error replies of pipelined writes, so nothing here proves the bytes landed:
    the caller checks TMP's size and sha256 on the host before renaming it
    (hosts/landing.py)."""
    digest = None if known_sha256 else hashlib.sha256()
    done = 0
    try:
        with open(local, "rb") as src:
            total = os.fstat(src.fileno()).st_size
            with sftp.open(tmp, "wb") as dst:
                _big_requests(dst)
                dst.set_pipelined(True)
                while block := src.read(REQUEST):
                    dst.write(block)
                    if digest is not None:
                        digest.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
    except BaseException:
        _remove_quietly(sftp, tmp)
        raise
    if progress and total == 0:
        progress(0, 0)
    return done, known_sha256 or digest.hexdigest()


def download(sftp, remote: str, local: Path, expected_sha256: str | None,
             progress: Progress | None, host: str) -> str:
    """Prefetched 255 KiB reads into a local temp name; size and sha256 checked before the
    rename, so a file at `local` is always complete. Returns the sha256. A failed local
    write is DiskFull / OutputUnwritable (never taken for a link error)."""
    tmp = local.with_name(f".{local.name}.part-{secrets.token_hex(4)}")
    digest = hashlib.sha256()
    done = 0
    try:
        dst = _local_write(lambda: _open_local(local, tmp), local)
        with dst, sftp.open(remote, "rb") as src:
            _big_requests(src)
            total = src.stat().st_size
            src.prefetch(total, PREFETCH_REQUESTS)
            while done < total:
                block = src.read(min(REQUEST, total - done))
                if not block:
                    break
                digest.update(block)
                _local_write(lambda block=block: _write_all(dst, block), local)
                done += len(block)
                if progress:
                    progress(done, total)
        if done != total:
            raise TransferError(f"download of {remote} from {host} stopped at {done} of "
                                f"{total} bytes")
        got = digest.hexdigest()
        if expected_sha256 and got != expected_sha256.lower():
            raise TransferError(
                f"{remote} from {host} arrived with sha256 {got}, expected {expected_sha256}; "
                "the file was not written", hint="run the command again to retry the pull")
        _local_write(lambda: os.replace(tmp, local), local)
        return got
    finally:
        with contextlib.suppress(OSError):  # exists() itself fails on a name too long
            tmp.unlink(missing_ok=True)


def _open_local(local: Path, tmp: Path):
    local.parent.mkdir(parents=True, exist_ok=True)
    # unbuffered: a full disk fails in write(), not again in close() over the real error
    return open(tmp, "wb", buffering=0)  # noqa: SIM115 - closed by download's with


def _write_all(dst, block: bytes) -> None:
    view = memoryview(block)
    while view:  # a raw write may take part of the block
        view = view[dst.write(view):]


def _local_write(action, local: Path):
    """Run a write on THIS machine; its OSError is the output's fault, not the link's."""
    try:
        return action()
    except OSError as exc:
        error = local_write_error(exc, local)
        if error is None:
            raise
        raise error from None


def write_atomic(sftp, remote: str, data: bytes, mode: int) -> None:
    """Temp file created, chmod'ed (before any byte is written), filled, size checked,
    renamed. Not pipelined: each write waits for its reply, so a refused write (a full
    disk) raises instead of leaving a short file (the data are small: a stamp, a token)."""
    tmp = tmp_name(remote, secrets.token_hex(4))
    try:
        with sftp.open(tmp, "wb") as dst:
            dst.chmod(mode)
            _big_requests(dst)
            dst.write(data)
            dst.flush()
            landed = dst.stat().st_size
        if landed != len(data):
            raise OSError(f"{landed} of {len(data)} bytes landed")
        sftp.posix_rename(tmp, remote)
    except BaseException:
        _remove_quietly(sftp, tmp)
        raise


def read_range(sftp, remote: str, offset: int, limit: int | None) -> bytes:
    """Bytes [offset, offset+limit) (to the end when limit is None); b'' past the end."""
    with sftp.open(remote, "rb") as src:
        _big_requests(src)
        size = src.stat().st_size
        want = max(0, size - offset) if limit is None else max(0, min(limit, size - offset))
        if want == 0:
            return b""
        src.seek(offset)
        if want > 4 * REQUEST:
            src.prefetch(offset + want, PREFETCH_REQUESTS)
        parts = []
        while want > 0:
            block = src.read(min(want, REQUEST))
            if not block:
                break
            parts.append(block)
            want -= len(block)
        return b"".join(parts)
