"""What every command shares: common options, the console, and the one place that turns
a RemoteSepError into a printed message (or a JSON envelope) and an exit code."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
HostArg = Annotated[str, typer.Argument(
    help="Host profile name, ssh_config alias, or user@host[:port].",
    autocompletion=lambda incomplete: _complete("host_names", incomplete))]
HostOption = Annotated[str, typer.Option(
    "--host", "-H", help="Host profile name, ssh_config alias, or user@host[:port] "
    "('local': here).", autocompletion=lambda incomplete: _complete("host_names", incomplete))]
JobArg = Annotated[str, typer.Argument(
    help="Job id (see `remote-sep jobs NAME`).",
    autocompletion=lambda incomplete: _complete("job_ids", incomplete))]


def _complete(which: str, incomplete: str) -> list[str]:
    from remote_sep.cli import complete  # only when the shell asks

    return getattr(complete, which)(incomplete)


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one machine-readable JSON result on stdout.")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to every question.")]

# Messages and progress go to stderr, results to stdout: `--json` output stays parseable.
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


# The live view that owns the terminal now, if any: questions are asked inside its pause.
_active_pause: list[Callable[[], AbstractContextManager]] = []
_ask_lock = threading.Lock()  # batch hosts connect in threads: one question at a time


@contextmanager
def terminal_owner(pause: Callable[[], AbstractContextManager]) -> Iterator[None]:
    """While a live view runs, questions from lower layers pause it first."""
    _active_pause.append(pause)
    try:
        yield
    finally:
        _active_pause.remove(pause)


def ask_first_use(where: str, key_type: str, fingerprint: str, file: str) -> bool:
    """OpenSSH's first-use question for an unknown host key, on the terminal."""
    with _ask_lock, (_active_pause[-1]() if _active_pause else nullcontext()):
        err_console.print(f"The authenticity of {where} can't be established.\n"
                          f"{key_type} key fingerprint is {fingerprint}.", markup=False)
        return typer.confirm(f"Trust it and add it to {file}?", default=False, err=True)


def install_first_use_prompt() -> None:
    """Ask about unknown host keys only when a person is at a terminal (stdin and stderr)."""
    from remote_sep.hosts.known_hosts import set_first_use_prompt

    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    set_first_use_prompt(ask_first_use if interactive else None)


def offer_to_save(profile: Any, hosts_file: Path | None) -> None:
    """After a bare `user@host` target worked, offer (on a terminal) to save it as a profile,
    as `remote-sep hosts add NAME user@host` would."""
    if not getattr(profile, "bare", False) or not (sys.stdin.isatty() and sys.stderr.isatty()):
        return
    if not typer.confirm(f"Save {profile.name} as a host profile?", default=False, err=True):
        return
    from remote_sep import profiles

    name = typer.prompt("Profile name", default=profile.host, err=True).strip()
    saved = profiles.add_host(name, profile.name, hosts_file=hosts_file)
    err_console.print(f"saved as '{name}' in {saved.source_file}; next time: --host {name}",
                      markup=False, soft_wrap=True)


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
