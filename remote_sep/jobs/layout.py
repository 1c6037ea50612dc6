"""Remote job primitives: layout, one-round-trip prepare, detached start, event polling,
job listing. Reused by `separate`, `attach`, `jobs` and batch.

Every remote path and argument is shell-quoted here; scripts are POSIX sh. Each function
costs one SSH round trip (``Host.run``), which keeps a `separate` on a provisioned host at a
handful of them (bench/bench_roundtrips.py counts).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from remote_payload.protocol import LineBuffer, parse_event_line
from remote_sep.errors import NotProvisioned, TransferError
from remote_sep.hosts.landing import PLACED, Landing
from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.shell import export_lines, quote, quote_argv, remote_path_expr
from remote_sep.hosts.space import disk_full_on_failure
from remote_sep.jobs.cache import CACHE_OK_FN
from remote_sep.provision.ready import RemoteReady

POLL_WAIT_S = 5.0  # how long one long-poll waits on the remote for new events
POLL_SETTLE_S = 1.0  # after new events, gather more this long (progress lags at most this)


def new_job_id() -> str:
    """Sortable, unique: UTC time plus 6 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class JobPaths:
    """Where one job lives on the remote (``base`` is absolute, already resolved)."""

    base: str
    job_id: str

    @property
    def dir(self) -> str:
        return f"{self.base}/jobs/{self.job_id}"

    @property
    def manifest(self) -> str:
        return f"{self.dir}/manifest.json"

    @property
    def events(self) -> str:
        return f"{self.dir}/events.jsonl"

    @property
    def stderr(self) -> str:
        return f"{self.dir}/stderr.log"

    @property
    def pid(self) -> str:
        return f"{self.dir}/pid"

    @property
    def out(self) -> str:
        return f"{self.dir}/out"

    @property
    def inbox(self) -> str:
        return f"{self.dir}/inbox"

    def resolve(self, path: str) -> str:
        """A path from an event or manifest: absolute stays, relative is under the job dir."""
        return path if path.startswith("/") else f"{self.dir}/{path}"


def ray_token_path(base: str) -> str:
    """P/ray/auth_token: the Ray cluster's token on each of its hosts (0600, never on argv)."""
    return f"{base}/ray/auth_token"


def ray_arguments(profile: HostProfile, base: str) -> list[str]:
    """What a payload run on a Ray cluster profile adds to its argv: the cluster's address and
    the token's file (a path, not the token); nothing on a plain profile."""
    if not profile.ray:
        return []
    return ["--ray", profile.ray, "--ray-token-file", ray_token_path(base)]


def cache_path(base: str, sha256: str, ext: str) -> str:
    return f"{base}/cache/{sha256}{ext}"


# --- prepare: one round trip that answers everything a job needs to know -------------------

def prepare_script(profile: HostProfile, payload_hash: str, cache_name: str | None,
                   cache_size: int | None = None) -> str:
    """Resolve the base, create its folders, find the interpreter (and that it runs), check
    the payload and whether the cache holds a whole copy of `cache_name`."""
    lines = [
        f"B={remote_path_expr(profile.path)}",
        'mkdir -p "$B/cache" "$B/jobs" "$B/payload" || exit 3',
        'B=$(cd "$B" && pwd -P)',
        'printf "base=%s\\n" "$B"',
    ]
    if profile.python:
        py = remote_path_expr(profile.python)
        # Found is not enough: not executable, another architecture or a broken #! line
        # would only fail once the job starts. `-S -c ''` starts it, costing a few ms.
        lines += [
            f"if P=$(command -v {py}) || {{ [ -e {py} ] && P={py}; }}; then",
            "  if E=$(\"$P\" -S -c '' 2>&1 < /dev/null); then printf 'python=%s\\n' \"$P\"",
            "  else rc=$?; printf 'python_error=%s %s\\n' \"$rc\" "
            "\"$(printf '%s' \"$E\" | tr '\\n' ' ' | cut -c1-300)\"; fi",
            "fi",
        ]
    else:
        lines.append('[ -x "$B/venv/bin/python" ] && printf "python=%s\\n" "$B/venv/bin/python"')
        lines.append('[ -r "$B/venv/remote-sep-stamp.json" ] && printf "stamp=%s\\n" '
                     '"$(tr -d \'\\n\' < "$B/venv/remote-sep-stamp.json")"')
    payload = quote(f"payload/{payload_hash}/remote_payload/__main__.py")
    lines.append(f'[ -f "$B"/{payload} ] && echo payload=1')
    if cache_name:
        size = "-" if cache_size is None else str(int(cache_size))
        lines.append(CACHE_OK_FN.rstrip("\n"))
        lines.append(f'cache_ok "$B"/{quote("cache/" + cache_name)} {size} && '
                     f'printf "cached=%s\\n" {quote(cache_name.split(".")[0])}')
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def parse_prepare(profile: HostProfile, text: str) -> RemoteReady:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    stamp = _json_dict(values["stamp"]) if "stamp" in values else None
    if "python_error" in values:
        code, _, said = values["python_error"].strip().partition(" ")
        why = said.strip() or f"exit status {code}"
        if code == "127":  # the file is there, so what is missing is what it needs
            why += " (a #! line naming a missing interpreter, or a missing loader?)"
        raise NotProvisioned(
            f"{profile.name}: the profile's python {profile.python!r} exists but cannot be "
            f"run: {why}",
            hint="point `python` in hosts.yaml at an interpreter the host can run, or remove "
                 f"it and run: remote-sep bootstrap {profile.name}")
    if "python" not in values:
        where = (f"the profile's python {profile.python!r} was not found on the host"
                 if profile.python else "no payload interpreter on the host")
        raise NotProvisioned(f"{profile.name}: {where}",
                             hint=f"run: remote-sep bootstrap {profile.name}")
    return RemoteReady(base=values["base"], python=values["python"],
                       payload_present=values.get("payload") == "1",
                       cached_sha256=values.get("cached") or None, stamp=stamp)


def _json_dict(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None  # a torn stamp counts as none
    return value if isinstance(value, dict) else None


def prepare(host, profile: HostProfile, payload_hash: str, cache_name: str | None,
            cache_size: int | None = None) -> RemoteReady:
    """One round trip; `cached_sha256` is set only when the cache holds a whole copy."""
    with disk_full_on_failure(host, profile.path, "the remote-sep folders"):
        result = host.run(prepare_script(profile, payload_hash, cache_name, cache_size))
    return parse_prepare(profile, _text(result.stdout))


# --- start -----------------------------------------------------------------------------------

def payload_env(profile: HostProfile, payload_dir: str) -> dict[str, str]:
    """Non-secret environment for the payload: profile env, PYTHONPATH, HF_HOME."""
    env = dict(profile.env)
    extra = env.get("PYTHONPATH")
    env["PYTHONPATH"] = payload_dir + (f":{extra}" if extra else "")
    if profile.hf_home:
        env["HF_HOME"] = profile.hf_home
    return env


def start_script(profile: HostProfile, paths: JobPaths, python: str, payload_dir: str,
                 *, inbox: bool = False) -> str:
    """Write the manifest (from stdin) and start the payload detached; prints its pid.

    ``trap '' HUP; setsid nohup … &`` with all three streams redirected survives the SSH
    session closing (DESIGN §5).
    """
    job = quote(paths.dir)
    argv = [python, "-m", "remote_payload", "run", "--manifest", "manifest.json",
            "--events", "events.jsonl"]
    if inbox:
        argv += ["--inbox", "inbox"]
    argv += ray_arguments(profile, paths.base)
    lines = [
        "set -e",
        f"mkdir -p {job}/out" + (f" {job}/inbox" if inbox else ""),
        # a start that fails (a full disk) leaves no folder behind
        f"trap {quote('cd /; rm -rf -- ' + job)} EXIT",
        f"cd {job}",
        "cat > manifest.json.tmp",  # own line: set -e ignores a failure left of `&&`
        "mv manifest.json.tmp manifest.json",
        ": >> events.jsonl",  # exists from the start: followers never race its creation
        # The pid file's block is taken before the payload starts (a full disk fails here,
        # with nothing running) and overwritten in place after (`1<>`: no truncation).
        "echo 0 > pid",
        *export_lines(profile.path_prepend, payload_env(profile, payload_dir)),
        "trap '' HUP",
        f"setsid nohup {quote_argv(argv)} > stderr.log 2>&1 < /dev/null &",
        "echo $! 1<> pid || { kill $! 2>/dev/null; exit 1; }",  # never a job nobody can find
        "trap - EXIT",
        "echo $!",
    ]
    return "\n".join(lines) + "\n"


def start_and_poll(host, profile: HostProfile, paths: JobPaths, manifest_json: str,
                   python: str, payload_dir: str, cursor: Cursor,
                   wait_s: float = POLL_WAIT_S,
                   landing: Landing | None = None) -> tuple[int, Poll]:
    """Start the job and long-poll its first events in the same round trip. `landing`:
    the job's input, sent to a temp name (Host.send_file); it is checked and renamed
    first, and nothing starts unless it is whole (DiskFull / TransferError)."""
    script = start_script(profile, paths, python, payload_dir).replace(
        "echo $!\n", 'P=$!; echo "$P"\n') + "set +e\n" + poll_script(paths, "$P", 0, wait_s)
    if landing is not None:
        script = landing.script() + script
    with _job_files(host, paths, manifest_json):
        raw = _bytes(host.run(script, stdin=manifest_json.encode()).stdout)
    if landing is not None:
        placed, _, raw = raw.partition(b"\n")
        if placed.strip() != PLACED.encode():
            landing.check(placed + b"\n" + raw)
            raise TransferError(f"{landing.what} to {host.name} was not placed")  # unreachable
    pid_line, _, rest = raw.partition(b"\n")
    return int(pid_line), _parse_poll(cursor, rest)


def start_job(host, profile: HostProfile, paths: JobPaths, manifest_json: str, python: str,
              payload_dir: str, *, inbox: bool = False) -> int:
    """One round trip: manifest written, payload started detached; returns the remote pid."""
    with _job_files(host, paths, manifest_json):
        result = host.run(start_script(profile, paths, python, payload_dir, inbox=inbox),
                          stdin=manifest_json.encode())
    return int(_text(result.stdout).split()[-1])


def _job_files(host, paths: JobPaths, manifest_json: str):
    """A start that failed for want of room -> DiskFull naming the job's files."""
    return disk_full_on_failure(host, paths.dir, f"the files of job {paths.job_id} "
                                "(manifest, events, pid)", len(manifest_json.encode()) + 8192)


# --- follow ------------------------------------------------------------------------------------

@dataclass
class Cursor:
    """How far a reader got in events.jsonl: resume from here after a reconnect."""

    offset: int = 0  # bytes of complete lines consumed
    last_seq: int = -1
    problems: list[str] = field(default_factory=list)  # lines that did not parse


@dataclass
class Poll:
    events: list[dict[str, Any]]
    alive: bool  # the payload process still runs


# "Is pid running": a zombie (exited, never reaped: containers whose pid 1 does not reap)
# counts as gone; without /proc (BSD, macOS) kill -0 decides.
ALIVE_FN = (
    "alive() { if [ -d /proc/1 ]; then [ -r /proc/$1/stat ] && "
    "[ \"$(sed 's/.*) //' /proc/$1/stat | cut -c1)\" != Z ]; "
    "else kill -0 $1 2>/dev/null; fi; }\n"
)


def poll_script(paths: JobPaths, pid: int | str | None, offset: int, wait_s: float,
                settle_s: float = POLL_SETTLE_S) -> str:
    """Long poll: wait on the remote until events.jsonl has grown past ``offset`` and either
    ``bye`` arrived or ``settle_s`` passed since the growth (one answer carries a burst of
    events, not one each), or the process ended, or ``wait_s`` is up. Then print the
    liveness and every byte after ``offset``."""
    events = quote(paths.events)
    # pid: a number, or a shell expression such as "$P" (start_and_poll)
    alive = f"alive {pid if isinstance(pid, str) else int(pid)}" if pid else "false"
    rounds, settle = max(0, int(wait_s / 0.1)), max(0, int(settle_s / 0.1))
    grown = f'[ "$(stat -c %s {events} 2>/dev/null || echo 0)" -gt {int(offset)} ]'
    new = f"tail -c +{int(offset) + 1} {events} 2>/dev/null"
    return ALIVE_FN + (
        f"i=0; g=-1\n"
        f"while [ $i -lt {rounds} ]; do\n"
        f"  if {grown}; then\n"
        f"    [ $g -lt 0 ] && g=$i\n"
        f"    {new} | grep -q '\"event\":\"bye\"' && break\n"
        f"    [ $((i - g)) -ge {settle} ] && break\n"
        f"  fi\n"
        f"  {alive} || break\n"
        f"  sleep 0.1; i=$((i+1))\n"
        f"done\n"
        # Liveness first, then the bytes: whatever the process wrote before dying is read.
        f"if {alive}; then echo alive; else echo dead; fi\n"
        f"{new} || true\n"
    )


def consume(cursor: Cursor, data: bytes) -> list[dict[str, Any]]:
    """Complete lines of ``data`` (read at ``cursor.offset``) -> new events; advances it.
    Events at or below the last seen seq are dropped (a resumed read may overlap)."""
    buffer = LineBuffer()
    lines = buffer.feed(data)
    cursor.offset += len(data) - buffer.pending_bytes
    events = []
    for line in lines:
        parsed = parse_event_line(line)
        if parsed.problem and parsed.event is None:
            cursor.problems.append(parsed.problem)
            continue
        event = parsed.event
        seq = event.get("seq")
        if isinstance(seq, int):
            if seq <= cursor.last_seq:
                continue
            cursor.last_seq = seq
        events.append(event)
    return events


def poll_events(host, paths: JobPaths, pid: int | None, cursor: Cursor,
                wait_s: float = POLL_WAIT_S, settle_s: float = POLL_SETTLE_S) -> Poll:
    """One round trip: new events after the cursor and whether the job still runs."""
    result = host.run(poll_script(paths, pid, cursor.offset, wait_s, settle_s),
                      timeout=wait_s + 30)
    return _parse_poll(cursor, _bytes(result.stdout))


def _parse_poll(cursor: Cursor, raw: bytes) -> Poll:
    status, _, data = raw.partition(b"\n")
    return Poll(events=consume(cursor, data), alive=status.strip() == b"alive")


def stderr_tail(host, paths: JobPaths, lines: int = 20) -> str:
    result = host.run(f"tail -n {int(lines)} {quote(paths.stderr)} 2>/dev/null || true",
                      check=False)
    return _text(result.stdout).strip()


def read_pid(host, paths: JobPaths) -> int | None:
    result = host.run(f"cat {quote(paths.pid)} 2>/dev/null || true", check=False)
    text = _text(result.stdout).strip()
    return int(text) if text.isdigit() else None


# --- list --------------------------------------------------------------------------------------

@dataclass
class JobSummary:
    job_id: str
    state: str  # running | done | failed
    outputs_done: int
    age_s: float
    last_event: dict[str, Any] | None


def list_script(profile: HostProfile) -> str:
    """One round trip: per job folder its id, liveness, age, item_done count, last event."""
    return ALIVE_FN + (
        f"B={remote_path_expr(profile.path)}\n"
        'now=$(date +%s)\n'
        'for d in "$B"/jobs/*/; do\n'
        '  [ -f "$d/manifest.json" ] || continue\n'
        '  id=$(basename "$d"); pid=$(cat "$d/pid" 2>/dev/null || echo 0)\n'
        '  case "$pid" in ""|*[!0-9]*) pid=0;; esac\n'
        '  if [ "$pid" -gt 0 ] && alive "$pid"; then alive=1; else alive=0; fi\n'
        '  age=$((now - $(stat -c %Y "$d/manifest.json")))\n'
        '  n=$(grep -c \'"event":"item_done"\' "$d/events.jsonl" 2>/dev/null || true)\n'
        '  last=$(tail -n 1 "$d/events.jsonl" 2>/dev/null | tr -d "\\t")\n'
        '  printf "%s\\t%s\\t%s\\t%s\\t%s\\n" "$id" "$alive" "$age" "${n:-0}" "$last"\n'
        "done\n"
    )


def parse_list(text: str) -> list[JobSummary]:
    jobs = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 5:
            continue
        job_id, alive, age, done, last = parts
        event = parse_event_line(last).event if last.strip() else None
        if event and event.get("event") == "bye":  # finished, even if not yet reaped
            state = "done" if event.get("ok", True) and not event.get("items_failed") \
                else "failed"
        else:
            state = "running" if alive == "1" else "failed"
        jobs.append(JobSummary(job_id, state, int(done or 0), float(age or 0), event))
    return sorted(jobs, key=lambda job: job.job_id)


def list_jobs(host, profile: HostProfile) -> list[JobSummary]:
    return parse_list(_text(host.run(list_script(profile)).stdout))


def _text(out: str | bytes) -> str:
    return out.decode("utf-8", errors="replace") if isinstance(out, bytes) else out


def _bytes(out: str | bytes) -> bytes:
    return out if isinstance(out, bytes) else out.encode("utf-8")
