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


def clean(
    name: HostArg,
    older_than: Annotated[str, typer.Option("--older-than", help=(
        "Only what is at least this old: a number with s, m, h or d (default 7d)."))] = "7d",
    cache: Annotated[bool, typer.Option("--cache", help=(
        "Also remove cached uploads and old payload versions (never the venv)."))] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=(
        "List what would go; delete nothing."))] = False,
    hosts: HostsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove finished job folders older than --older-than from a host (running jobs stay)."""
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
                                dry_run=dry_run)
        finally:
            link.close()
        if not as_json:
            verb = "would remove" if dry_run else "removed"
            for target in result["removed"]:
                out_console.print(f"{verb} {target['kind']} {target['name']} "
                                  f"({_size(target['bytes'])})", markup=False)
            counts = ", ".join(f"{n} {kind}" for kind, n in result["counts"].items() if n)
            kept = ", ".join(f"{n} {why}" for why, n in result["kept"].items())
            err_console.print(f"{name}: {verb} {counts or 'nothing'}, "
                              f"{'would free' if dry_run else 'freed'} "
                              f"{_size(result['freed_bytes'])} ({result['freed_bytes']} bytes)"
                              + (f"; kept {kept}" if kept else ""), markup=False)
        return {"host": name, **result}

    run_command("clean", as_json, action)


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def register(app: typer.Typer) -> None:
    app.command("clean")(clean)
