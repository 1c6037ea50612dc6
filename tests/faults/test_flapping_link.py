"""A link that comes up and drops again at once (real sshd, its session killed by pid right
after each connect): every reconnect succeeds, yet neither `separate`'s Link nor a batch
host thread may reconnect forever. Both give up within their budget."""

from __future__ import annotations

import threading
import time

import pytest
from batch_helpers import fleet, make_songs

from remote_sep.batch.fleet import run_batch
from remote_sep.batch.host_worker import WorkerOptions
from remote_sep.batch.plan import plan_batch
from remote_sep.errors import Unreachable
from remote_sep.jobs.follow import Link
from remote_sep.ssh.host import connect

pytestmark = pytest.mark.e2e


def dropped_at_once(server):
    """connect() that works, then loses its link before the caller can use it."""
    def flapping(profile):
        host = connect(profile)
        server.drop_links()
        deadline = time.monotonic() + 5
        while host.alive and time.monotonic() < deadline:  # the transport sees the EOF
            time.sleep(0.01)
        return host
    return flapping


def in_thread(target) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def test_separates_link_gives_up_on_a_flapping_link(tmp_path, ssh_server):
    _, (profile,) = fleet(tmp_path, {"gpu": ssh_server})
    link = Link(profile, dropped_at_once(ssh_server), budget_s=2.0)
    started = time.monotonic()
    thread, box = in_thread(lambda: link.call(lambda host: host.run(["true"])))
    thread.join(30)
    assert not thread.is_alive(), "Link.call kept reconnecting to a flapping link"
    assert isinstance(box.get("error"), Unreachable), box
    assert "keeps dropping" in box["error"].message
    assert time.monotonic() - started < 2.0 + 8  # the budget, plus one connect and back-off
    assert 1 <= link.reconnects <= 4  # backed off between reconnects, no spinning


def test_batch_host_leaves_a_flapping_link_within_give_up_s(tmp_path, ssh_server):
    """The worker job starts on a good link; then every reconnect flaps. The host thread
    must not count each successful connect as a fresh start."""
    make_songs(tmp_path / "in", 2, seconds=0.2)
    _, profiles = fleet(tmp_path, {"gpu": ssh_server}, SAM_STANDIN_SECONDS_PER_SECOND="20")
    plan = plan_batch([str(tmp_path / "in")], ["vocals"], tmp_path / "out")
    flapping, first = dropped_at_once(ssh_server), []

    def good_then_flapping(profile):
        if not first:
            first.append(True)
            return connect(profile)
        return flapping(profile)

    options = WorkerOptions(backoff=(0.05, 0.1), give_up_s=2.0, close_wait_s=0.5)
    thread, box = in_thread(lambda: run_batch(plan, profiles, {}, options=options,
                                              connect=good_then_flapping))
    jobs = tmp_path / "remote-gpu" / "jobs"
    deadline = time.monotonic() + 30
    while not list(jobs.glob("*/events.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.02)  # the worker job is started
    ssh_server.drop_links()
    thread.join(30)
    assert not thread.is_alive(), "the host thread kept reconnecting to a flapping link"
    report = box["value"]
    assert [item["status"] for item in report.items] == ["failed", "failed"]
    assert {item["kind"] for item in report.items} == {"unreachable"}
