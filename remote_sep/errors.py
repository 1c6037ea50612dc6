"""One exception hierarchy for the laptop side; the CLI maps it to exit codes in one place.

Each error has a ``kind`` from remote_payload.protocol.EXIT_CODES, so a failure reported by
the remote payload (an ``error`` event) and the same failure found locally exit alike.
"""

from __future__ import annotations

import errno
import os

from remote_payload.protocol import exit_code_for


class RemoteSepError(Exception):
    """A failure the user can act on: one clear message, one exit code."""

    kind = "internal"
    local = False  # True: a write on THIS machine failed (local_write_error), not the host

    def __init__(self, message: str, *, hint: str | None = None, kind: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if kind is not None:
            self.kind = kind

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.kind)

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class BadAudio(RemoteSepError):
    kind = "bad_audio"


class ConfigError(RemoteSepError):
    kind = "bad_config"


class UnknownHost(RemoteSepError):
    kind = "unknown_host"


class Unreachable(RemoteSepError):
    kind = "unreachable"


class AuthFailed(RemoteSepError):
    kind = "auth"


class HostKeyError(RemoteSepError):
    kind = "host_key"


class NotProvisioned(RemoteSepError):
    kind = "not_provisioned"


class OutputExists(RemoteSepError):
    kind = "output_exists"


class TransferError(RemoteSepError):
    kind = "transfer"


class DiskFull(RemoteSepError):
    """A disk filled up: the host's (upload, job files, outputs) or the laptop's."""

    kind = "disk_full"


class OutputUnwritable(RemoteSepError):
    """A local output cannot be written: read-only, no permission, name too long."""

    kind = "output_unwritable"


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR,
               errno.EISDIR, errno.EEXIST}


def local_write_error(exc: OSError, path: str | os.PathLike[str],
                      hint: str | None = None) -> RemoteSepError | None:
    """The RemoteSepError for a failed write on THIS machine, or None when EXC is not one
    (then it is not the output's fault). A local write error is never a link error: a
    reconnect cannot fix it."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    error: RemoteSepError
    if exc.errno in _DISK_FULL:
        error = DiskFull(f"the local disk is full: cannot write {path} ({reason})", hint=hint)
    elif exc.errno in _UNWRITABLE:
        error = OutputUnwritable(f"cannot write {path}: {reason}", hint=hint)
    else:
        return None
    error.local = True
    return error


class ClusterError(RemoteSepError):
    """A Ray cluster cannot be reached, refuses our token, or cannot place an actor."""

    kind = "cluster"


class JobFailed(RemoteSepError):
    """The remote job reported an error event (its kind is carried over) or died."""

    kind = "job_failed"


class Interrupted(RemoteSepError):
    kind = "interrupted"
