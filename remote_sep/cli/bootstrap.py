"""`remote-sep bootstrap NAME`: turn a fresh GPU host into a ready one (thin command)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import platformdirs
import typer

from remote_sep.cli.common import (
    HostArg,
    HostsOption,
    JsonOption,
    YesOption,
    err_console,
    offer_to_save,
    run_command,
)
from remote_sep.provision.token import find_local_token, prompt_token, token_origin

NameArg = HostArg


def register(app: typer.Typer) -> None:
    app.command("bootstrap")(bootstrap)


def log_path(name: str) -> Path:
    """Local bootstrap log (events only, never a secret), next to the job records."""
    state = os.environ.get("REMOTE_SEP_STATE_DIR") or platformdirs.user_state_dir("remote-sep")
    return Path(state) / "logs" / f"bootstrap-{name}.log"


def bootstrap(
    name: NameArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]
    = False,
    model: Annotated[str | None, typer.Option(
        "--model", help="SAM Audio model to check access to (small, base, large, *-tv).")] = None,
    cpu: Annotated[bool, typer.Option(
        "--cpu", help="No NVIDIA GPU: install CPU wheels (separation is very slow).")] = False,
    prefetch: Annotated[bool, typer.Option(
        "--prefetch", help="Also download every component the host's default settings load "
        "(model, text encoder, and what hosts.yaml turns on) into its HF cache; free disk "
        "is checked first, an interrupted download resumes.")] = False,
    rerank: Annotated[bool, typer.Option(
        "--rerank", help="With --prefetch: also the rankers --rerank N loads.")] = False,
    predict_spans: Annotated[bool, typer.Option(
        "--predict-spans", help="With --prefetch: also the span predictor.")] = False,
    score: Annotated[bool, typer.Option(
        "--score", help="With --prefetch: also the judge that --score loads.")] = False,
    yes: YesOption = False,
    hosts: HostsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Provision NAME: venv, CUDA-matched torch, sam_audio, pinned HF deps, token, gated check.

    Rerun-safe: a provisioned host is recognised in one round trip, an interrupted bootstrap
    resumes where it stopped.
    """
    extras = {"rerank": rerank, "predict_spans": predict_spans, "score": score}
    run_command("bootstrap", as_json, lambda: _core(name, dry_run, model, cpu, prefetch, yes,
                                                    hosts, as_json, extras))


def _core(name: str, dry_run: bool, model: str | None, cpu: bool, prefetch: bool, yes: bool,
          hosts: Path | None, as_json: bool, extras: dict[str, bool]) -> dict[str, Any]:
    from remote_sep import profiles
    from remote_sep.errors import ConfigError
    from remote_sep.jobs.settings import build_settings
    from remote_sep.provision.apply import bootstrap as run_bootstrap
    from remote_sep.provision.prefetch import wants_for
    from remote_sep.ssh.host import connect

    if any(extras.values()) and not prefetch:
        flags = " ".join("--" + k.replace("_", "-") for k, on in extras.items() if on)
        raise ConfigError(f"{flags} only choose what --prefetch downloads",
                          hint=f"run `remote-sep bootstrap {name} --prefetch {flags}`")
    profile = profiles.get_profile(name, hosts)
    # what the host's jobs run with by default (hosts.yaml, its quality preset): one builder
    wants = wants_for(build_settings(profile, {}), **extras)
    log = log_path(name)
    log.parent.mkdir(parents=True, exist_ok=True)

    shown = ProgressThrottle()

    def report(event: dict[str, Any]) -> None:
        log_event(log, event)
        if (not as_json or dry_run) and shown.wants(event):
            for line in render(event):
                err_console.print(line, markup=False, soft_wrap=True)

    def confirm(plan: Any) -> bool:
        if yes or not sys.stdin.isatty():
            return True
        return typer.confirm(f"Install the plan above on {profile.describe()}?", default=True,
                             err=True)

    with connect(profile) as host:
        result = run_bootstrap(host, profile, model=model, cpu=cpu or profile.cpu,
                               prefetch=prefetch, wants=wants,
                               dry_run=dry_run, token_source=local_token_source,
                               token_origin=token_origin,
                               report=report,
                               confirm=confirm)
    if not as_json:
        if dry_run:
            err_console.print("dry run: nothing was changed", markup=False)
        elif result.up_to_date and not prefetch:
            err_console.print(f"{name} is provisioned (plan {result.plan_hash[:12]}); "
                              "nothing to do", markup=False)
        else:
            how = result.installer.get("name", "?")
            if result.installer.get("fallback"):
                how += f" ({result.installer.get('why')})"
            err_console.print(f"{name} is ready (plan {result.plan_hash[:12]}, installed with "
                              f"{how})", markup=False)
        if not dry_run:
            offer_to_save(profile, hosts)
    return {"host": result.host, "plan_hash": result.plan_hash, "up_to_date": result.up_to_date,
            "dry_run": result.dry_run, "facts": result.facts, "torch": result.torch,
            "model": result.model, "steps": result.steps, "warnings": result.warnings,
            "installer": result.installer}


def log_event(log: Path, event: dict[str, Any]) -> None:
    """Append one bootstrap event to the local log (events never hold a secret)."""
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(event) + "\n")


def local_token_source(remote_has_token: bool,
                       pause: Callable[[], AbstractContextManager] = nullcontext) -> str | None:
    """The HF token for a bootstrap: HF_TOKEN or the local login cache; a hidden prompt
    only on a terminal and only when the host does not already hold a token (inside
    `pause()`: a live view must stop redrawing while the user types)."""
    token, _ = find_local_token()
    if token or remote_has_token or not sys.stdin.isatty():
        return token
    with pause():
        return prompt_token()


def render(event: dict[str, Any]) -> list[str]:
    """Human lines for one bootstrap event."""
    kind = event.get("event")
    if kind == "inspect":
        gpu = (f"{event['gpu']} (sm {event['compute_cap']}, driver {event['driver']}, CUDA "
               f"{event['cuda']}, {event['vram_used_mb']}/{event['vram_total_mb']} MiB used)"
               if event.get("gpu") else "no NVIDIA GPU")
        disk = event.get("disk_free_gb")
        return [f"host: {event.get('os') or '?'}; python {event.get('python') or 'none >= 3.11'}",
                f"  gpu: {gpu}",
                f"  base {event.get('base')}: {disk if disk is not None else '?'} GB free"]
    if kind == "torch_choice":
        index = event.get("index") or "pip's default index"
        return [f"torch: {' '.join(event['packages'])} from {index}", f"  why: {event['why']}"]
    if kind == "installer":
        return [f"installer: {event['name']}", f"  why: {event['why']}"]
    if kind == "warning":
        return [f"warning: {event['message']}"]
    if kind == "plan_step":
        lines = [f"[{event['status']}] {event['step']}: {event['title']}",
                 f"    {event['command']}"]
        if event.get("token_from"):
            lines.append(f"    token from: {event['token_from']}")
        return lines
    if kind == "step_start":
        return [f"-> {event['title']} ..."]
    if kind == "step_done":
        mark = {"done": "ok", "failed": "failed"}.get(event["status"], "skip")
        return [f"   {mark}: {event['step']} ({event['detail']})"]
    if kind == "auto_bootstrap":
        return [f"bootstrapping {event['host']}" + (" (CPU wheels)" if event.get("cpu") else "")]
    if kind == "up_to_date":
        return ["stamp matches the plan: already provisioned"]
    return render_prefetch(event)


class ProgressThrottle:
    """One progress line per component every PROGRESS_LINE_S (the log keeps every event):
    the host reports about twice a second, which would scroll minutes of lines."""

    PROGRESS_LINE_S = 5.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last: dict[str, float] = {}

    def wants(self, event: dict[str, Any]) -> bool:
        if event.get("event") != "prefetch_download":
            return True
        now, name = self.clock(), str(event.get("component"))
        if now - self.last.get(name, -self.PROGRESS_LINE_S) < self.PROGRESS_LINE_S:
            return False
        self.last[name] = now
        return True


def render_prefetch(event: dict[str, Any]) -> list[str]:
    """Lines for the prefetch's plan, progress and results (events from the host)."""
    kind = event.get("event")
    if kind == "prefetch_plan":
        lines = [f"   {c['name']} ({c['where']}): {_size(c['bytes'])}, "
                 + ("cached" if not c["missing_bytes"] else f"{_size(c['missing_bytes'])} to get")
                 for c in event.get("components", [])]
        lines.append(f"   {_size(event['missing_bytes'])} to download, "
                     f"{_size(event['free_bytes'])} free in {event['cache']} "
                     f"(transfer: {event.get('backend')})")
        return lines
    if kind == "prefetch_download":
        total = event.get("total") or 0
        share = f" ({100 * event['done'] / total:.0f}%)" if total else ""
        return [f"   {event['component']}: {_size(event['done'])} of {_size(total)}{share} "
                f"at {_size(event.get('rate_bps') or 0)}/s"]
    if kind == "prefetch_downloaded":
        resumed = ", resumed" if event.get("resumed") else ""
        return [f"   done: {event['component']}: {_size(event['bytes'])} in "
                f"{event['seconds']:.1f} s{resumed}"]
    return []


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"
