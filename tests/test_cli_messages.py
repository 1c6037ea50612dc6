"""User text (file names, descriptions, remote messages) is printed literally, never read
as rich markup: brackets in a name must not vanish or crash the command."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from remote_payload.protocol import EXIT_CODES
from remote_sep.batch.fleet import BatchRun, _report
from remote_sep.batch.host_worker import HostWorker
from remote_sep.batch.plan import BatchPlan, Unit
from remote_sep.batch.queue import WorkQueue
from remote_sep.batch.state import BatchState
from remote_sep.cli.batch_view import render_failures
from remote_sep.cli.job_view import JobState, render
from remote_sep.cli.main import app
from remote_sep.hosts.profile import HostProfile

BRACKETS = "song [live] [/] [bold]x.wav"


def text_of(renderable) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_error_message_with_brackets_is_printed_as_is(tmp_path):
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("hosts: {}\n")
    result = CliRunner().invoke(app, ["separate", str(tmp_path / BRACKETS), "--desc", "v",
                                      "--host", "local", "--hosts", str(hosts)])
    assert result.exit_code == EXIT_CODES["bad_audio"], result.output
    assert BRACKETS in result.output.replace("\n", "")


def test_hosts_add_into_a_bracketed_folder(tmp_path):
    hosts = tmp_path / "cfg [/]" / "hosts.yaml"
    result = CliRunner().invoke(app, ["hosts", "add", "gpu1", "me@203.0.113.7",
                                      "--hosts", str(hosts)])
    assert result.exit_code == 0, result.output
    assert "cfg [/]" in result.output.replace("\n", "")


def test_batch_failure_table_shows_bracketed_names(tmp_path):
    unit = Unit(key="k0", index=0, input=Path(f"/in/{BRACKETS}"), description="[drums]",
                outputs={"target": tmp_path / "t.wav", "residual": tmp_path / "r.wav"})
    queue = WorkQueue([unit])
    workers = [HostWorker(HostProfile("gpu1"), queue, BatchState(tmp_path), {}, {}, {},
                          connect=lambda p: None, stop=threading.Event())]
    run = BatchRun(BatchPlan([unit], tmp_path), queue, workers, started=1.0)
    queue.take("gpu1")
    queue.fail("k0", "gpu1", "bad_audio", "cannot decode [/]")
    report = _report(run.plan, queue, run.workers, BatchState(tmp_path), detached=False)
    text = text_of(render_failures(report))
    assert BRACKETS in text and "[drums]" in text and "cannot decode [/]" in text


def test_progress_view_shows_bracketed_descriptions():
    state = JobState()
    state.apply("event", {"event": "item_start", "t": 0.0, "item": "i0", "desc": 0,
                          "description": "[/] [bold]vocals", "chunks": 2})
    assert "[/] [bold]vocals" in text_of(render(state))


def test_usage_errors_exit_2_as_the_help_says():
    help_text = CliRunner().invoke(app, ["--help"]).output
    assert "2 usage" in " ".join(help_text.split())
    assert CliRunner().invoke(app, ["separate", "a.wav"]).exit_code == 2  # no --desc
