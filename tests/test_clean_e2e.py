"""`remote-sep clean` end to end through the CLI against a real loopback sshd: job folders,
cache files and payload versions made directly on the "remote" (this machine), with old
mtimes set by os.utime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import profile_for, write_hosts_file
from typer.testing import CliRunner

from remote_payload.protocol import EXIT_CODES
from remote_sep.cli.main import app

pytestmark = pytest.mark.e2e
DAY = 86400
# A base with a space, a quote and a command substitution: quoting must hold everywhere.
WEIRD = "re mote's $(touch PWNED)"


def age(path: Path, days: float) -> None:
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))


def make_job(base: Path, job_id: str, days: float, *, bye: bool = True, pid: int = 0,
             inbox: bool = False) -> Path:
    job = base / "jobs" / job_id
    (job / "out").mkdir(parents=True)
    (job / "out" / "stem_target.wav").write_bytes(b"\0" * 50_000)
    (job / "manifest.json").write_text(json.dumps({"job_id": job_id}))
    events = [{"seq": 0, "event": "hello"}]
    if bye:
        events.append({"seq": 1, "event": "bye", "ok": True})
    (job / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if pid:
        (job / "pid").write_text(f"{pid}\n")
    if inbox:
        (job / "inbox").mkdir()
    for path in (job / "manifest.json", job / "events.jsonl", job):
        age(path, days)
    return job


def invoke(hosts: Path, *args: str):
    result = CliRunner().invoke(app, ["clean", "gpu", "--hosts", str(hosts), *args, "--json"])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result, (json.loads(lines[-1]) if lines else None)


@pytest.fixture
def remote(ssh_server, tmp_path):
    base = tmp_path / WEIRD
    base.mkdir()
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": profile_for(ssh_server, base)})
    sleeper = subprocess.Popen(["sleep", "60"])
    yield base, hosts, sleeper
    sleeper.kill()
    sleeper.wait()


def test_clean_removes_old_done_jobs_only(remote, tmp_path):
    base, hosts, sleeper = remote
    old = make_job(base, "20200101-000000-old000", days=10)
    recent = make_job(base, "20990101-000000-new000", days=1)
    running = make_job(base, "20200101-000000-run000", days=10, bye=False, pid=sleeper.pid)
    # finished but its process not yet reaped: still alive, so kept
    lingering = make_job(base, "20200101-000000-ling00", days=10, pid=sleeper.pid)
    worker = make_job(base, "20200101-000000-batch0", days=10, bye=False, inbox=True)
    failed = make_job(base, "20200101-000000-dead00", days=10, bye=False)
    (base / "cache").mkdir()
    cached = base / "cache" / ("a" * 64 + ".wav")
    cached.write_bytes(b"x" * 1000)
    age(cached, 30)

    result, body = invoke(hosts, "--dry-run")
    assert result.exit_code == 0, result.stdout
    names = {t["name"] for t in body["result"]["removed"]}
    assert names == {old.name, failed.name}
    assert body["result"]["freed_bytes"] >= 2 * 50_000
    assert old.exists() and failed.exists() and cached.exists()  # dry run deletes nothing

    result, body = invoke(hosts)
    assert result.exit_code == 0, result.stdout
    assert body["result"]["counts"] == {"job": 2, "cache": 0, "payload": 0, "part": 0}
    assert body["result"]["freed_bytes"] >= 2 * 50_000
    assert not old.exists() and not failed.exists()
    assert recent.exists() and running.exists() and lingering.exists() and worker.exists()
    assert cached.exists()  # no --cache, no cache cleaning
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()

    result, body = invoke(hosts, "--older-than", "12h")  # the 1-day-old one goes now
    assert not recent.exists() and body["result"]["counts"]["job"] == 1


def test_clean_cache_keeps_new_files_newest_payload_and_venv(remote):
    base, hosts, _ = remote
    (base / "cache").mkdir()
    old = base / "cache" / ("a" * 64 + ".wav")
    new = base / "cache" / ("b" * 64 + ".flac")
    old.write_bytes(b"x" * 4096)
    new.write_bytes(b"y" * 4096)
    age(old, 30)
    payloads = []
    for name, days in (("p-oldest", 20), ("p-newer", 10)):
        folder = base / "payload" / name / "remote_payload"
        folder.mkdir(parents=True)
        (folder / "__main__.py").write_text("")
        age(folder.parent, days)
        payloads.append(folder.parent)
    venv = base / "venv" / "bin"
    venv.mkdir(parents=True)
    age(venv.parent, 40)

    result, body = invoke(hosts, "--cache")
    assert result.exit_code == 0, result.stdout
    assert body["result"]["counts"] == {"job": 0, "cache": 1, "payload": 1, "part": 0}
    assert body["result"]["freed_bytes"] >= 4096
    assert not old.exists() and new.exists()
    assert not payloads[0].exists() and payloads[1].exists()  # the newest payload stays
    assert venv.exists()


def test_clean_cache_keeps_a_file_a_running_job_uses(remote):
    base, hosts, sleeper = remote
    (base / "cache").mkdir()
    used = base / "cache" / ("c" * 64 + ".wav")
    used.write_bytes(b"z" * 100)
    age(used, 30)
    job = make_job(base, "20200101-000000-use000", days=0, bye=False, pid=sleeper.pid)
    (job / "manifest.json").write_text(json.dumps({"input": str(used)}))

    result, body = invoke(hosts, "--cache")
    assert result.exit_code == 0, result.stdout
    assert used.exists() and body["result"]["counts"]["cache"] == 0


@pytest.mark.parametrize("value", ["soon", "7w", "-1d", ""])
def test_bad_older_than_is_bad_config(remote, value):
    _, hosts, _ = remote
    result, body = invoke(hosts, "--older-than", value)
    assert result.exit_code == EXIT_CODES["bad_config"]
    assert body["error"]["kind"] == "bad_config" and "older-than" in body["error"]["message"]


def test_delete_rechecks_liveness_and_cache_use(remote, ssh_server):
    """A job that came alive (or a cache file a running job took up) between the listing
    and the delete round trip is kept."""
    from remote_sep.jobs.cleanup import Target, delete_script
    from remote_sep.profiles import get_profile
    from remote_sep.ssh.host import connect

    base, hosts, sleeper = remote
    job = make_job(base, "20200101-000000-race00", days=10, pid=sleeper.pid)
    gone = make_job(base, "20200101-000000-gone00", days=10)
    (base / "cache").mkdir()
    taken = base / "cache" / "taken.wav"
    taken.write_bytes(b"t")
    (job / "manifest.json").write_text(json.dumps({"input": "cache/taken.wav"}))
    profile = get_profile("gpu", hosts)
    targets = [Target("job", job.name, 0, 0), Target("job", gone.name, 0, 0),
               Target("cache", "taken.wav", 0, 0)]
    with connect(profile) as host:
        out = host.run(delete_script(profile, targets)).stdout
    out = out.decode() if isinstance(out, bytes) else out
    assert job.exists() and taken.exists() and not gone.exists()
    assert f"kept\tjob\t{job.name}" in out and "kept\tcache\ttaken.wav" in out


def test_clean_cache_removes_stale_upload_temps_never_one_in_flight(remote):
    """Interrupted uploads leave `.<name>.part-<token>` files the cache glob never saw."""
    base, hosts, _ = remote
    cache = base / "cache"
    cache.mkdir()
    name = "d" * 64 + ".wav"
    stale = cache / f".{name}.part-0badf00d"
    fresh = cache / f".{name}.part-1234abcd"
    held = cache / f".{name}.part-5678ef90"
    for path in (stale, fresh, held):
        path.write_bytes(b"p" * 3000)
    age(stale, 1 / 12)  # two hours
    age(held, 1 / 12)
    writer = subprocess.Popen(["sleep", "60"], stdout=open(held, "ab"))  # noqa: SIM115
    old = cache / name  # a whole cached file with its marker: both go
    old.write_bytes(b"w" * 100)
    markers = base / "cache-verified"
    markers.mkdir()
    (markers / name).write_text("marker\n")
    (markers / ("e" * 64 + ".wav")).write_text("orphan\n")
    age(old, 30)
    try:
        result, body = invoke(hosts)  # no --cache: temps are cache business
        assert stale.exists() and body["result"]["counts"]["part"] == 0
        result, body = invoke(hosts, "--cache")
    finally:
        writer.kill()
        writer.wait()
    assert result.exit_code == 0, result.stdout
    assert not stale.exists() and fresh.exists() and held.exists()
    assert body["result"]["counts"] == {"job": 0, "cache": 1, "payload": 0, "part": 1}
    assert body["result"]["kept"]["upload in progress"] == 1
    assert body["result"]["kept"]["in use at delete time"] == 1  # the one a process writes
    assert not old.exists() and list(markers.iterdir()) == []


def start_worker(tmp_path: Path, ignore_term: bool) -> subprocess.Popen:
    """A real process that looks like a payload worker (`remote_payload` in its command
    line, its own session like a detached job); it ignores TERM when asked to."""
    ready = tmp_path / f"ready-{ignore_term}"
    code = ("import signal, sys, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
            + "open(sys.argv[1], 'w').close()\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ready), "-m", "remote_payload",
                             "run"], start_new_session=True)
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    return proc


def test_clean_lists_idle_workers_and_stops_them_term_then_kill(remote, tmp_path):
    from remote_sep.jobs.cleanup import clean
    from remote_sep.profiles import get_profile
    from remote_sep.ssh.host import connect

    base, hosts, sleeper = remote
    stubborn, polite, fed = (start_worker(tmp_path, ignore_term=True),
                             start_worker(tmp_path, ignore_term=False),
                             start_worker(tmp_path, ignore_term=False))
    jobs = {}
    for name, proc, beat_days in (("stub00", stubborn, 1 / 144), ("poli00", polite, None),
                                  ("fed000", fed, 0), ("reuse0", sleeper, None)):
        job = make_job(base, f"20200101-000000-{name}", days=1, bye=False, pid=proc.pid,
                       inbox=True)
        if beat_days is not None:
            (job / "heartbeat").write_text("")
            age(job / "heartbeat", beat_days)  # ten minutes ago, or now
        jobs[name] = job.name
    try:
        result, body = invoke(hosts)
        assert result.exit_code == 0, result.stdout
        idle = {w["job_id"]: w for w in body["result"]["idle_workers"]}
        assert set(idle) == {jobs["stub00"], jobs["poli00"], jobs["reuse0"]}
        assert idle[jobs["poli00"]]["heartbeat_age_s"] is None
        assert 500 < idle[jobs["stub00"]]["heartbeat_age_s"] < 700
        assert not any(w["stopped"] for w in idle.values())
        result = CliRunner().invoke(app, ["clean", "gpu", "--hosts", str(hosts)])
        assert "idle (stop it with --workers)" in result.stdout
        result, body = invoke(hosts, "--workers", "--dry-run")
        assert not any(w["stopped"] for w in body["result"]["idle_workers"])
        assert all(p.poll() is None for p in (stubborn, polite, fed, sleeper))

        profile = get_profile("gpu", hosts)
        with connect(profile) as host:
            started = time.monotonic()
            report = clean(host, profile, older_than_s=7 * DAY, cache=False, dry_run=False,
                           workers=True, grace_s=1.0)
            took = time.monotonic() - started
        stopped = {w["job_id"]: w["stopped"] for w in report["idle_workers"]}
        assert stopped == {jobs["stub00"]: "KILL", jobs["poli00"]: "TERM",
                           jobs["reuse0"]: "gone"}  # a pid that is no payload is left alone
        assert took < 10  # bounded: one grace period, not one per worker
        assert stubborn.wait(5) == -9 and polite.wait(5) == -15
        assert fed.poll() is None and sleeper.poll() is None  # fed by a laptop: untouched
        assert all((base / "jobs" / name).exists() for name in jobs.values())  # kept
    finally:
        for proc in (stubborn, polite, fed):
            proc.kill()
            proc.wait()
