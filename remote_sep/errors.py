"""One exception hierarchy for the laptop side; the CLI maps it to exit codes in one place.

Each error has a ``kind`` from remote_payload.protocol.EXIT_CODES, so a failure reported by
the remote payload (an ``error`` event) and the same failure found locally exit alike.
"""

from __future__ import annotations

from remote_payload.protocol import exit_code_for


class RemoteSepError(Exception):
    """A failure the user can act on: one clear message, one exit code."""

    kind = "internal"

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


class JobFailed(RemoteSepError):
    """The remote job reported an error event (its kind is carried over) or died."""

    kind = "job_failed"


class Interrupted(RemoteSepError):
    kind = "interrupted"
