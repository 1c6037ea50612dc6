"""Local outputs that cannot be written (read-only folder, a folder to make in a read-only
place, a name too long, a disk that fills mid-pull), through the CLI against a real
loopback sshd and real mounts: their own exit code and kind, checked before anything is
uploaded when it can be, never a partial file under a final name, and an `attach` into a
writable place afterwards delivers the outputs. Also `--out DIR/`, a relative `--out`
picked up by `attach` from another folder, and a folder given as the audio."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TESTS, profile_for, write_hosts_file
from typer.testing import CliRunner

from faults import mounts
from remote_payload.protocol import EXIT_CODES
from remote_sep.cli.main import app

pytestmark = pytest.mark.e2e
STANDINS = str(TESTS / "standins")


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))


def make_audio(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """Stereo PCM_16: each output of the stand-in is as big (128 KB for 2 s)."""
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.4 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
    sf.write(path, np.stack([mono, 0.8 * mono], axis=1), rate)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def invoke(*args):
    result = CliRunner().invoke(app, [*map(str, args), "--json"])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result, (json.loads(lines[-1]) if lines else None)


def sshd_hosts(tmp_path: Path, server) -> Path:
    entry = profile_for(server, tmp_path / "remote", env={"PYTHONPATH": STANDINS})
    return write_hosts_file(tmp_path / "hosts.yaml", {"gpu": entry})


def local_hosts(tmp_path: Path, **env: str) -> Path:
    return write_hosts_file(tmp_path / "hosts.yaml", {"local": {
        "path": str(tmp_path / "remote"), "python": sys.executable,
        "env": {"PYTHONPATH": STANDINS, **env}}})


def remote_outputs(tmp_path: Path, job_id: str) -> dict[str, str]:
    out = tmp_path / "remote" / "jobs" / job_id / "out"
    return {p.name: sha256(p) for p in out.iterdir() if not p.name.startswith(".")}


def test_unwritable_out_fails_before_anything_is_uploaded(ssh_server, tmp_path):
    hosts = sshd_hosts(tmp_path, ssh_server)
    audio = make_audio(tmp_path / "a.wav", seconds=0.2)
    too_long = tmp_path / ("n" * 245)  # + "_residual.wav" passes NAME_MAX (255)
    with mounts.read_only(tmp_path / "ro") as ro:
        cases = [(ro / "x", "Read-only file system"),  # the folder exists, read-only
                 (ro / "new" / "x", "Read-only file system"),  # a folder to make there
                 (too_long, "File name too long")]
        for out, reason in cases:
            result, body = invoke("separate", audio, "--desc", "x", "--out", out,
                                  "--host", "gpu", "--hosts", hosts)
            assert body is not None, result.output  # the --json envelope, no traceback
            assert (result.exit_code, body["error"]["kind"]) == (
                EXIT_CODES["output_unwritable"], "output_unwritable"), result.output
            assert reason in body["error"]["message"] and "--out" in body["error"]["hint"]
        assert sorted(os.listdir(ro)) == []  # no probe file left behind
    assert not (tmp_path / "remote" / "cache").exists()  # nothing was uploaded
    assert not (tmp_path / "remote" / "jobs").exists()  # nothing ran
    assert not list(tmp_path.glob(".n*"))


def test_local_disk_fills_mid_pull_then_attach_elsewhere_delivers(ssh_server, tmp_path):
    hosts = sshd_hosts(tmp_path, ssh_server)
    audio = make_audio(tmp_path / "a.wav")  # two outputs of 128 KB each
    with mounts.small_disk(tmp_path / "small", "200k") as small:  # room for one
        result, body = invoke("separate", audio, "--desc", "whistle", "--out", small / "a",
                              "--host", "gpu", "--hosts", hosts)
        assert (result.exit_code, body["error"]["kind"]) == (
            EXIT_CODES["disk_full"], "disk_full"), result.output
        message, hint = body["error"]["message"], body["error"]["hint"]
        assert "pulled: a_target.wav" in message and "not pulled: a_residual.wav" in message
        job_id = hint.split("remote-sep attach ")[1].split()[0]
        assert f"remote-sep attach {job_id} --host gpu" in hint
        remote = remote_outputs(tmp_path, job_id)
        # What arrived is whole; nothing partial under a final name, no temp left.
        assert sorted(os.listdir(small)) == ["a_target.wav"]
        assert sha256(small / "a_target.wav") == remote["d0_target.wav"]
        # Attach into a writable folder (trailing slash: same names, inside it).
        again, body2 = invoke("attach", job_id, "--host", "gpu", "--out",
                              f"{tmp_path / 'roomy'}/", "--hosts", hosts)
    assert again.exit_code == 0, again.output
    (entry,) = body2["result"]["outputs"]
    for kind in ("target", "residual"):
        path = tmp_path / "roomy" / f"a_{kind}.wav"
        assert Path(entry[kind]) == path
        assert sha256(path) == entry[f"{kind}_sha256"] == remote[f"d0_{kind}.wav"]
        assert sf.info(str(path)).frames == sf.info(str(audio)).frames


def test_out_naming_a_folder_puts_the_outputs_inside(tmp_path):
    from remote_sep.jobs.separate import local_prefixes

    audio = tmp_path / "in" / "song.wav"
    (tmp_path / "existing").mkdir()
    assert local_prefixes(audio, ["Vocals!"], f"{tmp_path / 'new'}/") == [
        tmp_path / "new" / "song_vocals"]
    assert local_prefixes(audio, ["a", "b"], str(tmp_path / "existing")) == [
        tmp_path / "existing" / "song_a", tmp_path / "existing" / "song_b"]
    assert local_prefixes(audio, ["a"], str(tmp_path / "p")) == [tmp_path / "p"]
    assert local_prefixes(Path("in/song.wav"), ["a"], None) == [
        Path.cwd() / "in" / "song_a"]  # absolute: the job record names the same files


def test_attach_after_a_relative_out_writes_where_separate_would_have(tmp_path, monkeypatch):
    from remote_sep.errors import Interrupted
    from remote_sep.jobs.attach import run_attach
    from remote_sep.jobs.separate import SeparateOptions, run_separate
    from remote_sep.profiles import get_profile

    profile = get_profile("local", local_hosts(tmp_path, SAM_STANDIN_SECONDS_PER_SECOND="0.5"))
    (tmp_path / "first").mkdir()
    (tmp_path / "elsewhere").mkdir()
    audio = make_audio(tmp_path / "a.wav", seconds=1.5)

    def ctrl_c_on_first_chunk(kind: str, data: dict) -> None:
        if kind == "event" and data.get("event") == "chunk":
            raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path / "first")
    with pytest.raises(Interrupted) as err:
        run_separate(audio, profile, SeparateOptions(["hum"], out="rel/take",
                                                     settings={"chunk_seconds": 1}),
                     ctrl_c_on_first_chunk)
    job_id = err.value.hint.split()[2]
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = run_attach(job_id, profile)
    target = tmp_path / "first" / "rel" / "take_target.wav"
    assert Path(result["outputs"][0]["target"]) == target
    assert sha256(target) == remote_outputs(tmp_path, job_id)["d0_target.wav"]
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_folder_as_the_audio_says_so(tmp_path):
    (tmp_path / "takes").mkdir()
    result, body = invoke("separate", tmp_path / "takes", "--desc", "x", "--host", "local",
                          "--hosts", local_hosts(tmp_path))
    assert (result.exit_code, body["error"]["kind"]) == (EXIT_CODES["bad_audio"], "bad_audio")
    assert "is a directory" in body["error"]["message"]


# --- batch ------------------------------------------------------------------------------
def batch_argv(tmp_path: Path, hosts: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(tmp_path / "in"), "-d", "vocals", "--hosts", "gpu",
            "--hosts-file", str(hosts), "-o", str(out), "--json", *extra]


def test_batch_refuses_an_unwritable_out_dir_before_anything_runs(ssh_server, tmp_path):
    from batch_helpers import make_songs

    make_songs(tmp_path / "in", 2, seconds=0.2)
    hosts = sshd_hosts(tmp_path, ssh_server)
    long_name = "{stem}_" + "x" * 240 + "_{role}.{ext}"
    with mounts.read_only(tmp_path / "ro") as ro:
        for out, extra, reason in [(ro, (), "Read-only file system"),
                                   (ro / "sub", (), "Read-only file system")]:
            result = CliRunner().invoke(app, batch_argv(tmp_path, hosts, out, *extra))
            assert result.exit_code == EXIT_CODES["output_unwritable"], result.output
            body = json.loads(result.stdout)
            assert body["error"]["kind"] == "output_unwritable"
            assert reason in body["error"]["message"] and "--out-dir" in body["error"]["hint"]
        assert os.listdir(ro) == []
    # A name no folder can hold is refused even earlier, by the plan (bad_config).
    result = CliRunner().invoke(app, batch_argv(tmp_path, hosts, tmp_path / "out",
                                                "--name-template", long_name))
    body = json.loads(result.stdout)
    assert result.exit_code == EXIT_CODES["bad_config"] and "at most 240" in body["error"][
        "message"]
    assert not (tmp_path / "remote" / "jobs").exists()  # no worker was started


@pytest.mark.timeout(120)  # the batch must end, not reconnect forever
def test_batch_stops_when_the_local_disk_fills_and_a_rerun_resumes(ssh_server, tmp_path):
    from batch_helpers import check_outputs, make_songs

    make_songs(tmp_path / "in", 6)  # 0.5 s mono: 16 KB per output, 12 outputs
    hosts = sshd_hosts(tmp_path, ssh_server)
    with mounts.small_disk(tmp_path / "out", "100k") as out:  # room for about 2 units
        argv = batch_argv(tmp_path, hosts, out)
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == EXIT_CODES["disk_full"], result.output
        body = json.loads(result.stdout)
        error = body["error"]
        assert error["kind"] == "disk_full" and "the batch stopped" in error["message"]
        assert "run the same command again" in error["hint"] and "remote-sep" in error["hint"]
        items = body["result"]["items"]
        delivered = [i for i in items if i["status"] == "done"]
        assert 1 <= len(delivered) < 6
        assert {i["status"] for i in items} <= {"done", "queued", "running"}
        # Every file under a final name is a whole output the worker made; no temp left.
        made = {o["sha256"] for job in (tmp_path / "remote" / "jobs").iterdir()
                for line in (job / "events.jsonl").read_text().splitlines()
                if (event := json.loads(line))["event"] == "item_done"
                for o in event["outputs"].values()}
        present = {p.name for p in out.iterdir()} - {".remote-sep-batch.json"}
        assert present >= {Path(o["path"]).name for i in delivered
                           for o in i["outputs"].values()}
        for name in present:
            assert sha256(out / name) in made and sf.info(str(out / name)).frames == 8000
        # Room again: the same command resumes and delivers the rest, all verified.
        mounts.grow(out, "4m")
        again = CliRunner().invoke(app, argv)
        assert again.exit_code == 0, again.output
        items = json.loads(again.stdout)["result"]["items"]
        # (the unit whose state save found the disk full is pulled again, not rerun)
        assert sum(i["status"] == "skipped" for i in items) >= len(delivered) - 1
        check_outputs(out, items, 6)
