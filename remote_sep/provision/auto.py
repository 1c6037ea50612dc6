"""Make sure a host can run the payload, bootstrapping it first when that is allowed.

The one place `separate` and `batch` decide "ready, bootstrap, or fail":
- the profile names a `python`: that interpreter runs jobs and the host is never
  bootstrapped automatically (whether it exists is checked by jobs.prepare);
- else the bootstrap stamp must be complete and match the profile's plan
  (stamp.check_stamp); when it does not, the host is bootstrapped if the user said `--yes`
  or answers yes to `ask(question)`, otherwise NotProvisioned (exit 9) with the hint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from remote_sep.errors import NotProvisioned
from remote_sep.hosts.base import Host
from remote_sep.hosts.profile import HostProfile
from remote_sep.provision.apply import Report, TokenSource, bootstrap
from remote_sep.provision.plan import venv_python
from remote_sep.provision.ready import RemoteReady
from remote_sep.provision.stamp import check_stamp, parse_stamp, read_stamp_script

_ASK_LOCK = threading.Lock()
_TOKEN_LOCK = threading.Lock()
UNREAD: Any = object()  # `stamp=` default: read the stamp here (one round trip)
Ask = Callable[[str], bool]  # (question) -> the user's answer


def _drop(event: dict[str, Any]) -> None:
    pass


def _no_token(remote_has_token: bool) -> str | None:
    return None


@dataclass
class ReadyOptions:
    """How a command may provision a host on the fly (built by the CLI layer)."""

    assume_yes: bool = False  # --yes: bootstrap without asking
    ask: Ask | None = None  # None: nobody to ask (no terminal) -> fail with the hint
    report: Report = _drop  # bootstrap events (see provision/apply.py)
    token_source: TokenSource = _no_token  # the local HF token (may prompt)
    model: str | None = None  # the model whose gated access the bootstrap checks


def ensure_ready(host: Host, profile: HostProfile, *, assume_yes: bool = False,
                 ask: Ask | None = None, report: Report = _drop,
                 token_source: TokenSource = _no_token, model: str | None = None,
                 stamp: Any = UNREAD) -> str:
    """The interpreter jobs on this host run with, bootstrapping the host first if needed
    and allowed. Costs one round trip on a ready host (none when the caller passes the
    `stamp` it already read, e.g. from jobs.prepare). The venv path is returned as the
    profile writes it ('~' unresolved); jobs.prepare gives the resolved one.

    Raises NotProvisioned when the host needs a bootstrap and it was not allowed, and any
    bootstrap error (gated, auth, no_gpu, disk_full, …) when the bootstrap fails."""
    if profile.python:
        return profile.python
    if stamp is UNREAD:
        result = host.run(read_stamp_script(profile.path), check=False)
        stamp = parse_stamp(result.stdout.decode("utf-8", "replace"))
    try:
        check_stamp(profile, stamp)
        return venv_python(profile.path)
    except NotProvisioned as problem:
        _allowed(profile, problem, assume_yes, ask)
    # A host bootstrapped with --cpu earlier stays a CPU host when its plan is redone.
    cpu = profile.cpu or bool(((stamp or {}).get("facts") or {}).get("cpu"))
    report({"event": "auto_bootstrap", "host": profile.name, "cpu": cpu})
    bootstrap(host, profile, model=model, cpu=cpu, token_source=serialized(token_source),
              report=report, confirm=lambda plan: True)  # the user agreed (or said --yes)
    return venv_python(profile.path)


def serialized(token_source: TokenSource) -> TokenSource:
    """`token_source` one call at a time: batch bootstraps hosts on several threads, and
    only one of them may prompt for the token on the terminal at once."""
    def locked(remote_has_token: bool) -> str | None:
        with _TOKEN_LOCK:
            return token_source(remote_has_token)
    return locked


def ensure_ready_with(host: Host, profile: HostProfile, options: ReadyOptions,
                      stamp: Any = UNREAD) -> str:
    """`ensure_ready` with the options a CLI built once (several hosts share them: every
    event reported carries the host's name as "host")."""
    def report(event: dict[str, Any]) -> None:
        options.report({**event, "host": profile.name})

    return ensure_ready(host, profile, assume_yes=options.assume_yes, ask=options.ask,
                        report=report, token_source=options.token_source,
                        model=options.model, stamp=stamp)


def prepare_ready(current_host: Callable[[], Host], profile: HostProfile,
                  options: ReadyOptions, prepare: Callable[[], RemoteReady]) -> RemoteReady:
    """`prepare` (jobs.prepare bound to its arguments: one round trip that also reads the
    stamp), judged by ensure_ready; after a bootstrap that made the venv, prepare again.
    The way separate and batch get a host ready before their first job. `current_host()`
    is the connection to bootstrap over (a reconnecting caller's newest one)."""
    try:
        ready: RemoteReady | None = prepare()
    except NotProvisioned:
        if profile.python:
            raise  # the profile's own interpreter is missing: never bootstrap over it
        ready = None
    ensure_ready_with(current_host(), profile, options, stamp=ready.stamp if ready else None)
    return ready if ready is not None else prepare()


def _why(profile: HostProfile, problem: NotProvisioned) -> str:
    """'host X is not provisioned' plus the stamp's reason when it says more."""
    plain = f"host {profile.name} is not provisioned"
    return plain if problem.message == plain else f"{plain} ({problem.message})"


def question(profile: HostProfile, problem: NotProvisioned) -> str:
    why = _why(profile, problem)
    return f"{why[0].upper()}{why[1:]}. Bootstrap it now?"


def _allowed(profile: HostProfile, problem: NotProvisioned, assume_yes: bool,
             ask: Ask | None) -> None:
    """Return when the bootstrap may go ahead; raise NotProvisioned when it may not."""
    if assume_yes:
        return
    hint = (f"run: remote-sep bootstrap {profile.name} (or pass --yes to bootstrap it "
            "automatically)")
    if ask is None:
        raise NotProvisioned(_why(profile, problem), hint=hint)
    with _ASK_LOCK:  # batch: several host threads, one terminal
        answer = ask(question(profile, problem))
    if not answer:
        raise NotProvisioned(f"{_why(profile, problem)}; bootstrap declined", hint=hint)
