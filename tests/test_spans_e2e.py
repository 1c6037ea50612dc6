"""`--span` / `--predict-spans` end to end: `separate` and `batch` through the CLI, a real
loopback sshd, the real payload and the stand-in sam_audio (whose anchors act frame by
frame: a ``+`` frame's target is the input, a ``-`` frame's is silence)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from batch_helpers import fleet
from conftest import profile_for, write_hosts_file
from typer.testing import CliRunner

from remote_payload.protocol import EXIT_CODES
from remote_sep.cli.main import app

pytestmark = pytest.mark.e2e
RATE, HOP, FRAMES = 48_000, 1920, 67
BURSTS = [(10, 20), (40, 55)]  # frames: 0.4-0.8 s and 1.6-2.2 s (what the predictor finds)


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))


def bursts(path: Path) -> Path:
    t = np.arange(FRAMES * HOP) / RATE
    audio = 0.01 * np.random.default_rng(3).standard_normal(len(t))
    for lo, hi in BURSTS:
        part = slice(lo * HOP, hi * HOP)
        audio[part] += 0.3 * np.sin(2 * np.pi * 440 * t[part])
    sf.write(str(path), audio.astype(np.float32), RATE, subtype="FLOAT")
    return path


def run(*argv: str, as_json: bool = True):
    result = CliRunner().invoke(app, [*map(str, argv), *(["--json"] if as_json else [])])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result, (json.loads(lines[-1]) if lines else None)


def frames(lo: int, hi: int) -> slice:
    return slice(lo * HOP, hi * HOP)


def test_separate_with_spans_and_with_predicted_spans(ssh_server, tmp_path):
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": profile_for(
        ssh_server, tmp_path / "remote", env={"PYTHONPATH": str(Path(__file__).parent /
                                                                "standins")})})
    audio = bursts(tmp_path / "mix.wav")
    source = sf.read(audio)[0]
    result, body = run("separate", audio, "-d", "whistle", "--span", "+0.4:0.8",
                       "--span=-0:01.6:0:02.2", "--chunk-seconds", "1", "--host", "gpu",
                       "--hosts", hosts, "--out", tmp_path / "given")
    assert result.exit_code == 0, result.output
    job = tmp_path / "remote" / "jobs" / body["result"]["job_id"]
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["items"][0]["spans"] == [["+", 0.4, 0.8], ["-", 1.6, 2.2]]
    target = sf.read(body["result"]["outputs"][0]["target"])[0]
    np.testing.assert_allclose(target[frames(10, 20)], source[frames(10, 20)], atol=1e-4)
    np.testing.assert_allclose(target[frames(40, 55)], 0, atol=1e-4)
    assert "predicted_spans" not in body["result"]["outputs"][0]

    result, body = run("separate", audio, "-d", "whistle", "--predict-spans",
                       "--chunk-seconds", "1", "--host", "gpu", "--hosts", hosts,
                       "--out", tmp_path / "predicted")
    assert result.exit_code == 0, result.output
    (entry,) = body["result"]["outputs"]
    assert entry["predicted_spans"] == [[0.4, 0.8], [1.6, 2.2]]
    target = sf.read(entry["target"])[0]
    np.testing.assert_allclose(target[frames(40, 55)], source[frames(40, 55)], atol=1e-4)

    result, _ = run("separate", audio, "-d", "whistle", "--predict-spans", "--host", "gpu",
                    "--hosts", hosts, "--out", tmp_path / "human", as_json=False)
    assert result.exit_code == 0, result.output
    assert "predicted spans of 'whistle': 0:00.40-0:00.80, 0:01.60-0:02.20" in result.output


def test_bad_spans_fail_before_any_connection(tmp_path):
    from sshd import free_port  # a closed port: reaching the network would be 'unreachable'

    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": {
        "host": "127.0.0.1", "port": free_port(), "known_hosts": str(tmp_path / "kh"),
        "python": sys.executable}})
    audio = bursts(tmp_path / "a.wav")  # 2.68 s
    cases = [(["--span", "+2:3"], "+2:3 lies outside the file (2.680 s long)"),
             (["--span", "+1.5:1"], "+1.5:1 is reversed"),
             (["--span", "-1:1"], "-1:1 is empty"),
             (["--span", "1:2"], "starts with + (the sound is there)"),
             (["--span", "+1:30:45"], "can be read more than one way"),
             (["--span", "+0:1", "--predict-spans"], "exclude each other")]
    for extra, words in cases:
        result, body = run("separate", audio, "-d", "x", *extra, "--host", "gpu",
                           "--hosts", hosts)
        assert result.exit_code == EXIT_CODES["bad_config"], (extra, result.output)
        assert words in body["error"]["message"], (extra, body["error"])
    manifest = tmp_path / "batch.yaml"
    manifest.write_text(yaml.safe_dump({"items": [{"input": "a.wav", "spans": ["+1:9"]}]}))
    result, body = run("batch", "--manifest", manifest, "-d", "x", "--hosts", "gpu",
                       "--hosts-file", hosts, "-o", tmp_path / "out")
    assert result.exit_code == EXIT_CODES["bad_config"], result.output
    assert "a.wav: span +1:9 lies outside the file" in body["error"]["message"]


def test_batch_yaml_spans_per_item_and_predicted_spans(tmp_path, make_ssh_server):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("given.wav", "found.wav"):
        bursts(folder / name)
    manifest = folder / "batch.yaml"
    manifest.write_text(yaml.safe_dump({"items": [
        {"input": "given.wav", "spans": ["-0.4:0.8", ["+", 1.6, 2.2]]},
        {"input": "found.wav"}]}))
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a")})
    out = tmp_path / "out"
    result, body = run("batch", "--manifest", manifest, "-d", "whistle", "--predict-spans",
                       "--hosts", "gpu1", "--hosts-file", hosts_file, "-o", out)
    assert result.exit_code == 0, result.output
    items = {Path(i["input"]).name: i for i in body["result"]["items"]}
    assert items["given.wav"]["spans"] == [["-", 0.4, 0.8], ["+", 1.6, 2.2]]
    assert "predicted_spans" not in items["given.wav"]
    assert items["found.wav"]["predicted_spans"] == [[0.4, 0.8], [1.6, 2.2]]
    given = sf.read(items["given.wav"]["outputs"]["target"]["path"])[0]
    np.testing.assert_allclose(given[frames(10, 20)], 0, atol=1e-4)
    # the same again: done already; other spans for the same input: run again (the
    # resume fingerprint holds the spans)
    argv = ("batch", "--manifest", manifest, "-d", "whistle", "--hosts", "gpu1",
            "--hosts-file", hosts_file, "-o", out)
    result, body = run(*argv, "--predict-spans")
    assert result.exit_code == 0, result.output
    assert body["result"]["counts"].get("skipped") == 2
    manifest.write_text(yaml.safe_dump({"items": [
        {"input": "given.wav", "spans": ["+0.4:0.8"]}]}))
    result, body = run(*argv, "--predict-spans")  # the same settings: only spans differ
    assert result.exit_code == 0, result.output
    assert body["result"]["counts"] == {**body["result"]["counts"], "done": 1}
