"""`remote-sep split` and `batch --stem` end to end: the CLI, a real loopback sshd, the real
payload and the stand-in sam_audio (the only double)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from batch_helpers import fleet, loads, make_songs
from conftest import TESTS, profile_for, write_hosts_file
from typer.testing import CliRunner

from remote_payload.protocol import EXIT_CODES
from remote_sep.cli.main import app

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_song(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """A real stereo mix: 110 Hz hum left of centre, a 3 kHz whistle, a little hiss."""
    t = np.arange(int(seconds * rate)) / rate
    hum = 0.4 * np.sin(2 * np.pi * 110 * t)
    whistle = 0.2 * np.sin(2 * np.pi * 3000 * t)
    hiss = 0.01 * np.random.default_rng(2).standard_normal(len(t))
    sf.write(path, np.stack([hum + whistle + hiss, 0.3 * hum + whistle + hiss], axis=1),
             rate, subtype="PCM_16")
    return path


def invoke(*args: str):
    result = CliRunner().invoke(app, [*map(str, args), "--json"])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result, (json.loads(lines[-1]) if lines else None)


def test_split_through_the_cli_adds_up_to_the_input_with_one_model_load(ssh_server, tmp_path):
    load_log = tmp_path / "loads.jsonl"
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": profile_for(
        ssh_server, tmp_path / "remote", env={"PYTHONPATH": str(TESTS / "standins"),
                                              "SAM_STANDIN_LOAD_LOG": str(load_log)})})
    song = make_song(tmp_path / "song.wav")
    result, body = invoke("split", song, "--stem", "bass hum", "--stem", "whistle",
                          "--stem", "Hiss!", "--host", "gpu", "--hosts", hosts,
                          "--chunk-seconds", "1")
    assert result.exit_code == 0, result.output
    (entry,) = body["result"]["outputs"]
    names = ["bass-hum", "whistle", "hiss", "other"]
    assert body["result"]["stems"] == names
    remote_out = tmp_path / "remote" / "jobs" / body["result"]["job_id"] / "out"
    files = {}
    for name in names:
        local = Path(entry[name])
        assert local == tmp_path / f"song_{name}.wav"
        assert sha256(local) == entry[f"{name}_sha256"] == sha256(remote_out / f"d0_{name}.wav")
        files[name] = sf.read(local, dtype="int16", always_2d=True)[0].astype(np.int64)
    source = sf.read(song, dtype="int16", always_2d=True)[0]
    assert np.array_equal(sum(files.values()), source)  # the stems + other ARE the input
    assert len(load_log.read_text().splitlines()) == 1  # one model load for every stem
    assert np.abs(files["bass-hum"]).max() > 5000  # the hum came out first
    # attach knows a split's outputs: every stem and other, pulled again into another folder
    result, again = invoke("attach", body["result"]["job_id"], "--host", "gpu",
                           "--hosts", hosts, "--out", f"{tmp_path / 'again'}/")
    assert result.exit_code == 0, result.output
    (pulled,) = again["result"]["outputs"]
    for name in names:
        assert Path(pulled[name]) == tmp_path / "again" / f"song_{name}.wav"
        assert sha256(Path(pulled[name])) == entry[f"{name}_sha256"]
    # again: outputs exist -> refused before anything runs; bad stems and modes: exit 4
    result, body = invoke("split", song, "--stem", "bass hum", "--host", "gpu",
                          "--hosts", hosts)
    assert result.exit_code == EXIT_CODES["output_exists"], result.output
    for bad in (["--stem", "other"], ["--stem", "a b", "--stem", "A-B"],
                ["--stem", "x", "--stereo", "wide"]):
        result, body = invoke("split", song, *bad, "--host", "gpu", "--hosts", hosts,
                              "--out", tmp_path / "o" / "x")
        assert result.exit_code == EXIT_CODES["bad_config"], (bad, result.output)
        assert body["error"]["kind"] == "bad_config"
    assert len(load_log.read_text().splitlines()) == 1


def test_batch_stem_splits_every_file_and_resumes(tmp_path, make_ssh_server):
    make_songs(tmp_path / "in", 3, seconds=0.6)
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("gpu1")})
    out = tmp_path / "out"
    argv = ["batch", str(tmp_path / "in"), "--stem", "bass", "--stem", "voice",
            "--hosts", "gpu1", "--hosts-file", str(hosts_file), "-o", str(out),
            "--stereo", "mid", "--json"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)["result"]["items"]
    assert len(items) == 3 and loads(tmp_path, "gpu1") == 1
    for item in items:
        assert item["status"] == "done" and item["description"] == "bass > voice"
        assert list(item["outputs"]) == ["bass", "voice", "other"]
        stem = Path(item["input"]).stem
        files = {}
        for role, output in item["outputs"].items():
            assert Path(output["path"]) == out / f"{stem}_{role}.wav"
            assert sha256(Path(output["path"])) == output["sha256"]
            files[role] = sf.read(output["path"], dtype="int16")[0].astype(np.int64)
        assert np.array_equal(sum(files.values()), sf.read(item["input"], dtype="int16")[0])
    rerun = CliRunner().invoke(app, argv)
    assert rerun.exit_code == 0, rerun.output
    assert {i["status"] for i in json.loads(rerun.stdout)["result"]["items"]} == {"skipped"}
    both = CliRunner().invoke(app, [*argv[:-1], "-d", "drums", "--json"])
    assert both.exit_code == EXIT_CODES["bad_config"], both.output


def test_batch_yaml_stems_item(tmp_path):
    """`stems:` in the batch YAML, on the local host (same worker, no SSH)."""
    songs = make_songs(tmp_path / "in", 1, seconds=0.5)
    (tmp_path / "b.yaml").write_text(f"items:\n  - input: {songs[0]}\n    stems: [bass, voice]\n")
    hosts_file = write_hosts_file(tmp_path / "hosts.yaml", {"local": {
        "path": str(tmp_path / "remote-local"), "python": sys.executable,
        "env": {"PYTHONPATH": str(TESTS / "standins")}}})
    result = CliRunner().invoke(app, ["batch", "--manifest", str(tmp_path / "b.yaml"),
                                      "--hosts", "local", "--hosts-file", str(hosts_file),
                                      "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)["result"]["items"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == [
        "song 00_bass.wav", "song 00_other.wav", "song 00_voice.wav"]
    assert item["status"] == "done"
