"""The `remote-sep` command: a thin Typer app; each command lives in its own cli_* module."""

from __future__ import annotations

import typer

from remote_payload.protocol import EXIT_CODES

_EXIT_TABLE = "\n\n".join(f"{code}: {kind}" for kind, code in EXIT_CODES.items())

app = typer.Typer(
    name="remote-sep",
    help=(
        "Separate a sound source out of an audio file with SAM Audio on a remote GPU box "
        f"over SSH, and bring the stems back.\n\nExit codes:\n\n0: ok\n\n{_EXIT_TABLE}"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each cli_* module adds its commands here (one line each).
from remote_sep import cli_hosts  # noqa: E402

cli_hosts.register(app)
from remote_sep import cli_separate  # noqa: E402

cli_separate.register(app)
from remote_sep import cli_bootstrap  # noqa: E402

cli_bootstrap.register(app)
from remote_sep import cli_batch  # noqa: E402

cli_batch.register(app)


def main() -> None:
    app()
