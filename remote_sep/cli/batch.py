"""`remote-sep batch`: many files x many descriptions over many hosts (thin command)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from remote_payload.protocol import exit_code_for
from remote_sep import profiles
from remote_sep.batch.fleet import BatchReport, run_batch
from remote_sep.batch.plan import DEFAULT_TEMPLATE, SPLIT_TEMPLATE, plan_batch
from remote_sep.batch.scores import write_scores
from remote_sep.cli.batch_view import LiveView, render_failures
from remote_sep.cli.common import (
    JsonOption,
    envelope,
    err_console,
    offer_to_save,
    run_command,
    terminal_owner,
)
from remote_sep.cli.separate import score_line
from remote_sep.cli.setting_options import setting_options
from remote_sep.errors import ConfigError
from remote_sep.hosts.shell import quote_argv
from remote_sep.jobs.settings import build_settings, requested_settings
from remote_sep.jobs.spans import check_not_predicted, describe, parse_spans


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)


def complete_host_list(incomplete: str) -> list[str]:
    from remote_sep.cli.complete import host_list

    return host_list(incomplete)


@setting_options("batch")
def batch(
    inputs: Annotated[list[str] | None, typer.Argument(
        help="Audio files, folders (searched recursively) or glob patterns.")] = None,
    desc: Annotated[list[str] | None, typer.Option(
        "--desc", "-d", help="What to separate (repeat for several).")] = None,
    stem: Annotated[list[str] | None, typer.Option(
        "--stem", "-s", help="A stem split instead of --desc: each file split into these "
        "stems in order (repeat; each from what the ones before left) plus other.")] = None,
    host_names: Annotated[str, typer.Option(
        "--hosts", "--host", help="Comma-separated host profile names or user@host[:port] "
        "targets, e.g. gpu1,gpu2.", autocompletion=complete_host_list)
    ] = "local",
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Output folder.")] = Path("."),
    name_template: Annotated[str | None, typer.Option(
        "--name-template",
        help="Output names; fields {stem} {desc} {role} {ext} {parent} {index} {description} "
             f"(default {DEFAULT_TEMPLATE}; with --stem {SPLIT_TEMPLATE}, role = the stem).")
    ] = None,
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", help="YAML: items: [{input: FILE|DIR|GLOB, descriptions: [...]}]")] = None,
    worker_idle_timeout: Annotated[float | None, typer.Option(
        "--worker-idle-timeout", min=0, metavar="SECONDS",
        help="A host's worker exits once the laptop has been gone this long "
             "(default: the host's worker_idle_timeout, else 900; 0: never).")] = None,
    span: Annotated[list[str] | None, typer.Option("--span", help=(
        "+T0:T1 / -T0:T1 span prompt for every input without `spans:` in --manifest "
        "(seconds or m:ss.s; repeatable). See docs/spans.md."))] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo units already done.")] = False,
    preview: Annotated[bool, typer.Option("--preview", help=(
        "Also write a <name>_preview.png per unit: spectrograms of input, target and "
        "residual (needs the `preview` extra: matplotlib)."))] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=(
        "Bootstrap hosts that are not provisioned without asking."))] = False,
    hosts_file: Annotated[Path | None, typer.Option(
        "--hosts-file", envvar="REMOTE_SEP_HOSTS",
        help="hosts.yaml to use (default: the user config dir's remote-sep/hosts.yaml).")
    ] = None,
    as_json: JsonOption = False,
    settings: dict[str, Any] | None = None,  # the setting options given (setting_options)
) -> None:
    """Separate many files with many descriptions on a fleet of hosts.

    Each host runs one worker that loads the model once; hosts pull units from one shared
    queue; a lost host's units go to the others. Rerunning skips units whose outputs exist
    with the right content (--force redoes them). An unprovisioned host is bootstrapped
    first (asked on a terminal; --yes: without asking). Ctrl-C once: finish running units
    and stop; twice: detach (rerun the same command to resume).
    """
    command_line = _resume_command()

    def action() -> dict[str, Any] | None:
        if preview:
            from remote_sep.cli.preview import require_matplotlib
            require_matplotlib()
        # The same builder as `separate`: every option checked before anything runs; the
        # fields given are the resume fingerprint's settings, each host adds its defaults.
        requested = requested_settings(settings or {})
        spans = parse_spans(span or [])
        check_not_predicted(spans, requested.get("predict_spans"))

        def planned(requested: dict[str, Any]):
            return plan_batch(list(inputs or []), list(desc or []), out_dir,
                              template=name_template, manifest=manifest,
                              extension=build_settings(None, requested).extension,
                              stems=list(stem or []), spans=tuple(tuple(s) for s in spans))

        plan = planned(requested)
        names = list(dict.fromkeys(n.strip() for n in host_names.split(",") if n.strip()))
        if not names:
            raise ConfigError("--hosts needs at least one host name")
        fleet = [profiles.get_profile(name, hosts_file) for name in names]
        # a bad hosts.yaml default fails here, not on the host
        built = {profile.name: build_settings(profile, requested) for profile in fleet}
        agreed = _one_format(requested, built)
        if agreed != requested:  # the hosts' own format: names with its extension
            requested, plan = agreed, planned(agreed)
        from remote_sep.batch.host_worker import WorkerOptions
        from remote_sep.cli.ready import ready_options
        from remote_sep.ssh.host import connect  # the SSH stack only when a batch really runs

        with LiveView(err_console, enabled=not as_json and err_console.is_terminal) as view, \
                terminal_owner(view.paused):
            def say(host: str, line: str) -> None:  # bootstrap lines, above the live view
                if not as_json:
                    err_console.print(f"{host}: {line}", markup=False, highlight=False,
                                      soft_wrap=True)

            ready = ready_options(yes=yes, pause=view.paused, say=say,
                                  model=(settings or {}).get("model"))
            report = run_batch(plan, fleet, requested, connect=connect, force=force,
                               on_tick=view.tick,
                               options=WorkerOptions(ready=ready,
                                                     idle_timeout=worker_idle_timeout))
        if preview:
            _previews(report)
        scored = any(s.score for s in built.values())  # --score, or a host's default
        scores = write_scores(plan.out_dir, report.items) if scored else None
        _finish(report, as_json, command_line, scores)
        if not as_json:
            for profile in fleet:
                offer_to_save(profile, hosts_file)
        return None

    run_command("batch", as_json, action)


def _one_format(requested: dict[str, Any], built: dict[str, Any]) -> dict[str, Any]:
    """The outputs are named before any host takes a unit: every host must write one format
    (hosts.yaml `format:` may differ per host); it joins the requested fields."""
    formats = {name: settings.format for name, settings in built.items()}
    if len(set(formats.values())) > 1:
        listed = ", ".join(f"{name}: {fmt}" for name, fmt in formats.items())
        raise ConfigError(f"the hosts' hosts.yaml defaults write different formats ({listed})",
                          hint="pick one with --format")
    if "format" in requested or not formats:
        return requested
    return {**requested, "format": next(iter(formats.values()))}


def _previews(report: BatchReport) -> None:
    """One preview per unit delivered by this run or an earlier one (its outputs exist)."""
    from remote_sep.cli.preview import previews_for

    for item in report.items:
        paths = {role: out["path"] for role, out in item["outputs"].items()}
        if "target" not in paths:  # a stem split: no target/residual pair to draw
            continue
        if item["status"] in ("done", "skipped") and all(Path(p).exists() for p in paths.values()):
            item["previews"] = [str(p) for p in previews_for(
                Path(item["input"]), [{"description": item["description"], **paths}],
                item.get("host") or "batch")]


def _finish(report: BatchReport, as_json: bool, command_line: str,
            scores: Path | None = None) -> None:
    """Print the per-unit results (JSON) or a summary; exit by the worst outcome."""
    kind, stopped = None, report.error
    if stopped is not None:  # a local write error stopped every host
        kind = stopped["kind"]
        stopped = {**stopped, "message": f"{stopped['message']}; the batch stopped: "
                                         f"{_summary(report)}",
                   "hint": f"{stopped['hint']}:\n  {command_line}"}
    elif report.detached or any(i["status"] in ("queued", "running") for i in report.items):
        kind = "interrupted"
    elif report.failed:
        kinds = {item["kind"] for item in report.failed}
        nothing_done = len(report.failed) == len(report.items)
        # All failed for one reason (the only host's key is unknown, say): exit with it.
        kind = kinds.pop() if nothing_done and len(kinds) == 1 else "partial"
    if as_json:
        body = envelope("batch", kind is None, result={
            "items": report.items, "counts": report.counts, "loads": report.loads,
            "state_file": report.state_file, "scores_csv": str(scores) if scores else None})
        if kind:
            body["exit_code"] = exit_code_for(kind)
            body["error"] = stopped or {"kind": kind, "message": _summary(report, kind),
                                        "hint": "; ".join(report.hints) or None}
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
    else:
        table = render_failures(report)
        if table is not None:
            err_console.print(table)
        if stopped is not None:
            err_console.print(f"error: {stopped['message']}", markup=False, soft_wrap=True)
            err_console.print(f"  hint: {stopped['hint']}", markup=False, soft_wrap=True)
        else:
            for item in report.items:
                if "predicted_spans" in item:
                    found = describe(item["predicted_spans"]) or "none found"
                    err_console.print(f"predicted spans of {Path(item['input']).name} "
                                      f"[{item['description']}]: {found}", markup=False,
                                      soft_wrap=True)
            err_console.print(_summary(report), markup=False)
            if scores is not None:
                scored = [i for i in report.items if i.get("scores")]
                for item in scored:
                    err_console.print(f"{Path(item['input']).name}: "
                                      f"{score_line(item['description'], item['scores'])}",
                                      markup=False, soft_wrap=True)
                err_console.print(f"scores of {len(scored)} unit(s): {scores}", markup=False,
                                  soft_wrap=True)
            for hint in report.hints:
                err_console.print(f"  hint: {hint}", markup=False, soft_wrap=True)
        if kind == "interrupted":
            done = ("detached; the remote workers finish what they hold." if report.detached
                    else "stopped after the running units; the others were not run.")
            err_console.print(f"{done} Resume with:\n  {command_line}", markup=False,
                              soft_wrap=True)
    # Exit here in every case: run_command must not print a second JSON envelope.
    raise typer.Exit(exit_code_for(kind) if kind else 0)


def _summary(report: BatchReport, kind: str | None = None) -> str:
    counts = report.counts
    text = (f"{counts.get('done', 0)} done, {counts.get('skipped', 0)} already done, "
            f"{counts.get('failed', 0)} failed, "
            f"{counts.get('queued', 0) + counts.get('running', 0)} not run")
    reasons = {item["message"] for item in report.failed}
    if kind not in (None, "partial", "interrupted") and len(reasons) == 1:
        text += f": {reasons.pop()}"  # every unit failed for one reason: say which
    return text


def _resume_command() -> str:
    return quote_argv(["remote-sep", *sys.argv[1:]])

