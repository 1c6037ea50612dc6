"""`remote-sep split`: several stems out of one file, each from what the ones before left
(thin command; the job core is jobs/separate.py, the naming jobs/split.py; the separation
settings are the one table's, as for `separate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from remote_sep.cli.common import (
    HostOption,
    HostsOption,
    JsonOption,
    err_console,
    offer_to_save,
    out_console,
    run_command,
)
from remote_sep.cli.setting_options import setting_options


@setting_options("split")
def split(
    audio: Annotated[Path, typer.Argument(help="The audio file to split.")],
    stem: Annotated[list[str], typer.Option("--stem", "-s", help=(
        "A stem to take out, as a text description (repeat; easiest first: each is "
        "separated from what the ones before it left)."))],
    host: HostOption,
    out: Annotated[str | None, typer.Option("--out", "-o", help=(
        "Output prefix: writes PREFIX_<stem>.EXT per stem and PREFIX_other.EXT (default: "
        "<input stem> next to the input). DIR/ or an existing folder: DIR/<input stem>."))
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=(
        "Bootstrap the host without asking when it is not provisioned."))] = False,
    hosts: HostsOption = None,
    as_json: JsonOption = False,
    settings: dict[str, Any] | None = None,  # the setting options given (setting_options)
) -> None:
    """Split AUDIO into stems on a host, with one model load: each --stem in the order
    given, then PREFIX_other with what is left. The stems and other add up to the input
    (docs/split.md says how exactly in each format). Ctrl-C detaches like `separate`.
    """
    from remote_sep.cli.ready import ready_options
    from remote_sep.cli.separate import _profile, _with_view
    from remote_sep.jobs.separate import SeparateOptions, check_inputs, run_separate
    from remote_sep.jobs.settings import requested_settings
    from remote_sep.jobs.split import stem_names

    def action() -> dict[str, Any]:
        check_inputs(audio.expanduser(), stem)  # the user's own mistakes first
        opts = SeparateOptions(descriptions=stem, out=out, force=force,
                               settings=dict(settings or {}), stems=stem_names(stem))
        requested_settings(opts.settings)  # bad options before the profile
        profile = _profile(host, hosts)
        result = _with_view(as_json, lambda notify, pause: run_separate(
            audio, profile, opts, notify,
            provision=ready_options(yes=yes, pause=pause, say=lambda name, line: notify(
                "status", {"message": line}))))
        result["stems"] = [*opts.stems, "other"]
        if not as_json:
            offer_to_save(profile, hosts)
            for entry in result["outputs"]:
                for kind in result["stems"]:
                    if kind in entry:
                        out_console.print(entry[kind], markup=False, highlight=False,
                                          soft_wrap=True)
            err_console.print(f"job {result['job_id']} on {result['host']}: "
                              f"{len(opts.stems)} stem(s) + other in "
                              f"{result['seconds']:.1f} s", markup=False)
        return result

    run_command("split", as_json, action)


def register(app: typer.Typer) -> None:
    app.command("split")(split)
