"""Batch workers nobody feeds any more, for `remote-sep clean` (jobs/cleanup.py).

A batch worker (a job folder with ``inbox/``) waits on its inbox until the laptop closes it.
A laptop that crashed or lost the host for good never does, so the worker holds its GPU
memory forever. A connected laptop touches ``P/jobs/<id>/heartbeat`` every 20 s; a worker is
idle when it still runs, has not said ``bye``, its events have been quiet for
IDLE_WORKER_S and its heartbeat is older than that (or missing: a worker started by a
remote-sep without heartbeats).

Stopping one: TERM to its process group (it was started with setsid), a wait of at most
``grace_s``, then KILL (a stray worker may ignore TERM). Its pid must still be a
``remote_payload`` process and its heartbeat still stale at that moment, so a reused pid
or a laptop that came back is left alone. The folder stays: a batch resume pulls what
the worker finished.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.shell import quote, remote_path_expr
from remote_sep.jobs import layout

IDLE_WORKER_S = 300.0  # 15 missed heartbeats
STOP_GRACE_S = 10.0  # TERM -> KILL
_JOB_ID = re.compile(r"[\w.-]+")


@dataclass
class IdleWorker:
    job_id: str
    quiet_s: float  # since its last event
    heartbeat_age_s: float | None  # None: no heartbeat file
    stopped: str | None = None  # after a stop: "TERM", "KILL", or "gone" / "kept" (why not)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def idle_worker(job: layout.JobSummary, quiet_s: float, inbox: bool, alive: bool,
                heartbeat: str) -> IdleWorker | None:
    """The listing's facts about one job folder -> an IdleWorker, or None when it is not
    a batch worker or someone still feeds it."""
    if not (inbox and alive) or (job.last_event or {}).get("event") == "bye" \
            or not _JOB_ID.fullmatch(job.job_id):
        return None
    age = float(heartbeat) if heartbeat.lstrip("-").isdigit() else None
    if quiet_s < IDLE_WORKER_S or (age is not None and age < IDLE_WORKER_S):
        return None
    return IdleWorker(job.job_id, quiet_s, age)


def stop_script(profile: HostProfile, job_ids: list[str], grace_s: float) -> str:
    """TERM every idle worker at once, wait up to grace_s for all, KILL the rest. Prints
    `stopped\\t<id>\\tTERM|KILL`, `gone\\t<id>` or `kept\\t<id>` (its laptop came back)."""
    rounds = max(1, int(grace_s / 0.1))
    if any(not _JOB_ID.fullmatch(job_id) for job_id in job_ids):
        raise ValueError("not a job id")  # listed names that are not ids never get here
    lines = [
        layout.ALIVE_FN.rstrip("\n"),
        f"B={remote_path_expr(profile.path)}",
        "now=$(date +%s); list=''",
        # the pid must still be a payload: a pid reused by another process is not ours
        "payload() { tr '\\000' ' ' < /proc/$1/cmdline 2>/dev/null | grep -q remote_payload; }",
    ]
    for job_id in job_ids:
        d = f'"$B"/jobs/{quote(job_id)}'
        lines.append(
            f"p=$(cat {d}/pid 2>/dev/null || echo 0); case \"$p\" in \"\"|*[!0-9]*) p=0;; esac; "
            f"hb=$(stat -c %Y {d}/heartbeat 2>/dev/null || echo 0); "
            f"if [ $((now - hb)) -lt {int(IDLE_WORKER_S)} ]; then "
            f"printf 'kept\\t%s\\n' {quote(job_id)}; "
            f'elif [ "$p" -gt 0 ] && alive "$p" && payload "$p"; then '
            f'kill -TERM "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; '
            f'list="$list {job_id}:$p"; '
            f"else printf 'gone\\t%s\\n' {quote(job_id)}; fi")
    lines += [
        "i=0",
        f"while [ $i -lt {rounds} ]; do",
        '  left=0; for e in $list; do alive "${e##*:}" && left=1; done',
        '  [ $left = 0 ] && break; sleep 0.1; i=$((i + 1))',
        "done",
        'for e in $list; do p=${e##*:}; s=TERM',
        '  if alive "$p"; then s=KILL; kill -KILL "-$p" 2>/dev/null || kill -KILL "$p"; fi',
        "  printf 'stopped\\t%s\\t%s\\n' \"${e%:*}\" \"$s\"",
        "done",
        # a KILLed process is gone at once; wait (bounded) so the answer is true
        'i=0; while [ $i -lt 50 ]; do left=0; for e in $list; do alive "${e##*:}" && left=1; '
        'done; [ $left = 0 ] && break; sleep 0.1; i=$((i + 1)); done',
    ]
    return "\n".join(lines) + "\n"


def stop_workers(host: Any, profile: HostProfile, workers: list[IdleWorker],
                 grace_s: float = STOP_GRACE_S) -> list[dict[str, Any]]:
    """One round trip (bounded by grace_s plus a few seconds); returns each worker's
    dict with ``stopped`` filled in."""
    by_id = {worker.job_id: worker for worker in workers}
    result = host.run(stop_script(profile, list(by_id), grace_s), timeout=grace_s + 60)
    for line in result.text.splitlines():
        parts = line.split("\t")
        if parts[0] in ("stopped", "gone", "kept") and len(parts) >= 2 and parts[1] in by_id:
            by_id[parts[1]].stopped = parts[2] if parts[0] == "stopped" else parts[0]
    return [worker.as_dict() for worker in workers]
