"""The host's disk fills up: during an upload, with a cut-short file already in the cache,
while the job's files are written, and while the payload writes its outputs. The profile's
base path is a real tmpfs of a chosen size (mounts.small_disk), filled with a real file
(mounts.fill); the hosts are a real loopback sshd and LocalHost, the model the stand-in."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf
from batch_helpers import make_songs
from conftest import TESTS, profile_for, write_hosts_file
from typer.testing import CliRunner

from faults.mounts import fill, small_disk
from remote_payload.protocol import EXIT_CODES
from remote_sep.cli.main import app

pytestmark = pytest.mark.e2e
STANDINS = str(TESTS / "standins")


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(params=["ssh", "local"])
def host_kind(request):
    return request.param


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def invoke(*args: object):
    result = CliRunner().invoke(app, [*map(str, args), "--json"])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result, (json.loads(lines[-1]) if lines else None)


def hosts_file(tmp_path: Path, kind: str, base: Path, request, **env: str) -> tuple[Path, str]:
    """hosts.yaml with one host whose base path is BASE: `gpu` (sshd) or the built-in local."""
    env = {"PYTHONPATH": STANDINS, **env}
    if kind == "local":
        entry = {"path": str(base), "python": sys.executable, "env": env}
        return write_hosts_file(tmp_path / "hosts.yaml", {"local": entry}), "local"
    server = request.getfixturevalue("ssh_server")
    entry = profile_for(server, base, env=env)
    return write_hosts_file(tmp_path / "hosts.yaml", {"gpu": entry}), "gpu"


def song(tmp_path: Path, seconds: float) -> Path:
    (path,) = make_songs(tmp_path / "in", 1, seconds=seconds)  # 16 kHz mono PCM_16: 32 KB/s
    return path


def assert_disk_full(result, body, host: str, what: str) -> None:
    assert result.exit_code == EXIT_CODES["disk_full"] == 11, result.output
    error = body["error"]
    assert error["kind"] == "disk_full"
    assert f"no space left on {host}" in error["message"] and what in error["message"]
    assert f"remote-sep clean {host}" in error["hint"]


def assert_stems_match(body, audio: Path, base: Path) -> None:
    """Both stems as long as the input, and exactly the bytes the host wrote."""
    entry = body["result"]["outputs"][0]
    out = base / "jobs" / body["result"]["job_id"] / "out"
    for kind in ("target", "residual"):
        local = Path(entry[kind])
        assert sf.info(str(local)).frames == sf.info(str(audio)).frames
        assert sha256(local) == entry[f"{kind}_sha256"] == sha256(out / f"d0_{kind}.wav")


def test_upload_that_does_not_fit_is_disk_full_and_a_rerun_delivers(tmp_path, host_kind,
                                                                   request):
    audio = song(tmp_path, 10)  # 320 KB
    with small_disk(tmp_path / "remote", "4m") as base:
        hosts, name = hosts_file(tmp_path, host_kind, base, request)
        # room for the payload code (its files in whole tmpfs pages, plus slack), not for the
        # audio: sized from the payload itself, which grows with the features
        room = payload_pages() + (48 << 10)
        assert audio.stat().st_size > room - payload_pages()  # the audio cannot fit
        fill(base, leave_bytes=room)
        result, body = invoke("separate", audio, "--desc", "bass", "--host", name,
                              "--hosts", hosts)
        assert_disk_full(result, body, name, f"the upload of {audio.name}")
        cache = base / "cache"
        assert not (cache / f"{sha256(audio)}.wav").exists()  # nothing under the final name
        assert [p.name for p in cache.iterdir()] == []  # and no temp file left either
        assert not list(audio.parent.glob("*_bass_*"))

        (base / ".filler").unlink()  # space freed: the same command now delivers
        result, body = invoke("separate", audio, "--desc", "bass", "--host", name,
                              "--hosts", hosts)
        assert result.exit_code == 0, result.output
        assert sha256(cache / f"{sha256(audio)}.wav") == sha256(audio)
        assert_stems_match(body, audio, base)


def payload_pages() -> int:
    """Bytes the payload code takes on a tmpfs: each file in whole 4 KiB pages."""
    root = Path(__file__).resolve().parents[2] / "remote_payload"
    return sum(-(-f.stat().st_size // 4096) * 4096 for f in root.rglob("*.py"))


def plant(base: Path, audio: Path, data: bytes) -> Path:
    """A file under AUDIO's cache name holding DATA (an older remote-sep's short upload)."""
    cached = base / "cache" / f"{sha256(audio)}.wav"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data)
    return cached


@pytest.mark.parametrize(("command", "kind"), [("batch", "ssh"), ("separate", "local")])
def test_a_cut_short_cache_file_is_uploaded_again_not_separated(tmp_path, command, kind,
                                                                request):
    audio = song(tmp_path, 2)
    base = tmp_path / "remote"
    hosts, name = hosts_file(tmp_path, kind, base, request)
    whole = audio.read_bytes()
    cached = plant(base, audio, whole[: len(whole) // 2])
    if command == "batch":
        result = CliRunner().invoke(app, ["batch", str(audio), "--desc", "bass", "--hosts",
                                          name, "--hosts-file", str(hosts), "--out-dir",
                                          str(tmp_path / "out"), "--json"])
        assert result.exit_code == 0, result.output
        (item,) = json.loads(result.stdout)["result"]["items"]
        target = Path(item["outputs"]["target"]["path"])
        assert sf.info(str(target)).frames == sf.info(str(audio)).frames
    else:
        result, body = invoke("separate", audio, "--desc", "bass", "--host", name,
                              "--hosts", hosts)
        assert result.exit_code == 0, result.output
        assert_stems_match(body, audio, base)
    assert cached.read_bytes() == whole  # uploaded again, over the short one


def test_a_verified_cache_file_cut_short_later_is_no_longer_a_hit(tmp_path):
    """The marker that spares hashing on every use never vouches for a changed file."""
    from remote_sep.hosts.local import LocalHost
    from remote_sep.hosts.profile import HostProfile
    from remote_sep.jobs import layout

    audio = song(tmp_path, 1)
    whole = audio.read_bytes()
    cached = plant(tmp_path / "remote", audio, whole)
    profile = HostProfile(name="local", path=str(tmp_path / "remote"), python=sys.executable)
    host = LocalHost(profile)

    def hit() -> bool:
        ready = layout.prepare(host, profile, "0", cached.name, len(whole))
        return ready.cached_sha256 == sha256(audio)

    assert hit() and hit()  # the first hashes it and leaves the marker, the second trusts it
    assert (tmp_path / "remote" / "cache-verified" / cached.name).exists()
    with open(cached, "r+b") as handle:  # cut short in place: same inode
        handle.truncate(len(whole) - 100)
    assert not hit()
    cached.write_bytes(whole[:-1] + bytes([whole[-1] ^ 1]))  # same size, other content
    assert not hit()


def test_no_room_for_the_job_files_is_disk_full(tmp_path, host_kind, request):
    from remote_sep.hosts.local import LocalHost
    from remote_sep.jobs.payload_sync import sync_payload

    audio = song(tmp_path, 1)
    with small_disk(tmp_path / "remote", "2m") as base:
        hosts, name = hosts_file(tmp_path, host_kind, base, request)
        plant(base, audio, audio.read_bytes())  # the audio and the payload are there
        sync_payload(LocalHost(), str(base))
        fill(base)
        result, body = invoke("separate", audio, "--desc", "bass", "--host", name,
                              "--hosts", hosts)
        assert_disk_full(result, body, name, "the files of job")
        job_id = body["error"]["message"].split("the files of job ")[1].split()[0]
        assert not (base / "jobs" / job_id).exists()  # nothing started, nothing left


def test_batch_items_that_do_not_fit_are_disk_full(tmp_path, request):
    audio = song(tmp_path, 20)
    with small_disk(tmp_path / "remote", "4m") as base:
        hosts, name = hosts_file(tmp_path, "ssh", base, request)
        fill(base, leave_bytes=300 << 10)  # the worker starts; its bundle does not fit
        result = CliRunner().invoke(app, ["batch", str(audio), "--desc", "bass", "--hosts",
                                          name, "--hosts-file", str(hosts), "--out-dir",
                                          str(tmp_path / "out"), "--json"])
        body = json.loads(result.stdout)
        assert result.exit_code == 11, result.output
        assert body["error"]["kind"] == "disk_full"
        (item,) = body["result"]["items"]
        assert "no space left on gpu" in item["message"] and "item file" in item["message"]
        assert "remote-sep clean gpu" in body["error"]["hint"]
        assert not (base / "cache" / f"{sha256(audio)}.wav").exists()
        (job,) = (base / "jobs").iterdir()
        assert list((job / "inbox").glob("*.json")) == []  # no item for a missing input
        wait_gone(int((job / "pid").read_text()))  # the batch closed the worker's inbox


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_outputs_that_do_not_fit_are_disk_full(tmp_path, host_kind, request):
    audio = song(tmp_path, 1)
    hold = tmp_path / "hold"  # the stand-in waits "on the GPU" while this file exists
    hold.write_text("")
    with small_disk(tmp_path / "remote", "2m") as base:
        hosts, name = hosts_file(tmp_path, host_kind, base, request,
                                 SAM_STANDIN_HOLD=str(hold))
        box: dict = {}

        def run() -> None:
            box["result"], box["body"] = invoke("separate", audio, "--desc", "bass",
                                                "--host", name, "--hosts", hosts)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while '"item_start"' not in "".join(
                p.read_text() for p in (base / "jobs").glob("*/events.jsonl")):
            assert thread.is_alive() and time.monotonic() < deadline, box
            time.sleep(0.05)
        fill(base)  # the outputs have no room now; events still fit in their first block
        hold.unlink()
        thread.join(60)
        assert_disk_full(box["result"], box["body"], name, "disk full while writing item i0")
        (job,) = (base / "jobs").iterdir()
        assert [p.name for p in (job / "out").iterdir()] == []  # no partial output kept
        assert not list(audio.parent.glob("*_bass_*"))


def test_host_writes_that_do_not_fit_are_disk_full(tmp_path, host_kind, request):
    from remote_sep.errors import DiskFull
    from remote_sep.profiles import get_profile
    from remote_sep.ssh.host import connect

    with small_disk(tmp_path / "remote", "1m") as base:
        hosts, name = hosts_file(tmp_path, host_kind, base, request)
        big = tmp_path / "big.bin"
        big.write_bytes(b"\1" * (3 << 20))
        with connect(get_profile(name, hosts)) as host:
            with pytest.raises(DiskFull, match=f"no space left on {name} for the upload"):
                host.put_file(big, str(base / "big.bin"))
            fill(base)
            with pytest.raises(DiskFull, match=f"no space left on {name} for writing"):
                host.write_bytes(str(base / "stamp.json"), b"{}" * 3000)
        assert sorted(p.name for p in base.iterdir()) == [".filler"]
