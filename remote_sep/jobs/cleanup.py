"""`remote-sep clean`: remove old finished job folders (and, asked, stale cached uploads and
payload versions) from a host, in two round trips: one listing, one deleting.

What goes (see docs/separate.md):
- ``P/jobs/<id>/`` when the job is not running (the liveness rule of ``layout.list_jobs``,
  checked again right before the delete), its manifest and events are both older than the
  limit, and it is not an unfinished batch worker (no ``bye`` yet: a batch resume may still
  collect from it).
- with ``cache``: ``P/cache/*`` files not modified for the limit and not named by a running
  job (with their ``P/cache-verified`` markers), and ``P/payload/<hash>/`` folders older than the
  limit except the newest and the one this laptop uses; also the temp files of interrupted
  uploads (``P/cache/.<name>.part-*``) once not written for an hour and open in no process,
  whatever the limit (a temp file is never a finished upload). ``P/venv`` is never touched.
- batch workers that are idle (jobs/idle_workers.py) are listed; with ``workers`` they are
  stopped (TERM, a bounded wait, then KILL); their folders stay for a batch resume.

Every remote path is shell-quoted; names come from the remote listing, never trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from remote_sep.errors import ConfigError
from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.shell import quote, remote_path_expr
from remote_sep.jobs import layout
from remote_sep.jobs.cache import VERIFIED_DIR
from remote_sep.jobs.idle_workers import STOP_GRACE_S, IdleWorker, idle_worker, stop_workers
from remote_sep.jobs.payload_sync import payload_hash

DEFAULT_OLDER_THAN = "7d"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MARK = "--remote-sep-clean--"  # separates list_jobs' part of the listing from ours
PART_STALE_S = 3600.0  # an upload's temp file not written for this long was abandoned


def parse_age(text: str) -> float:
    """'90s', '30m', '12h', '7d' (a bare number is seconds) -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not match:
        raise ConfigError(f"bad --older-than {text!r}",
                          hint="a number with an optional unit s, m, h or d, e.g. 7d or 12h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@dataclass
class Target:
    kind: str  # job | cache | payload | part (an upload's temp file in the cache)
    name: str  # job id, cache file name, payload hash (relative to its folder)
    bytes: int
    age_s: float


@dataclass
class CleanPlan:
    remove: list[Target] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # reason -> count
    idle_workers: list[IdleWorker] = field(default_factory=list)

    def keep(self, reason: str) -> None:
        self.kept[reason] = self.kept.get(reason, 0) + 1


def _extra_listing_script() -> str:
    """Sizes and ages list_script does not give: per job folder, cache file, payload folder.
    Runs after list_script in the same shell ($B and $now already set)."""
    return (
        f"echo {_MARK}\n"
        'for d in "$B"/jobs/*/; do\n'
        '  [ -d "$d" ] || continue\n'
        '  ev=$(stat -c %Y "$d/events.jsonl" 2>/dev/null || stat -c %Y "$d")\n'
        '  [ -d "$d/inbox" ] && ib=1 || ib=0\n'
        # list_jobs calls a job with a bye "done" even while its process lingers: we ask
        '  pid=$(cat "$d/pid" 2>/dev/null || echo 0)\n'
        '  case "$pid" in ""|*[!0-9]*) pid=0;; esac\n'
        '  if [ "$pid" -gt 0 ] && alive "$pid"; then al=1; else al=0; fi\n'
        '  hb=$(stat -c %Y "$d/heartbeat" 2>/dev/null) && hb=$((now - hb)) || hb=-\n'
        '  printf "job\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n" "$(basename "$d")" '
        '"$(du -sk "$d" | cut -f1)" "$((now - ev))" "$ib" "$al" "$hb"\n'
        "done\n"
        'for f in "$B"/cache/.*.part-*; do\n'
        '  [ -f "$f" ] || continue\n'
        '  printf "part\\t%s\\t%s\\t%s\\n" "$(basename "$f")" '
        '"$(stat -c %s "$f")" "$((now - $(stat -c %Y "$f")))"\n'
        "done\n"
        'for f in "$B"/cache/*; do\n'
        '  [ -f "$f" ] || continue\n'
        '  printf "cache\\t%s\\t%s\\t%s\\n" "$(basename "$f")" '
        '"$(stat -c %s "$f")" "$((now - $(stat -c %Y "$f")))"\n'
        "done\n"
        'for d in "$B"/payload/*/; do\n'
        '  [ -d "$d" ] || continue\n'
        '  printf "payload\\t%s\\t%s\\t%s\\n" "$(basename "$d")" '
        '"$(du -sk "$d" | cut -f1)" "$((now - $(stat -c %Y "$d")))"\n'
        "done\n"
    )


def _safe_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\n" not in name


def plan_clean(listing: str, older_than_s: float, cache: bool,
               current_payload: str) -> CleanPlan:
    """Decide from one listing what goes; pure (tested without a host)."""
    jobs_part, _, extra = listing.partition(_MARK + "\n")
    summaries = {j.job_id: j for j in layout.parse_list(jobs_part)}
    plan = CleanPlan()
    payloads: list[Target] = []
    for line in extra.splitlines():
        parts = line.split("\t")
        if parts[0] == "job" and len(parts) == 7:
            _, name, kib, idle, inbox, alive, heartbeat = parts
            job = summaries.get(name)
            if job is None or not _safe_name(name):
                plan.keep("not a job (no manifest)")
            elif worker := idle_worker(job, float(idle), inbox == "1", alive == "1",
                                       heartbeat):
                plan.idle_workers.append(worker)
                plan.keep("idle batch worker")
            elif job.state == "running" or alive == "1":
                plan.keep("running")
            elif inbox == "1" and (job.last_event or {}).get("event") != "bye":
                plan.keep("unfinished batch worker")
            elif min(job.age_s, float(idle)) < older_than_s:
                plan.keep("recent")
            else:
                plan.remove.append(Target("job", name, int(kib) * 1024,
                                          min(job.age_s, float(idle))))
        elif cache and parts[0] == "cache" and len(parts) == 4 and _safe_name(parts[1]):
            target = Target("cache", parts[1], int(parts[2]), float(parts[3]))
            if target.age_s >= older_than_s:
                plan.remove.append(target)
            else:
                plan.keep("recent cache")
        elif cache and parts[0] == "part" and len(parts) == 4 and _safe_name(parts[1]):
            target = Target("part", parts[1], int(parts[2]), float(parts[3]))
            if target.age_s >= PART_STALE_S:
                plan.remove.append(target)
            else:
                plan.keep("upload in progress")
        elif cache and parts[0] == "payload" and len(parts) == 4 and _safe_name(parts[1]):
            payloads.append(Target("payload", parts[1], int(parts[2]) * 1024, float(parts[3])))
    if payloads:
        newest = min(payloads, key=lambda t: t.age_s).name
        for target in payloads:
            if target.name in (newest, current_payload):
                plan.keep("current payload")
            elif target.age_s < older_than_s:
                plan.keep("recent payload")
            else:
                plan.remove.append(target)
    return plan


def delete_script(profile: HostProfile, targets: list[Target]) -> str:
    """One script removing every target; a job whose pid came alive, or a cache file a
    running job names, is kept. Prints ``removed\\tkind\\tname\\tKiB`` / ``kept\\tkind\\tname``."""
    lines = [layout.ALIVE_FN.rstrip("\n"),
             f"B={remote_path_expr(profile.path)}",
             # manifests and inbox items of running jobs: a cache file they name stays
             'running_files() { for d in "$B"/jobs/*/; do'
             ' p=$(cat "$d/pid" 2>/dev/null || echo 0);'
             ' case "$p" in ""|*[!0-9]*) p=0;; esac;'
             ' if [ "$p" -gt 0 ] && alive "$p"; then'
             ' printf "%s\\n" "$d/manifest.json"; ls -d "$d"/inbox/*.json 2>/dev/null; fi;'
             " done; }",
             'in_use() { running_files | while IFS= read -r f; do'
             ' grep -qsF -- "$1" "$f" && { echo y; break; }; done; }',
             # a temp file some process holds open (the sftp-server writing it) stays
             'open_now() { ls -l /proc/[0-9]*/fd 2>/dev/null | grep -qF -- "-> $1"; }']
    folders = {"job": "jobs", "cache": "cache", "payload": "payload", "part": "cache"}
    for target in targets:
        path = f'"$B"/{folders[target.kind]}/{quote(target.name)}'
        tag = quote(f"{target.kind}\t{target.name}")
        keep = f"printf 'kept\\t%s\\n' {tag}"
        if target.kind == "job":
            guard = (f'p=$(cat {path}/pid 2>/dev/null || echo 0); '
                     'case "$p" in ""|*[!0-9]*) p=0;; esac; '
                     '[ "$p" -gt 0 ] && alive "$p"')
        elif target.kind == "cache":
            guard = f'[ -n "$(in_use {quote(target.name)})" ]'
        elif target.kind == "part":
            guard = f"open_now {path}"
        else:
            guard = "false"
        marker = (f' "$B"/{VERIFIED_DIR}/{quote(target.name)}'
                  if target.kind == "cache" else "")
        lines.append(
            f"if {guard}; then {keep}; elif [ -e {path} ]; then "
            f"s=$(du -sk {path} | cut -f1); rm -rf -- {path}{marker} && "
            f"printf 'removed\\t%s\\t%s\\n' {tag} \"$s\"; fi")
    if any(t.kind == "cache" for t in targets):  # markers whose file went another way
        lines.append(f'for m in "$B"/{VERIFIED_DIR}/*; do [ -f "$m" ] || continue; '
                     '[ -e "$B/cache/${m##*/}" ] || rm -f -- "$m"; done')
    return "\n".join(lines) + "\n"


def clean(host: Any, profile: HostProfile, *, older_than_s: float, cache: bool,
          dry_run: bool, workers: bool = False,
          grace_s: float = STOP_GRACE_S) -> dict[str, Any]:
    """List (one round trip), plan, and unless ``dry_run`` stop idle workers (with
    ``workers``: one more) and delete (one more)."""
    listing = host.run(layout.list_script(profile) + _extra_listing_script()).stdout
    text = listing.decode("utf-8", "replace") if isinstance(listing, bytes) else listing
    plan = plan_clean(text, older_than_s, cache, payload_hash())
    stopped = [worker.as_dict() for worker in plan.idle_workers]
    if workers and not dry_run and plan.idle_workers:
        stopped = stop_workers(host, profile, plan.idle_workers, grace_s)
    removed = plan.remove
    freed = sum(t.bytes for t in plan.remove)
    if not dry_run and plan.remove:
        out = host.run(delete_script(profile, plan.remove)).stdout
        out = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
        by_key = {(t.kind, t.name): t for t in plan.remove}
        removed, freed = [], 0
        for line in out.splitlines():
            parts = line.split("\t")
            if parts[0] == "removed" and len(parts) == 4 and (parts[1], parts[2]) in by_key:
                removed.append(by_key[(parts[1], parts[2])])
                freed += int(parts[3] or 0) * 1024  # du right before the rm
            elif parts[0] == "kept" and len(parts) == 3:
                plan.keep("in use at delete time")
    counts = {kind: sum(1 for t in removed if t.kind == kind)
              for kind in ("job", "cache", "payload", "part")}
    return {"dry_run": dry_run, "older_than_s": older_than_s, "cache": cache,
            "removed": [{"kind": t.kind, "name": t.name, "bytes": t.bytes, "age_s": t.age_s}
                        for t in removed],
            "counts": counts, "freed_bytes": freed, "kept": plan.kept,
            "idle_workers": stopped}
