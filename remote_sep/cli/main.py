"""The `remote-sep` command: a thin Typer app; each command lives in its own module here."""

from __future__ import annotations

from typing import Annotated, Any

import typer

import remote_sep
from remote_payload.protocol import EXIT_CODES
from remote_sep.cli.common import install_first_use_prompt

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
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    pretty_exceptions_enable=False,
)

# Each command module adds its commands (imported after `app` exists).
from remote_sep.cli import (  # noqa: E402
    batch,
    bootstrap,
    clean,
    cluster,
    doctor,
    hosts,
    separate,
    split,
)

for _module in (separate, split, batch, bootstrap, hosts, clean, doctor, cluster):
    _module.register(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"remote-sep {remote_sep.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version and exit.")] = False,
) -> None:
    """Separate a sound source out of an audio file with SAM Audio on a remote GPU box over
    SSH, and bring the stems back."""
    install_first_use_prompt()


def build_command() -> Any:
    """The click command for the app, with every boolean flag shown as a flag in --help
    (Typer's rich help prints '<bool>' after a flag, which reads as if it took a value)."""
    command = typer.main.get_command(app)

    def clear(cmd: Any) -> None:
        help_option = cmd.get_help_option(cmd.context_class(cmd))  # cached on the command
        for param in [*cmd.params, *([help_option] if help_option else [])]:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        for sub in getattr(cmd, "commands", {}).values():
            clear(sub)

    clear(command)
    return command


def main() -> None:
    build_command()(prog_name="remote-sep")
