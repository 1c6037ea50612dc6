"""`remote-sep separate`, `jobs` and `attach` (thin commands; the work is in jobs/separate.py)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from remote_payload.protocol import SCORE_NAMES
from remote_sep.cli.common import (
    HostArg,
    HostOption,
    HostsOption,
    JobArg,
    JsonOption,
    err_console,
    offer_to_save,
    out_console,
    run_command,
    terminal_owner,
)
from remote_sep.cli.setting_options import setting_options


def _profile(name: str, hosts: Path | None):
    from remote_sep.profiles import get_profile

    return get_profile(name, hosts)


def _with_view(as_json: bool, action):
    """Run ``action(notify, pause)`` with the live progress view on stderr (none under
    --json); ``pause()`` is a context in which the terminal may be used for a question."""
    if as_json:
        return action(lambda kind, data: None, contextlib.nullcontext)
    from remote_sep.cli.job_view import LiveView

    with LiveView(err_console) as view, terminal_owner(view.paused):
        return action(view, view.paused)


def _print_outputs(result: dict[str, Any]) -> None:
    for entry in result["outputs"]:
        for kind in ("target", "residual"):
            if kind in entry:
                out_console.print(entry[kind], markup=False, highlight=False, soft_wrap=True)
    for png in result.get("previews", []):
        out_console.print(png, markup=False, highlight=False, soft_wrap=True)
    if result.get("video"):
        video = result["video"]
        what = f"box {','.join(map(str, video['box']))}" if video["box"] else \
            f"mask {Path(video['mask']).name}"
        err_console.print(f"visual prompt: {Path(video['video']).name}, {what}, "
                          f"{video['frames']} frames at {video['fps']:g} fps", markup=False)
    for entry in result["outputs"]:
        if entry.get("scores"):
            err_console.print(score_line(entry["description"], entry["scores"]), markup=False,
                              soft_wrap=True)
        if "predicted_spans" in entry:
            from remote_sep.jobs.spans import describe

            found = describe(entry["predicted_spans"]) or "none found"
            err_console.print(f"predicted spans of '{entry['description']}': {found}",
                              markup=False, soft_wrap=True)
    err_console.print(f"job {result['job_id']} on {result['host']}: done in "
                      f"{result['seconds']:.1f} s", markup=False)


def score_line(description: str | None, scores: dict[str, Any]) -> str:
    """One summary line: the judge's four scores of one target."""
    shown = ", ".join(f"{name} {scores[name]:.2f}" for name in SCORE_NAMES if name in scores)
    return f"scores of '{description}': {shown}"


@setting_options("separate")
def separate(
    audio: Annotated[Path, typer.Argument(help=(
        "The audio file to separate (or a video: its audio track, with --mask/--box)."))],
    host: HostOption,
    desc: Annotated[list[str] | None, typer.Option("--desc", "-d", help=(
        "Text description of the sound to take out (repeat for several; optional with a "
        "visual prompt)."))] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help=(
        "Output prefix: writes PREFIX_target.EXT and PREFIX_residual.EXT (default: "
        "<input stem>_<description> next to the input). DIR/ or an existing folder: "
        "DIR/<input stem>_<description>."))] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    preview: Annotated[bool, typer.Option("--preview", help=(
        "Also write PREFIX_preview.png: spectrograms of input, target and residual "
        "(needs the `preview` extra: matplotlib)."))] = False,
    span: Annotated[list[str] | None, typer.Option("--span", help=(
        "+T0:T1: the described sound is there; -T0:T1: it is not (seconds or m:ss.s of "
        "the input; repeat for several). See docs/spans.md."))] = None,
    video: Annotated[Path | None, typer.Option(help=(
        "Visual prompt (-tv models): the video whose object is to be heard; the audio stays "
        "AUDIO's. Needs --mask or --box. See docs/video.md."))] = None,
    mask: Annotated[Path | None, typer.Option(help=(
        "Mask video of the object (white on it, one frame per video frame, e.g. from "
        "SAM 2); with AUDIO a video, or --video."))] = None,
    box: Annotated[str | None, typer.Option(help=(
        "The object as a fixed box X0,Y0,X1,Y1 in pixels of the video frame (instead of "
        "--mask)."))] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=(
        "Bootstrap the host without asking when it is not provisioned."))] = False,
    hosts: HostsOption = None,
    as_json: JsonOption = False,
    settings: dict[str, Any] | None = None,  # the setting options given (setting_options)
) -> None:
    """Separate the described sources out of AUDIO on a host; pull target and residual.

    An unprovisioned host is bootstrapped first (asked on a terminal; --yes: without
    asking). Ctrl-C detaches (the job runs on; `remote-sep attach JOB --host NAME` picks
    it up).
    """
    from remote_sep.cli.ready import ready_options
    from remote_sep.jobs.separate import (
        SeparateOptions,
        check_inputs,
        item_spans,
        run_separate,
    )
    from remote_sep.jobs.settings import requested_settings
    from remote_sep.jobs.visual import visual_prompt

    if not desc and video is None and mask is None and box is None:
        raise typer.BadParameter("missing: a text description of the sound (optional only "
                                 "with a visual prompt: --video, --mask, --box)",
                                 param_hint="'--desc' / '-d'")

    def action() -> dict[str, Any]:
        visual = visual_prompt(audio.expanduser(), video, mask, box)
        descriptions = desc or [""]  # no text: the video alone is the prompt
        check_inputs(audio.expanduser(), descriptions, visual)  # the user's own mistakes first
        if preview:
            from remote_sep.cli.preview import require_matplotlib
            require_matplotlib()
        opts = SeparateOptions(descriptions=descriptions, out=out, force=force,
                               settings=dict(settings or {}), spans=list(span or []),
                               visual=visual)
        requested_settings(opts.settings)  # bad options before the profile
        item_spans(audio.expanduser(), opts)
        profile = _profile(host, hosts)
        result = _with_view(as_json, lambda notify, pause: run_separate(
            audio, profile, opts, notify,
            provision=ready_options(yes=yes, pause=pause, say=lambda name, line: notify(
                "status", {"message": line}))))
        if preview:
            from remote_sep.cli.preview import previews_for
            result["previews"] = [str(p) for p in previews_for(
                audio.expanduser(), result["outputs"], profile.name)]
        if not as_json:
            offer_to_save(profile, hosts)
            _print_outputs(result)
        return result

    run_command("separate", as_json, action)


def attach(
    job: JobArg,
    host: HostOption,
    out: Annotated[str | None, typer.Option("--out", "-o", help=(
        "Output prefix (default: the names the job was started with, else JOB_<item>_<desc> "
        "in the current folder). DIR/ or an existing folder: those names, inside DIR."))
    ] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite existing files at the --out names.")] = False,
    hosts: HostsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a job from its first event and pull every output not already here."""
    from remote_sep.jobs.attach import run_attach

    def action() -> dict[str, Any]:
        profile = _profile(host, hosts)
        result = _with_view(as_json, lambda notify, pause: run_attach(
            job, profile, out, notify, force=force))
        if not as_json:
            _print_outputs(result)
        return result

    run_command("attach", as_json, action)


def jobs(
    name: HostArg,
    hosts: HostsOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the jobs on a host: id, state (running/done/failed), outputs done, age."""
    from remote_sep.jobs.follow import Link
    from remote_sep.jobs.layout import list_jobs

    def action() -> dict[str, Any]:
        profile = _profile(name, hosts)
        link = Link(profile)
        try:
            found = list_jobs(link.host, profile)
        finally:
            link.close()
        rows = [{"job_id": j.job_id, "state": j.state, "outputs_done": j.outputs_done,
                 "age_s": j.age_s, "last_event": (j.last_event or {}).get("event")}
                for j in found]
        if not as_json:
            table = Table("job", "state", "outputs", "age", "last event", box=None)
            for row in rows:
                table.add_row(row["job_id"], row["state"], str(row["outputs_done"]),
                              _age(row["age_s"]), row["last_event"] or "")
            out_console.print(table)
        return {"host": name, "jobs": rows, "checked_at": time.time()}

    run_command("jobs", as_json, action)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def register(app: typer.Typer) -> None:
    app.command("separate")(separate)
    app.command("attach")(attach)
    app.command("jobs")(jobs)
