"""Job primitives against real hosts (LocalHost and a loopback sshd): prepare, payload sync,
long-poll with offsets and seq de-duplication, listing, local job records."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from remote_payload import protocol as pr
from remote_sep.errors import NotProvisioned
from remote_sep.hosts.local import LocalHost
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs import layout, payload_sync, records
from remote_sep.ssh.host import connect


def local_profile(base: Path, **extra) -> HostProfile:
    return HostProfile(name="local", path=str(base), python=sys.executable, **extra)


def ssh_profile(server, base: Path, **extra) -> HostProfile:
    return HostProfile(name="t", host=server.host, port=server.port, user=server.user,
                       key_files=[str(server.user_key)], known_hosts=[str(server.known_hosts)],
                       path=str(base), **extra)


def test_consume_keeps_partial_lines_and_drops_seen_seqs():
    cursor = layout.Cursor()
    first = b'{"v":1,"seq":0,"event":"hello"}\n{"v":1,"seq":1,"ev'
    assert [e["seq"] for e in layout.consume(cursor, first)] == [0]
    assert cursor.offset == first.index(b"\n") + 1  # the half line is read again next time
    rest = b'{"v":1,"seq":0,"event":"hello"}\nnot json\n{"v":1,"seq":1,"event":"chunk"}\n'
    events = layout.consume(cursor, rest)
    assert [e["event"] for e in events] == ["chunk"]  # seq 0 again is a duplicate
    assert cursor.last_seq == 1 and cursor.offset == len(first.split(b"\n")[0]) + 1 + len(rest)
    assert cursor.problems and cursor.problems[0].startswith("not JSON")


def test_prepare_reports_missing_interpreter_with_bootstrap_hint(tmp_path):
    host = LocalHost(local_profile(tmp_path))
    profile = HostProfile(name="gpu9", path=str(tmp_path / "base"))  # no python, no venv
    with pytest.raises(NotProvisioned) as err:
        layout.prepare(host, profile, payload_sync.payload_hash(), None)
    assert "remote-sep bootstrap gpu9" in str(err.value)
    missing = HostProfile(name="gpu9", path=str(tmp_path / "base"), python="/nope/python3")
    with pytest.raises(NotProvisioned, match="/nope/python3"):
        layout.prepare(host, missing, payload_sync.payload_hash(), None)


def unrunnable_pythons(folder: Path) -> dict[str, Path]:
    """Interpreters that exist but cannot start: no x bit, another CPU's binary, a #! line
    naming a missing interpreter."""
    import platform
    import shutil

    folder.mkdir()
    plain = folder / "python-noexec"
    plain.write_text("#!/bin/sh\necho hi\n")
    foreign = folder / "python-foreign-arch"
    shutil.copy(shutil.which("true"), foreign)
    with open(foreign, "r+b") as handle:  # ELF e_machine: aarch64 here, x86-64 elsewhere
        handle.seek(18)
        handle.write((0xB7 if platform.machine() == "x86_64" else 0x3E).to_bytes(2, "little"))
    broken = folder / "python-bad-shebang"
    broken.write_text("#!/no/such/interpreter\n")
    broken.chmod(0o755)
    return {"Permission denied": plain, "Exec format error": foreign,
            "#! line": broken}


@pytest.mark.parametrize("problem", ["Permission denied", "Exec format error", "#! line"])
def test_prepare_says_a_profile_python_that_exists_cannot_be_run(tmp_path, problem):
    python = unrunnable_pythons(tmp_path / "bin")[problem]
    host = LocalHost(local_profile(tmp_path))
    profile = HostProfile(name="gpu9", path=str(tmp_path / "base"), python=str(python))
    with pytest.raises(NotProvisioned) as err:
        layout.prepare(host, profile, payload_sync.payload_hash(), None)
    message = str(err.value)
    assert f"{python}' exists but cannot be run" in message and problem in message
    assert "not found on the host" not in message and "hosts.yaml" in err.value.hint


def test_prepare_finds_venv_payload_and_cache_in_one_round_trip(ssh_server, tmp_path):
    base = tmp_path / "remote base's $(x)"
    (base / "venv" / "bin").mkdir(parents=True)
    (base / "venv" / "bin" / "python").symlink_to(sys.executable)
    profile = ssh_profile(ssh_server, base)
    with connect(profile) as host:
        ready = layout.prepare(host, profile, payload_sync.payload_hash(), "abc.wav")
        assert host.round_trips == 1
        assert ready.base == str(base.resolve())
        assert ready.python == f"{base}/venv/bin/python"
        assert not ready.payload_present and ready.cached_sha256 is None
        payload_sync.sync_payload(host, ready.base)
        payload_sync.sync_payload(host, ready.base)  # second sync: no error, same folder
        sha = __import__("hashlib").sha256(b"hello").hexdigest()
        (base / "cache" / f"{sha}.wav").write_bytes(b"hello")
        again = layout.prepare(host, profile, payload_sync.payload_hash(), f"{sha}.wav", 5)
        (base / "cache" / "abc.wav").write_bytes(b"hello")  # not what its name says
        wrong = layout.prepare(host, profile, payload_sync.payload_hash(), "abc.wav", 5)
    assert again.payload_present
    assert again.cached_sha256 == sha and wrong.cached_sha256 is None
    folders = list((base / "payload").iterdir())
    assert [f.name for f in folders] == [payload_sync.payload_hash()]
    shipped = sorted(p.name for p in (folders[0] / "remote_payload").iterdir())
    assert shipped == sorted(p.name for p in payload_sync.payload_files())


def test_payload_hash_changes_with_content(tmp_path, monkeypatch):
    before = payload_sync.payload_hash()
    copy = tmp_path / "remote_payload"
    copy.mkdir()
    for path in payload_sync.payload_files():
        copy.joinpath(path.name).write_bytes(path.read_bytes())
    copy.joinpath("protocol.py").write_text("# changed\n")
    from remote_sep.provision import payload_code  # where payload_sync's code lives

    monkeypatch.setattr(payload_code, "PAYLOAD_DIR", copy)
    payload_sync.payload_hash.cache_clear()
    try:
        assert payload_sync.payload_hash() != before
    finally:
        payload_sync.payload_hash.cache_clear()


def test_poll_reads_from_offset_and_reports_liveness(tmp_path):
    paths = layout.JobPaths(str(tmp_path), "j1")
    Path(paths.dir).mkdir(parents=True)
    writer = pr.EventWriter(paths.events)
    writer.emit(pr.HELLO, device="cpu")
    sleeper = subprocess.Popen(["sleep", "30"])
    host = LocalHost(local_profile(tmp_path))
    cursor = layout.Cursor()
    try:
        poll = layout.poll_events(host, paths, sleeper.pid, cursor, wait_s=0.5)
        assert poll.alive and [e["event"] for e in poll.events] == ["hello"]
        writer.emit(pr.CHUNK, item="i0", desc=0, done=1, total=2)
        poll = layout.poll_events(host, paths, sleeper.pid, cursor, wait_s=0.5)
        assert [e["event"] for e in poll.events] == ["chunk"]
        poll = layout.poll_events(host, paths, sleeper.pid, cursor, wait_s=0.3)
        assert poll.alive and poll.events == []
    finally:
        sleeper.kill()
        sleeper.wait()
    writer.emit(pr.BYE, ok=True)
    poll = layout.poll_events(host, paths, sleeper.pid, cursor, wait_s=0.3)
    assert not poll.alive and [e["event"] for e in poll.events] == ["bye"]


def test_start_job_runs_detached_and_list_reports_states(ssh_server, tmp_path):
    base = tmp_path / "base"
    profile = ssh_profile(ssh_server, base, python=sys.executable,
                          env={"PYTHONPATH": "/nonexistent"})
    with connect(profile) as host:
        ready = layout.prepare(host, profile, payload_sync.payload_hash(), None)
        pdir = payload_sync.sync_payload(host, ready.base)
        paths = layout.JobPaths(ready.base, layout.new_job_id())
        manifest = json.dumps({"v": 1, "job_id": paths.job_id, "items": []})
        pid = layout.start_job(host, profile, paths, manifest, ready.python, pdir)
        assert pid > 0
        assert json.loads(Path(paths.manifest).read_text())["job_id"] == paths.job_id
        cursor = layout.Cursor()
        deadline = time.monotonic() + 30
        events: list[dict] = []
        while not any(e["event"] == "bye" for e in events) and time.monotonic() < deadline:
            events += layout.poll_events(host, paths, pid, cursor, wait_s=1).events
        # A bare job dir that never started counts as failed; listing is one round trip.
        dead = Path(ready.base, "jobs", "20200101-000000-dead00")
        dead.mkdir()
        (dead / "manifest.json").write_text("{}")
        before = host.round_trips
        listed = {j.job_id: j for j in layout.list_jobs(host, profile)}
        assert host.round_trips == before + 1
    assert events[0]["event"] == "hello" and events[-1]["event"] == "bye"
    assert listed[paths.job_id].state == "done"
    assert listed["20200101-000000-dead00"].state == "failed"


def test_job_record_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))
    record = records.JobRecord(host="gpu 1", job_id="j", base="/b", ext="wav",
                                   prefixes={"i0/0": "/x/song_vocals"})
    records.save(record)
    loaded = records.load("gpu 1", "j")
    assert loaded == record
    assert loaded.local_path("i0/0", "target") == Path("/x/song_vocals_target.wav")
    assert records.load("gpu 1", "other") is None
