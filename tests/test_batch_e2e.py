"""`remote-sep batch` end to end: two real loopback sshd hosts, the stand-in model."""

from __future__ import annotations

import json

import pytest
from batch_helpers import check_outputs, events, fleet, loads, make_songs, remote_jobs, sha
from typer.testing import CliRunner

from remote_sep.batch.fleet import run_batch
from remote_sep.batch.host_worker import WorkerOptions
from remote_sep.batch.plan import plan_batch
from remote_sep.cli.main import app
from remote_sep.ssh.host import connect

pytestmark = pytest.mark.e2e


def test_12_files_x_2_descriptions_over_2_hosts(tmp_path, make_ssh_server):
    songs = make_songs(tmp_path / "in", 12)
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a"), "gpu2": make_ssh_server("b")})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "batch", str(tmp_path / "in"), "--desc", "vocals", "--desc", "bass",
        "--hosts", "gpu1,gpu2", "--hosts-file", str(hosts_file), "--out-dir", str(out),
        "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["ok"] and body["command"] == "batch"
    items = body["result"]["items"]
    check_outputs(out, items, 24)
    # sha256 checked against the remote copies too
    for name in ("gpu1", "gpu2"):
        (job,) = remote_jobs(tmp_path, name)
        for event in events(job):
            if event["event"] == "item_done":
                for output in event["outputs"].values():
                    assert sha(job / output["path"]) == output["sha256"]  # abs stays abs
        assert loads(tmp_path, name) == 1  # the model loaded once per host
        assert sum(e["event"] == "load" for e in events(job)) == 1
    by_host = {i["host"] for i in items}
    assert by_host == {"gpu1", "gpu2"}  # both hosts pulled from the shared queue
    assert len(songs) == 12


def run_in_thread(plan, profile_list, **kwargs):
    """run_batch in a thread, so the test can break things while it runs."""
    import threading

    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault(
        "report", run_batch(plan, profile_list, {}, connect=kwargs.pop("connect", connect),
                            **kwargs)), daemon=True)
    thread.start()
    return thread, box


def wait_for(predicate, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def items_done_on(tmp_path, name: str) -> int:
    return sum(e["event"] == "item_done" for job in remote_jobs(tmp_path, name)
               for e in events(job))


def pulled_from(out, name: str) -> int:
    """Units the laptop has pulled from host ``name`` so far (its batch state file)."""
    try:
        state = json.loads((out / ".remote-sep-batch.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(record["host"] == name for record in state["done"].values())


def test_resume_transfers_nothing_and_runs_nothing(tmp_path, make_ssh_server):
    make_songs(tmp_path / "in", 3)
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a")})
    out = tmp_path / "out"
    argv = ["batch", str(tmp_path / "in"), "-d", "drums", "--hosts", "gpu1",
            "--hosts-file", str(hosts_file), "-o", str(out), "--json"]
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 0, first.output
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.wav")}
    cache = tmp_path / "remote-gpu1" / "cache"
    cached = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    second = CliRunner().invoke(app, argv)
    assert second.exit_code == 0, second.output
    items = json.loads(second.stdout)["result"]["items"]
    assert [i["status"] for i in items] == ["skipped"] * 3
    check_outputs(out, items, 3)
    assert len(remote_jobs(tmp_path, "gpu1")) == 1  # nothing ran
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.wav")} == stamps  # nothing pulled
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == cached  # nothing uploaded
    # A changed output is redone; --force redoes everything.
    victim = sorted(out.glob("*_target.wav"))[0]
    victim.write_bytes(b"damaged")
    third = json.loads(CliRunner().invoke(app, argv).stdout)["result"]["items"]
    assert sorted(i["status"] for i in third) == ["done", "skipped", "skipped"]
    check_outputs(out, third, 3)
    forced = CliRunner().invoke(app, [*argv, "--force"])
    assert [i["status"] for i in json.loads(forced.stdout)["result"]["items"]] == ["done"] * 3
    assert len(remote_jobs(tmp_path, "gpu1")) == 3


def test_host_killed_mid_batch_its_units_finish_on_the_other(tmp_path, make_ssh_server):
    import os
    import signal

    make_songs(tmp_path / "in", 8)
    servers = {"gpu1": make_ssh_server("a"), "gpu2": make_ssh_server("b")}
    _, profile_list = fleet(tmp_path, servers, SAM_STANDIN_SECONDS_PER_SECOND="0.6")
    out = tmp_path / "out"
    plan = plan_batch([str(tmp_path / "in")], ["vocals", "bass"], out)
    options = WorkerOptions(retry_budget=2, backoff=(0.1, 0.2, 0.4))
    thread, box = run_in_thread(plan, profile_list, options=options)
    wait_for(lambda: pulled_from(out, "gpu1") >= 1)
    servers["gpu1"].stop()  # the host's sshd and every link to it, by pid
    (job,) = remote_jobs(tmp_path, "gpu1")
    os.kill(int((job / "pid").read_text()), signal.SIGKILL)  # and its worker
    thread.join(timeout=120)
    report = box["report"]
    check_outputs(out, report.items, 16)  # none lost, none duplicated
    hosts = [i["host"] for i in report.items]
    assert "gpu1" in hosts and hosts.count("gpu2") > hosts.count("gpu1")
    assert report.ok


def test_link_cut_mid_item_reconnects_and_finishes(tmp_path, make_ssh_server):
    make_songs(tmp_path / "in", 6)
    server = make_ssh_server("a")
    _, profile_list = fleet(tmp_path, {"gpu1": server}, SAM_STANDIN_SECONDS_PER_SECOND="0.6")
    out = tmp_path / "out"
    plan = plan_batch([str(tmp_path / "in")], ["vocals"], out)
    connects = []

    def counting_connect(profile):
        connects.append(profile.name)
        return connect(profile)

    thread, box = run_in_thread(plan, profile_list, connect=counting_connect)
    wait_for(lambda: items_done_on(tmp_path, "gpu1") >= 2)
    assert server.drop_links() >= 1
    thread.join(timeout=120)
    report = box["report"]
    check_outputs(out, report.items, 6)
    assert len(connects) >= 2  # it did reconnect
    assert loads(tmp_path, "gpu1") == 1  # the same worker went on: the model loaded once
    assert len(remote_jobs(tmp_path, "gpu1")) == 1


def test_laptop_killed_rerun_pulls_what_the_remote_finished(tmp_path, make_ssh_server):
    import subprocess
    import sys
    import time

    make_songs(tmp_path / "in", 6)
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a")},
                          SAM_STANDIN_SECONDS_PER_SECOND="0.6")
    out = tmp_path / "out"
    argv = [sys.executable, "-c", "from remote_sep.cli.main import main; main()", "batch",
            str(tmp_path / "in"), "-d", "drums", "--hosts", "gpu1", "--hosts-file",
            str(hosts_file), "-o", str(out), "--json"]
    laptop = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: pulled_from(out, "gpu1") >= 1)
    finally:
        laptop.kill()  # the laptop goes away mid-batch; the remote worker runs on
        laptop.wait()
    (old_job,) = remote_jobs(tmp_path, "gpu1")
    wait_for(lambda: items_done_on(tmp_path, "gpu1") > pulled_from(out, "gpu1"))
    time.sleep(0.2)
    finished_remotely = {e["item"] for e in events(old_job) if e["event"] == "item_done"}
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    items = json.loads(rerun.stdout)["result"]["items"]
    check_outputs(out, items, 6)
    new_jobs = [j for j in remote_jobs(tmp_path, "gpu1") if j != old_job]
    rerun_items = {e["item"] for j in new_jobs for e in events(j) if e["event"] == "item_done"}
    # what the old worker had finished is pulled from it, never run again
    assert len(finished_remotely) >= 2
    assert not {f"u{i}" for i in range(6)} & finished_remotely & rerun_items
    assert (old_job / "inbox" / "CLOSE").exists()  # the old worker was told to finish


def test_a_bad_file_gives_partial_with_the_failure_listed(tmp_path, make_ssh_server):
    make_songs(tmp_path / "in", 2)
    (tmp_path / "in" / "broken $(id).wav").write_bytes(b"this is not audio")
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a")})
    out = tmp_path / "out"
    argv = ["batch", str(tmp_path / "in"), "-d", "drums", "--hosts", "gpu1",
            "--hosts-file", str(hosts_file), "-o", str(out)]
    result = CliRunner().invoke(app, [*argv, "--json"])
    assert result.exit_code == 19, result.output  # partial
    body = json.loads(result.stdout)
    assert not body["ok"] and body["error"]["kind"] == "partial"
    by_name = {item["input"].rsplit("/", 1)[-1]: item for item in body["result"]["items"]}
    assert by_name["broken $(id).wav"]["status"] == "failed"
    assert by_name["broken $(id).wav"]["kind"] == "bad_audio"
    assert [by_name[f"song {i:02d}.wav"]["status"] for i in range(2)] == ["done", "done"]
    assert not list(out.glob("broken*"))  # nothing partial left behind
    again = CliRunner().invoke(app, argv)  # the human view lists the failure with its kind
    assert again.exit_code == 19
    assert "bad_audio" in again.output and "2 already done" in again.output


def inbox_items(job) -> list[str]:
    return sorted(p.name for p in (job / "inbox").glob("*.json"))


def item_id_of(file_name: str) -> str:
    return file_name.rsplit("-", 1)[1].removesuffix(".json")  # "000002-u1.json" -> "u1"


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_drains_then_detaches_and_says_how_to_resume(tmp_path, make_ssh_server,
                                                            presses):
    """The stand-in holds the first unit "on the GPU" (SAM_STANDIN_HOLD) while the inbox
    holds the next ones, so Ctrl-C finds untaken items there whatever the machine's load."""
    import signal
    import subprocess
    import sys
    import time

    make_songs(tmp_path / "in", 12)
    hold = tmp_path / "hold"
    hold.write_text("")
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a")}, SAM_STANDIN_HOLD=str(hold))
    out = tmp_path / "out"
    argv = [sys.executable, "-c", "from remote_sep.cli.main import main; main()", "batch",
            str(tmp_path / "in"), "-d", "drums", "--hosts", "gpu1", "--hosts-file",
            str(hosts_file), "-o", str(out)]
    laptop = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(remote_jobs(tmp_path, "gpu1")) == 1)
        (job,) = remote_jobs(tmp_path, "gpu1")
        wait_for(lambda: any(e["event"] == "item_start" for e in events(job))
                 and len(inbox_items(job)) >= 2)
        waiting = inbox_items(job)  # untaken: the worker is held on its first unit
        (running,) = {e["item"] for e in events(job) if e["event"] == "item_start"}
        for _ in range(presses):
            laptop.send_signal(signal.SIGINT)
            time.sleep(0.05)
        if presses == 1:  # the untaken items are withdrawn and the inbox closed, at once
            wait_for(lambda: (job / "inbox" / "CLOSE").exists())
            assert inbox_items(job) == []
        else:
            laptop.wait(timeout=60)  # detached while the unit is still held
        hold.unlink()
        _, stderr = laptop.communicate(timeout=60)
    finally:
        hold.unlink(missing_ok=True)
        laptop.kill()
    assert laptop.returncode == 130, stderr
    assert "waiting for the running ones" in stderr
    assert "Resume with:" in stderr and "remote-sep batch" in stderr
    pulled = pulled_from(out, "gpu1")
    if presses == 1:  # only the running unit finished and was pulled; the worker exits
        assert pulled == 1 < 12
        wait_for(lambda: any(e["event"] == "bye" for e in events(job)))
        ran = {e["item"] for e in events(job) if e["event"] in ("item_start", "item_done")}
        assert ran == {running}
        for name in waiting:  # withdrawn: gone from the inbox, never taken, never run
            assert not (job / "taken" / name).exists()
            assert item_id_of(name) not in ran
    else:
        assert pulled == 0
    rerun = subprocess.run([*argv, "--json"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    items = json.loads(rerun.stdout)["result"]["items"]
    check_outputs(out, items, 12)
    if presses == 1:  # the rerun ran the withdrawn units (and all but the one done before)
        assert [i["status"] for i in items].count("skipped") == 1
        new_job = next(j for j in remote_jobs(tmp_path, "gpu1") if j != job)
        done_there = {e["item"] for e in events(new_job) if e["event"] == "item_done"}
        assert {item_id_of(name) for name in waiting} <= done_there
        assert items_done_on(tmp_path, "gpu1") == 12  # each unit ran once in all


def test_unknown_host_key_fails_every_unit_with_host_key(tmp_path, make_ssh_server):
    make_songs(tmp_path / "in", 2)
    server = make_ssh_server("a")
    hosts_file, _ = fleet(tmp_path, {"gpu1": server})
    server.known_hosts.write_text("")  # the laptop has never trusted this host
    result = CliRunner().invoke(app, [
        "batch", str(tmp_path / "in"), "-d", "drums", "--hosts", "gpu1",
        "--hosts-file", str(hosts_file), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 8, result.output  # host_key
    body = json.loads(result.stdout)
    assert {i["kind"] for i in body["result"]["items"]} == {"host_key"}
    assert "unknown" in body["result"]["items"][0]["message"]
    assert not remote_jobs(tmp_path, "gpu1")


ITEM_KEYS = {"input", "description", "status", "host", "kind", "message", "seconds", "outputs",
             "scores"}


def test_local_host_through_the_cli_and_the_json_contract(tmp_path):
    """`--hosts local`: the same worker, inbox, event stream and pulls, with no SSH."""
    import sys

    from batch_helpers import write_hosts_file
    from conftest import TESTS

    make_songs(tmp_path / "in", 3)
    hosts_file = write_hosts_file(tmp_path / "hosts.yaml", {"local": {
        "path": str(tmp_path / "remote-local"), "python": sys.executable,
        "env": {"PYTHONPATH": str(TESTS / "standins"),
                "SAM_STANDIN_LOAD_LOG": str(tmp_path / "loads-local.jsonl")}}})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "batch", str(tmp_path / "in"), "-d", "vocals", "--hosts", "local",
        "--hosts-file", str(hosts_file), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    # The --json contract (docs/batch.md): envelope, result keys, keys of every item.
    assert body["v"] == 1 and body["ok"] is True and body["command"] == "batch"
    assert set(body["result"]) == {"items", "counts", "loads", "state_file", "scores_csv"}
    assert body["result"]["scores_csv"] is None  # no --score
    assert body["result"]["counts"] == {"queued": 0, "running": 0, "done": 3, "failed": 0,
                                        "skipped": 0}
    assert body["result"]["loads"] == {"local": 1}
    for item in body["result"]["items"]:
        assert set(item) == ITEM_KEYS
        assert item["status"] == "done" and item["host"] == "local" and item["kind"] is None
        assert set(item["outputs"]) == {"target", "residual"}
        assert all(set(o) == {"path", "sha256"} for o in item["outputs"].values())
    check_outputs(out, body["result"]["items"], 3)
    assert loads(tmp_path, "local") == 1
    (job,) = remote_jobs(tmp_path, "local")
    assert (job / "inbox" / "CLOSE").exists()
    wait_for(lambda: any(e["event"] == "bye" for e in events(job)))  # the worker exited


def test_a_lost_hosts_worker_is_closed_when_the_batch_ends(tmp_path, make_ssh_server):
    """gpu1's link is cut and stays down for its host thread: gpu2 does the rest. Once
    the batch is over, gpu1's worker (still waiting on its inbox) is told to finish."""
    import threading

    from remote_sep.errors import Unreachable

    make_songs(tmp_path / "in", 6)
    servers = {"gpu1": make_ssh_server("a"), "gpu2": make_ssh_server("b")}
    _, profile_list = fleet(tmp_path, servers, SAM_STANDIN_SECONDS_PER_SECOND="0.6")
    out = tmp_path / "out"
    plan = plan_batch([str(tmp_path / "in")], ["vocals", "bass"], out)
    cut = threading.Event()

    def flaky_connect(profile):
        # Only gpu1's host thread is refused; the end-of-batch closer may connect.
        if cut.is_set() and profile.name == "gpu1" and \
                threading.current_thread().name == "batch-gpu1":
            raise Unreachable("link down (test)")
        return connect(profile)

    options = WorkerOptions(retry_budget=1, backoff=(0.1, 0.2), give_up_s=300)
    thread, box = run_in_thread(plan, profile_list, connect=flaky_connect, options=options)
    wait_for(lambda: pulled_from(out, "gpu1") >= 1)
    cut.set()
    servers["gpu1"].drop_links()
    thread.join(timeout=120)
    report = box["report"]
    check_outputs(out, report.items, 12)
    (job,) = remote_jobs(tmp_path, "gpu1")
    assert (job / "inbox" / "CLOSE").exists()
    assert not list((job / "inbox").glob("*.json"))  # its untaken items were dropped
    wait_for(lambda: any(e["event"] == "bye" for e in events(job)))  # and it exits


def test_a_file_the_batch_did_not_write_is_not_overwritten_without_force(tmp_path):
    import sys

    from batch_helpers import write_hosts_file
    from conftest import TESTS

    make_songs(tmp_path / "in", 2)
    hosts_file = write_hosts_file(tmp_path / "hosts.yaml", {"local": {
        "path": str(tmp_path / "remote-local"), "python": sys.executable,
        "env": {"PYTHONPATH": str(TESTS / "standins")}}})
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "song 01_vocals_target.wav"
    mine.write_bytes(b"the user's own file")
    argv = ["batch", str(tmp_path / "in"), "-d", "vocals", "--hosts", "local",
            "--hosts-file", str(hosts_file), "-o", str(out), "--json"]
    refused = CliRunner().invoke(app, argv)
    assert refused.exit_code == 16, refused.output  # output_exists
    body = json.loads(refused.stdout)
    assert body["error"]["kind"] == "output_exists" and "--force" in body["error"]["hint"]
    assert mine.read_bytes() == b"the user's own file"
    assert remote_jobs(tmp_path, "local") == []  # nothing ran
    forced = CliRunner().invoke(app, [*argv, "--force"])
    assert forced.exit_code == 0, forced.output
    check_outputs(out, json.loads(forced.stdout)["result"]["items"], 2)
