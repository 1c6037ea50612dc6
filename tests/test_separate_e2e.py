"""`remote-sep separate / jobs / attach` end to end through the CLI against a real loopback
sshd, the real payload and the stand-in sam_audio (tests/standins) — the only double."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TESTS, profile_for, write_hosts_file
from typer.testing import CliRunner

from remote_payload.protocol import EXIT_CODES
from remote_sep.cli.main import app

pytestmark = pytest.mark.e2e
STANDINS = str(TESTS / "standins")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_audio(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """A real mix: a 110 Hz hum plus a 3 kHz whistle, stereo."""
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.4 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
    sf.write(path, np.stack([mono, 0.8 * mono], axis=1), rate)
    return path


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def hosts_yaml(tmp_path: Path, server, env: dict | None = None, **extra) -> Path:
    entry = profile_for(server, tmp_path / "remote", env={"PYTHONPATH": STANDINS, **(env or {})},
                        **extra)
    return write_hosts_file(tmp_path / "hosts.yaml", {"gpu": entry})


def invoke(*args: str):
    result = CliRunner().invoke(app, [*map(str, args), "--json"])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    body = json.loads(lines[-1]) if lines else None
    return result, body


def remote_outputs(tmp_path: Path, job_id: str) -> dict[str, str]:
    out = tmp_path / "remote" / "jobs" / job_id / "out"
    return {p.name: sha256(p) for p in out.iterdir() if not p.name.startswith(".")}


def test_separate_pulls_verified_outputs_and_reuses_the_upload(ssh_server, tmp_path):
    hosts = hosts_yaml(tmp_path, ssh_server)
    audio = make_audio(tmp_path / "mix.wav")
    result, body = invoke("separate", audio, "--desc", "bass hum", "--desc", "whistle",
                          "--host", "gpu", "--hosts", hosts)
    assert result.exit_code == 0, result.output
    outputs = body["result"]["outputs"]
    assert [o["description"] for o in outputs] == ["bass hum", "whistle"]
    remote = remote_outputs(tmp_path, body["result"]["job_id"])
    for k, entry in enumerate(outputs):
        for kind in ("target", "residual"):
            local = Path(entry[kind])
            assert local.name == f"mix_{['bass-hum', 'whistle'][k]}_{kind}.wav"
            assert sha256(local) == entry[f"{kind}_sha256"] == remote[f"d{k}_{kind}.wav"]
    # Same audio again (other name): the cached upload is reused, nothing re-sent.
    copy = tmp_path / "copy.wav"
    copy.write_bytes(audio.read_bytes())
    (cached,) = (tmp_path / "remote" / "cache").iterdir()
    stamp = (cached.stat().st_ino, cached.stat().st_mtime_ns)
    again, body2 = invoke("separate", copy, "--desc", "whistle", "--host", "gpu",
                          "--hosts", hosts)
    assert again.exit_code == 0, again.output
    assert list((tmp_path / "remote" / "cache").iterdir()) == [cached]
    assert (cached.stat().st_ino, cached.stat().st_mtime_ns) == stamp  # not sent again
    listed, body3 = invoke("jobs", "gpu", "--hosts", hosts)
    assert {j["job_id"]: j["state"] for j in body3["result"]["jobs"]} == {
        body["result"]["job_id"]: "done", body2["result"]["job_id"]: "done"}


@pytest.mark.parametrize("name", ["my song's \"mix\" $(id).wav", "chanson d’été 音楽.wav"])
def test_awkward_file_names_round_trip(ssh_server, tmp_path, name):
    hosts = hosts_yaml(tmp_path, ssh_server)
    folder = tmp_path / "in $(touch pwned) dir"
    folder.mkdir()
    audio = make_audio(folder / name)
    result, body = invoke("separate", audio, "--desc", "whistle", "--host", "gpu",
                          "--hosts", hosts, "--format", "flac")
    assert result.exit_code == 0, result.output
    target = Path(body["result"]["outputs"][0]["target"])
    assert target.parent == folder and target.name == f"{audio.stem}_whistle_target.flac"
    assert sf.info(str(target)).frames == sf.info(str(audio)).frames
    assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_local_checks_fail_before_any_connection(tmp_path):
    # The host's port is closed: reaching the network would exit 'unreachable' instead.
    from sshd import free_port

    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": {
        "host": "127.0.0.1", "port": free_port(), "known_hosts": str(tmp_path / "kh"),
        "python": sys.executable}})
    audio = make_audio(tmp_path / "a.wav")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are not samples")
    cases = [
        ((tmp_path / "missing.wav", "--desc", "x"), "bad_audio"),
        ((not_audio, "--desc", "x"), "bad_audio"),
        ((audio, "--desc", "  "), "bad_description"),
        ((audio, "--desc", "x", "--dtype", "int3"), "bad_config"),
    ]
    Path(tmp_path / "a_x_target.wav").write_bytes(b"keep me")
    cases.append(((audio, "--desc", "x"), "output_exists"))
    for args, kind in cases:
        result, body = invoke("separate", *args, "--host", "gpu", "--hosts", hosts)
        assert (result.exit_code, body["error"]["kind"]) == (EXIT_CODES[kind], kind), args
    assert (tmp_path / "a_x_target.wav").read_bytes() == b"keep me"
    # With --force the checks pass and the closed port is what fails.
    result, body = invoke("separate", audio, "--desc", "x", "--force", "--host", "gpu",
                          "--hosts", hosts)
    assert result.exit_code == EXIT_CODES["unreachable"], result.output


def test_input_mistakes_are_reported_before_the_host_profile(tmp_path):
    # No hosts.yaml at all: a missing file must still read as a missing file, and the
    # missing hosts file as itself (bad_config naming it), not as an unknown host.
    hosts = tmp_path / "no-such-hosts.yaml"
    result, body = invoke("separate", tmp_path / "missing.wav", "--desc", "x",
                          "--host", "gpu9", "--hosts", hosts)
    assert (result.exit_code, body["error"]["kind"]) == (EXIT_CODES["bad_audio"], "bad_audio")
    audio = make_audio(tmp_path / "a.wav")
    result, body = invoke("separate", audio, "--desc", "x", "--host", "gpu9", "--hosts", hosts)
    assert (result.exit_code, body["error"]["kind"]) == (EXIT_CODES["bad_config"], "bad_config")
    assert f"hosts file not found: {hosts}" in body["error"]["message"]
    result, body = invoke("batch", audio, "--desc", "x", "--hosts", "gpu9",
                          "--hosts-file", hosts, "-o", tmp_path / "out")
    assert body["error"]["kind"] == "bad_config" and str(hosts) in body["error"]["message"]


def test_connection_failures_have_their_own_exit_codes(ssh_server, tmp_path):
    audio = make_audio(tmp_path / "a.wav")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    stranger = hosts_yaml(tmp_path, ssh_server, known_hosts=str(empty))
    result, body = invoke("separate", audio, "--desc", "x", "--host", "gpu", "--hosts", stranger)
    assert result.exit_code == EXIT_CODES["host_key"]
    assert "remote-sep hosts trust gpu" in (body["error"]["hint"] or body["error"]["message"])

    from sshd import keygen

    wrong = keygen(tmp_path / "wrong_key")
    badkey = hosts_yaml(tmp_path, ssh_server, key=str(wrong))
    result, _ = invoke("separate", audio, "--desc", "x", "--host", "gpu", "--hosts", badkey)
    assert result.exit_code == EXIT_CODES["auth"]


def test_gated_weights_exit_with_their_own_code(ssh_server, tmp_path):
    hosts = hosts_yaml(tmp_path, ssh_server, env={"SAM_STANDIN_FAIL": "gated"})
    result, body = invoke("separate", make_audio(tmp_path / "a.wav"), "--desc", "x",
                          "--host", "gpu", "--hosts", hosts)
    assert result.exit_code == EXIT_CODES["gated"], result.output
    assert body["error"]["kind"] == "gated" and "Hugging Face" in body["error"]["hint"]
    assert not list(tmp_path.glob("a_x_*"))


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def job_events(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "remote" / "jobs").glob("*/events.jsonl"))


def run_in_thread(*args: str) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target() -> None:
        box["result"], box["body"] = invoke(*args)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def test_dropped_link_reconnects_and_finishes(ssh_server, tmp_path):
    hosts = hosts_yaml(tmp_path, ssh_server, env={"SAM_STANDIN_SECONDS_PER_SECOND": "1.5"})
    audio = make_audio(tmp_path / "a.wav", seconds=3)
    thread, box = run_in_thread("separate", audio, "--desc", "whistle", "--chunk-seconds", "1",
                                "--host", "gpu", "--hosts", hosts)
    wait_for(lambda: '"event":"chunk"' in job_events(tmp_path) or not thread.is_alive())
    assert ssh_server.drop_links() >= 1
    thread.join(120)
    result, body = box["result"], box["body"]
    assert result.exit_code == 0, result.output
    assert body["result"]["reconnects"] >= 1
    remote = remote_outputs(tmp_path, body["result"]["job_id"])
    entry = body["result"]["outputs"][0]
    assert sha256(Path(entry["target"])) == remote["d0_target.wav"]
    assert sha256(Path(entry["residual"])) == remote["d0_residual.wav"]


def test_job_outlives_the_link_and_attach_pulls_outputs(ssh_server, tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_RECONNECT_BUDGET", "0")  # give up at once: attach later
    hosts = hosts_yaml(tmp_path, ssh_server, env={"SAM_STANDIN_SECONDS_PER_SECOND": "1.5"})
    audio = make_audio(tmp_path / "a.wav", seconds=3)
    thread, box = run_in_thread("separate", audio, "--desc", "whistle", "--chunk-seconds", "1",
                                "--host", "gpu", "--hosts", hosts)
    wait_for(lambda: '"event":"chunk"' in job_events(tmp_path) or not thread.is_alive())
    ssh_server.drop_links()
    thread.join(120)
    assert box["result"].exit_code == EXIT_CODES["unreachable"], box["result"].output
    assert "attach" in box["body"]["error"]["hint"]
    assert not (tmp_path / "a_whistle_target.wav").exists()
    monkeypatch.setenv("REMOTE_SEP_RECONNECT_BUDGET", "30")
    _, listing = invoke("jobs", "gpu", "--hosts", hosts)
    (job,) = listing["result"]["jobs"]
    result, body = invoke("attach", job["job_id"], "--host", "gpu", "--hosts", hosts)
    assert result.exit_code == 0, result.output
    remote = remote_outputs(tmp_path, job["job_id"])
    assert sha256(tmp_path / "a_whistle_target.wav") == remote["d0_target.wav"]
    assert sha256(tmp_path / "a_whistle_residual.wav") == remote["d0_residual.wav"]
    # Attaching again pulls nothing new and still reports the same files.
    again, body2 = invoke("attach", job["job_id"], "--host", "gpu", "--hosts", hosts)
    assert again.exit_code == 0 and body2["result"]["outputs"] == body["result"]["outputs"]


def test_local_host_end_to_end(tmp_path):
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"local": {
        "path": str(tmp_path / "remote"), "python": sys.executable,
        "env": {"PYTHONPATH": STANDINS}}})
    audio = make_audio(tmp_path / "a.wav")
    result, body = invoke("separate", audio, "--desc", "bass", "--out", tmp_path / "o" / "bass",
                          "--host", "local", "--hosts", hosts)
    assert result.exit_code == 0, result.output
    remote = remote_outputs(tmp_path, body["result"]["job_id"])
    assert sha256(tmp_path / "o" / "bass_target.wav") == remote["d0_target.wav"]
    assert body["result"]["round_trips"] == 0


def test_attach_with_out_refuses_to_overwrite_without_force(tmp_path):
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"local": {
        "path": str(tmp_path / "remote"), "python": sys.executable,
        "env": {"PYTHONPATH": STANDINS}}})
    audio = make_audio(tmp_path / "a.wav", seconds=0.5)
    result, body = invoke("separate", audio, "--desc", "bass", "--host", "local",
                          "--hosts", hosts)
    assert result.exit_code == 0, result.output
    job_id = body["result"]["job_id"]
    mine = tmp_path / "mine_target.wav"
    mine.write_bytes(b"the user's own file")
    result, body = invoke("attach", job_id, "--host", "local", "--out", tmp_path / "mine",
                          "--hosts", hosts)
    assert result.exit_code == EXIT_CODES["output_exists"], result.output
    assert body["error"]["kind"] == "output_exists" and "--force" in body["error"]["hint"]
    assert mine.read_bytes() == b"the user's own file"
    assert not (tmp_path / "mine_residual.wav").exists()
    result, body = invoke("attach", job_id, "--host", "local", "--out", tmp_path / "mine",
                          "--force", "--hosts", hosts)
    assert result.exit_code == 0, result.output
    assert sha256(mine) == remote_outputs(tmp_path, job_id)["d0_target.wav"]


def test_steps_option_reaches_the_payload_settings(tmp_path):
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"local": {
        "path": str(tmp_path / "remote"), "python": sys.executable,
        "env": {"PYTHONPATH": STANDINS}}})
    audio = make_audio(tmp_path / "a.wav", seconds=0.5)
    result, body = invoke("separate", audio, "--desc", "bass", "--steps", "8",
                          "--host", "local", "--hosts", hosts)
    assert result.exit_code == 0, result.output
    job_dir = tmp_path / "remote" / "jobs" / body["result"]["job_id"]
    settings = json.loads((job_dir / "manifest.json").read_text())["settings"]
    assert settings["ode_step_size"] == 0.125
    result, body = invoke("separate", audio, "--desc", "bass", "--steps", "0", "--force",
                          "--host", "local", "--hosts", hosts)
    assert body["error"]["kind"] == "bad_config"


def test_process_dying_without_bye_is_job_failed(ssh_server, tmp_path):
    import os
    import signal

    hosts = hosts_yaml(tmp_path, ssh_server, env={"SAM_STANDIN_SECONDS_PER_SECOND": "2"})
    audio = make_audio(tmp_path / "a.wav", seconds=3)
    thread, box = run_in_thread("separate", audio, "--desc", "whistle", "--chunk-seconds", "1",
                                "--host", "gpu", "--hosts", hosts)
    wait_for(lambda: '"event":"chunk"' in job_events(tmp_path) or not thread.is_alive())
    (pid_file,) = (tmp_path / "remote" / "jobs").glob("*/pid")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    thread.join(120)
    assert box["result"].exit_code == EXIT_CODES["job_failed"], box["result"].output
    assert "ended without finishing" in box["body"]["error"]["message"]


def test_ctrl_c_detaches_and_attach_finishes(ssh_server, tmp_path):
    from remote_sep.errors import Interrupted
    from remote_sep.jobs.attach import run_attach
    from remote_sep.jobs.separate import SeparateOptions, run_separate
    from remote_sep.profiles import get_profile

    hosts = hosts_yaml(tmp_path, ssh_server, env={"SAM_STANDIN_SECONDS_PER_SECOND": "1"})
    audio = make_audio(tmp_path / "a.wav", seconds=3)

    def press_ctrl_c_on_first_chunk(kind: str, data: dict) -> None:
        if kind == "event" and data.get("event") == "chunk":
            raise KeyboardInterrupt

    profile = get_profile("gpu", hosts)
    with pytest.raises(Interrupted) as err:
        run_separate(audio, profile, SeparateOptions(["whistle"], settings={"chunk_seconds": 1}),
                     press_ctrl_c_on_first_chunk)
    assert err.value.exit_code == 130
    job_id = err.value.hint.split()[2]
    assert err.value.hint == f"remote-sep attach {job_id} --host gpu"
    result = run_attach(job_id, profile)
    remote = remote_outputs(tmp_path, job_id)
    assert sha256(Path(result["outputs"][0]["target"])) == remote["d0_target.wav"]
    assert Path(result["outputs"][0]["target"]) == tmp_path / "a_whistle_target.wav"
