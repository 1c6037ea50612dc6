"""How `separate` and `batch` may bootstrap an unprovisioned host (one helper for both).

--yes bootstraps without asking; else a terminal is asked (the live view paused while the
user answers); with no terminal the host fails with the `remote-sep bootstrap` hint.
Bootstrap events go to the host's bootstrap log and, as lines, to `say(host, line)`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import typer

from remote_sep.provision.auto import ReadyOptions

Pause = Callable[[], AbstractContextManager]  # a context in which the terminal is free
Say = Callable[[str, str], None]  # (host name, human line)


def ready_options(*, yes: bool, pause: Pause, say: Say, model: str | None = None
                  ) -> ReadyOptions:
    """ReadyOptions for a command; one instance serves every host of a batch (the events
    it gets carry their host's name, see provision.auto.ensure_ready_with)."""
    from remote_sep.cli.bootstrap import local_token_source, log_event, log_path, render

    typed: list[str] = []  # a token typed once serves the other hosts of this command
    typed_lock = threading.Lock()

    def report(event: dict[str, Any]) -> None:
        host = str(event.get("host") or "host")
        log = log_path(host)
        log.parent.mkdir(parents=True, exist_ok=True)
        log_event(log, event)
        for line in render(event):
            say(host, line)

    def ask(question: str) -> bool:
        with pause():
            return typer.confirm(question, default=False, err=True)

    def token_source(remote_has_token: bool) -> str | None:
        with typed_lock:  # also serialised by ensure_ready; this guards `typed` itself
            if typed and not remote_has_token:
                return typed[0]
            token = local_token_source(remote_has_token, pause)
            if token and not typed:
                typed.append(token)
            return token

    return ReadyOptions(assume_yes=yes, ask=ask if sys.stdin.isatty() else None,
                        report=report, token_source=token_source, model=model)
