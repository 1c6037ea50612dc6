"""`remote-sep clean NAME`: free a host's disk (thin command; the work is in jobs/cleanup.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from remote_sep.cli.common import (
    HostArg,
    HostsOption,
    JsonOption,
    err_console,
    out_console,
    run_command,
)
from remote_sep.hosts.space import size_text


def clean(
    name: HostArg,
    older_than: Annotated[str, typer.Option("--older-than", help=(
        "Only what is at least this old: a number with s, m, h or d (default 7d)."))] = "7d",
    cache: Annotated[bool, typer.Option("--cache", help=(
        "Also remove cached uploads and old payload versions (never the venv)."))] = False,
    workers: Annotated[bool, typer.Option("--workers", help=(
        "Also stop idle batch workers (no laptop heartbeat for minutes): TERM, then KILL."
    ))] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=(
        "List what would go; delete and stop nothing."))] = False,
    hosts: HostsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove finished job folders older than --older-than from a host (running jobs stay);
    list idle batch workers (--workers stops them)."""
    from remote_sep.jobs.cleanup import clean as clean_host
    from remote_sep.jobs.cleanup import parse_age

    def action() -> dict[str, Any]:
        from remote_sep.jobs.follow import Link
        from remote_sep.profiles import get_profile

        age_s = parse_age(older_than)  # before connecting: a bad value costs no round trip
        profile = get_profile(name, hosts)
        link = Link(profile)
        try:
            result = clean_host(link.host, profile, older_than_s=age_s, cache=cache,
                                dry_run=dry_run, workers=workers)
        finally:
            link.close()
        if not as_json:
            verb = "would remove" if dry_run else "removed"
            for target in result["removed"]:
                out_console.print(f"{verb} {target['kind']} {target['name']} "
                                  f"({size_text(target['bytes'])})", markup=False)
            for worker in result["idle_workers"]:
                out_console.print(_worker_line(worker, workers, dry_run), markup=False)
            counts = ", ".join(f"{n} {kind}" for kind, n in result["counts"].items() if n)
            kept = ", ".join(f"{n} {why}" for why, n in result["kept"].items())
            err_console.print(f"{name}: {verb} {counts or 'nothing'}, "
                              f"{'would free' if dry_run else 'freed'} "
                              f"{size_text(result['freed_bytes'])} ({result['freed_bytes']} bytes)"
                              + (f"; kept {kept}" if kept else ""), markup=False)
        return {"host": name, **result}

    run_command("clean", as_json, action)


def _worker_line(worker: dict[str, Any], stopping: bool, dry_run: bool) -> str:
    beat = worker["heartbeat_age_s"]
    why = (f"no heartbeat for {_minutes(beat)}" if beat is not None else "no heartbeat") + \
        f", no event for {_minutes(worker['quiet_s'])}"
    done = {"TERM": "stopped", "KILL": "killed (it ignored TERM)",
            "gone": "already gone", "kept": "kept (its laptop is back)"}
    if worker.get("stopped"):
        state = done.get(worker["stopped"], worker["stopped"])
    elif stopping and dry_run:
        state = "would stop"
    else:
        state = "idle (stop it with --workers)"
    return f"worker {worker['job_id']}: {state}; {why}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def register(app: typer.Typer) -> None:
    app.command("clean")(clean)
