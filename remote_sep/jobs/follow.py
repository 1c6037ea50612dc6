"""Following a remote job: a link that reconnects with back-off, and the loop that reads
events from the last offset, pulls each item's outputs when ``item_done`` arrives and stops
at ``bye``. Cores report through ``notify(kind, data)`` and never print.

notify kinds: ``status`` {message}, ``event`` {the event}, ``transfer`` {name, done, total},
``pulled`` {path, sha256}.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from remote_sep.errors import (
    AuthFailed,
    HostKeyError,
    JobFailed,
    RemoteSepError,
    Unreachable,
    local_write_error,
)
from remote_sep.hosts.base import sha256_file
from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.space import clean_hint
from remote_sep.jobs import records
from remote_sep.jobs.layout import Cursor, JobPaths, Poll, poll_events, stderr_tail
from remote_sep.jobs.outputs import local_error

Notify = Callable[[str, dict[str, Any]], None]
T = TypeVar("T")

RECONNECT_BUDGET_S = 120.0  # REMOTE_SEP_RECONNECT_BUDGET overrides (seconds)
OUTPUT_KINDS = records.DEFAULT_KINDS  # a stem split's are in record.kinds

# What the user should do about a failure the payload reported (by kind).
ERROR_HINTS = {
    "gated": "request access on the model's Hugging Face page, then run "
             "`remote-sep bootstrap HOST` to store a token that has it",
    "auth": "the Hugging Face token on the host is missing or invalid: "
            "run `remote-sep bootstrap HOST`",
    "oom": "the GPU ran out of memory even at the smallest chunk: "
           "try --model small or --dtype bf16",
    "no_gpu": "the host has no usable CUDA GPU (check with `remote-sep hosts check HOST`)",
    "bad_audio": "the payload could not read the uploaded file",
}


def _quiet(kind: str, data: dict[str, Any]) -> None:
    pass


def is_link_error(exc: BaseException) -> bool:
    """A broken connection (worth a reconnect), as opposed to a failure of the work."""
    if isinstance(exc, Unreachable | EOFError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    if isinstance(exc, OSError) and local_write_error(exc, "") is not None:
        return False  # a full or read-only disk here: a reconnect cannot fix it
    if isinstance(exc, RemoteSepError):
        # A command cut off by the link has no exit status (paramiko reports -1).
        result = getattr(exc, "result", None)
        return result is not None and getattr(result, "exit_code", 0) < 0
    if isinstance(exc, OSError):
        return True
    return type(exc).__module__.split(".")[0] == "paramiko"


def _name(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def default_connect(profile: HostProfile):
    from remote_sep.ssh.host import connect  # late: the SSH stack loads only when needed

    return connect(profile)


class Link:
    """The current connection to one host; ``call`` retries an idempotent action after
    reconnecting with exponential back-off, within a bounded time budget per call. The
    budget counts from the call's first link error and also holds across reconnects that
    succeed: a link that comes up and drops again at once (flapping) gives up, it does
    not reconnect forever."""

    def __init__(self, profile: HostProfile, connect: Callable[[HostProfile], Any] | None = None,
                 *, notify: Notify = _quiet, budget_s: float | None = None):
        self.profile = profile
        self._connect = connect or default_connect
        self._notify = notify
        self.budget_s = budget_s if budget_s is not None else float(
            os.environ.get("REMOTE_SEP_RECONNECT_BUDGET", RECONNECT_BUDGET_S))
        self.reconnects = 0
        self._spent_round_trips = 0
        self.host = self._connect(profile)

    @property
    def round_trips(self) -> int:
        return self._spent_round_trips + getattr(self.host, "round_trips", 0)

    def call(self, action: Callable[[Any], T]) -> T:
        deadline: float | None = None
        delay = 0.5
        while True:
            try:
                return action(self.host)
            except Exception as exc:
                if not is_link_error(exc) or self.budget_s <= 0:  # budget 0: never reconnect
                    raise
                if deadline is None:
                    deadline = time.monotonic() + self.budget_s
                else:  # it failed again right after a reconnect that worked: back off
                    if time.monotonic() + delay > deadline:
                        self._drop()
                        raise Unreachable(
                            f"the link to {self.profile.name} keeps dropping: gave up after "
                            f"{self.budget_s:.0f} s of reconnects ({_name(exc)})") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 8.0)
                self._reconnect(deadline, exc)

    def _reconnect(self, deadline: float, cause: BaseException) -> None:
        self._drop()
        delay = 0.5
        while True:
            self._notify("status", {"message": f"link to {self.profile.name} lost "
                                               f"({type(cause).__name__}); reconnecting…"})
            try:
                self.host = self._connect(self.profile)
                self.reconnects += 1
                self._notify("status", {"message": f"reconnected to {self.profile.name}"})
                return
            except (AuthFailed, HostKeyError):
                raise
            except Exception as exc:
                if not is_link_error(exc):
                    raise
                cause = exc
            if time.monotonic() + delay > deadline:
                raise Unreachable(
                    f"lost the link to {self.profile.name} and could not reconnect "
                    f"within {self.budget_s:.0f} s ({cause})")
            time.sleep(delay)
            delay = min(delay * 2, 8.0)

    def _drop(self) -> None:
        host, self.host = self.host, None
        if host is not None:
            self._spent_round_trips += getattr(host, "round_trips", 0)
            try:
                host.close()
            except Exception:  # noqa: BLE001 - the link is already broken
                pass

    def close(self) -> None:
        self._drop()


@dataclass
class FollowResult:
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> kind -> path
    shas: dict[str, str] = field(default_factory=dict)  # local path -> sha256
    # key -> item_done's quality fields: ``scores`` (--score), ``rerank`` (--rerank)
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    # key -> [[start_s, end_s], …]: the span predictor's finds (item_done, predict_spans)
    predicted_spans: dict[str, list] = field(default_factory=dict)
    bye: dict[str, Any] | None = None


def error_from_event(event: dict[str, Any], host: str) -> RemoteSepError:
    kind = str(event.get("kind") or "internal")
    where = f" ({event['item']}/d{event['desc']})" if event.get("item") is not None \
        and event.get("desc") is not None else ""
    hint = ERROR_HINTS.get(kind, "").replace("HOST", host) or None
    # the payload cannot know the host's name: its commands say HOST
    message = str(event.get("message", "")).replace("remote-sep bootstrap HOST",
                                                    f"remote-sep bootstrap {host}")
    event = {**event, "message": message}
    if kind == "disk_full":  # what did not fit is in the payload's message
        return RemoteSepError(f"no space left on {host}{where}: {event.get('message', '')}",
                              kind=kind, hint=clean_hint(host))
    return RemoteSepError(f"remote job failed{where}: {kind}: {event.get('message', '')}",
                          kind=kind, hint=hint)


def pull_outputs(link: Link, record: records.JobRecord, event: dict[str, Any],
                 notify: Notify, result: FollowResult) -> None:
    """Fetch one item_done's files (sha256-checked, temp name + rename by Host.get_file)."""
    paths = JobPaths(record.base, record.job_id)
    key = records.output_key(str(event.get("item")), int(event.get("desc") or 0))
    if key not in record.prefixes:  # a job this laptop did not start: name it after the job
        record.prefixes[key] = str(Path.cwd() / f"{record.job_id}_{key.replace('/', '_d')}")
    outputs = event.get("outputs") or {}
    for kind in record.kinds_for(key):
        info = outputs.get(kind)
        if not info:
            continue
        local = record.local_path(key, kind)
        sha = info.get("sha256")
        if not (local.exists() and sha and record.pulled.get(str(local)) == sha
                and sha256_file(local) == sha):
            remote = paths.resolve(info["path"])

            def fetch(host, remote=remote, local=local, sha=sha):
                def progress(done: int, total: int) -> None:
                    notify("transfer", {"name": local.name, "done": done, "total": total})
                return host.get_file(remote, local, expected_sha256=sha, progress=progress)

            try:
                local.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise local_error(exc, local.parent) from None
            sha = link.call(fetch)
            record.pulled[str(local)] = sha
            records.save(record)
            notify("pulled", {"path": str(local), "sha256": sha})
        result.outputs.setdefault(key, {})[kind] = str(local)
        result.shas[str(local)] = sha


def follow_job(link: Link, record: records.JobRecord, cursor: Cursor,
               notify: Notify = _quiet, *, wait_s: float | None = None,
               first_poll: Poll | None = None) -> FollowResult:
    """Read events until ``bye``; pull outputs as they finish. Raises the first ``error``
    event's kind (after pulling what did finish), or JobFailed when the process dies
    without ``bye``."""
    paths = JobPaths(record.base, record.job_id)
    result = FollowResult()
    first_error: dict[str, Any] | None = None
    poll_kwargs = {} if wait_s is None else {"wait_s": wait_s}
    while True:
        if first_poll is not None:  # already read by start_and_poll
            poll, first_poll = first_poll, None
        else:
            poll = link.call(lambda host: poll_events(host, paths, record.pid, cursor,
                                                      **poll_kwargs))
        for event in poll.events:
            notify("event", event)
            name = event.get("event")
            if name == "item_done":
                pull_outputs(link, record, event, notify, result)
                key = records.output_key(str(event.get("item")), int(event.get("desc") or 0))
                quality = {k: event[k] for k in ("scores", "rerank") if event.get(k)}
                if quality:
                    result.quality[key] = quality
                if "predicted_spans" in event:
                    result.predicted_spans[key] = event["predicted_spans"]
            elif name == "error" and first_error is None:
                first_error = event
            elif name == "bye":
                result.bye = event
        record.offset, record.last_seq = cursor.offset, cursor.last_seq
        records.save(record)
        if result.bye is not None:
            break
        if not poll.alive and not poll.events:
            tail = link.call(lambda host: stderr_tail(host, paths))
            if first_error is not None:
                break
            raise JobFailed(f"remote job {record.job_id} on {record.host} ended without "
                            f"finishing" + (f"; stderr.log ends with:\n{tail}" if tail else ""),
                            hint=f"full log on the host: {paths.stderr}")
    if first_error is not None:
        raise error_from_event(first_error, record.host)
    return result
