"""What every command shares: common options, the console, and the one place that turns
a RemoteSepError into a printed message (or a JSON envelope) and an exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from remote_payload.protocol import exit_code_for
from remote_sep.errors import RemoteSepError

RESULT_VERSION = 1

HostsOption = Annotated[
    Path | None,
    typer.Option(
        "--hosts",
        envvar="REMOTE_SEP_HOSTS",
        help="hosts.yaml to use (default: the user config dir's remote-sep/hosts.yaml).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one machine-readable JSON result on stdout.")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to every question.")]

# Messages and progress go to stderr, results to stdout: `--json` output stays parseable.
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


def envelope(command: str, ok: bool, **body: Any) -> dict[str, Any]:
    """The versioned JSON result every command prints under --json."""
    return {"v": RESULT_VERSION, "command": command, "ok": ok, **body}


def run_command(command: str, as_json: bool, action: Callable[[], dict[str, Any] | None]) -> None:
    """Run a command's core; map failures to one message and their exit code."""
    try:
        result = action()
    except RemoteSepError as exc:
        _fail(command, as_json, exc.kind, exc.message, exc.hint, getattr(exc, "details", None))
    except KeyboardInterrupt:
        _fail(command, as_json, "interrupted", "interrupted", None)
    else:
        if as_json:
            sys.stdout.write(json.dumps(envelope(command, True, result=result or {})) + "\n")


def _fail(command: str, as_json: bool, kind: str, message: str, hint: str | None,
          details: dict[str, Any] | None = None) -> None:
    code = exit_code_for(kind)
    if as_json:
        error = {"kind": kind, "message": message, "hint": hint, **(details or {})}
        sys.stdout.write(json.dumps(envelope(command, False, error=error, exit_code=code)) + "\n")
    else:
        err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
        if hint:
            err_console.print(f"  hint: {hint}", markup=False, soft_wrap=True)
    raise typer.Exit(code)
