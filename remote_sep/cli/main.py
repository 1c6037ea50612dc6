"""The `remote-sep` command: a thin Typer app; each command lives in its own module here."""

from __future__ import annotations

import typer

from remote_payload.protocol import EXIT_CODES

# One compact line for --help; the README has the table with meanings.
_EXIT_LINE = ", ".join(f"{code} {kind}" for kind, code in EXIT_CODES.items())

app = typer.Typer(
    name="remote-sep",
    help=(
        "Separate a sound source out of an audio file with SAM Audio on a remote GPU box "
        "over SSH, and bring the stems back."
    ),
    # 2 is the argument parser's own (click): a missing or unknown option, printed as usage.
    epilog=f"Exit codes: 0 ok, 2 usage, {_EXIT_LINE}.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each command module adds its commands (imported after `app` exists).
from remote_sep.cli import batch, bootstrap, clean, hosts, separate  # noqa: E402

for _module in (separate, batch, bootstrap, hosts, clean):
    _module.register(app)


def main() -> None:
    app()
