"""batch and separate share one settings builder: the same values give the same job on a
real loopback sshd host, and what only the payload can reject reaches the user as itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from batch_helpers import check_outputs, fleet, make_songs, remote_jobs, sha
from typer.testing import CliRunner

from remote_payload.protocol import EXIT_CODES
from remote_sep.cli.main import app

pytestmark = pytest.mark.e2e


def run(*argv: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, [*map(str, argv), "--json"])
    return result.exit_code, json.loads(result.stdout.splitlines()[-1])


def job_settings(job: Path) -> dict:
    return json.loads((job / "manifest.json").read_text())["settings"]


def test_batch_short_chunks_work_and_match_separate(tmp_path, make_ssh_server, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))
    songs = make_songs(tmp_path / "in", 2, seconds=5.0)  # several 2 s chunks each
    # lti: no seeded noise, so a job's bytes depend on its settings, not on its item ids.
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a")}, SAM_STANDIN_MODE="lti")
    hosts = yaml.safe_load(hosts_file.read_text())
    hosts["hosts"]["gpu1"]["dtype"] = "fp32"  # a hosts.yaml default: batch applies it too
    hosts_file.write_text(yaml.safe_dump(hosts))
    out = tmp_path / "out"
    code, body = run("batch", tmp_path / "in", "-d", "vocals", "--chunk-seconds", "2",
                     "--hosts", "gpu1", "--hosts-file", hosts_file, "-o", out)
    assert code == 0, body
    check_outputs(out, body["result"]["items"], 2)
    (job,) = remote_jobs(tmp_path, "gpu1")
    settings = job_settings(job)
    assert (settings["chunk_seconds"], settings["overlap_seconds"], settings["dtype"]) == (
        2, 0.5, "fp32")
    # separate with the same option builds the same settings: byte-identical outputs.
    code, alone = run("separate", songs[0], "-d", "vocals", "--chunk-seconds", "2",
                      "--host", "gpu1", "--hosts", hosts_file, "--out", tmp_path / "alone")
    assert code == 0, alone
    assert job_settings(tmp_path / "remote-gpu1" / "jobs" / alone["result"]["job_id"]) == \
        settings
    for role in ("target", "residual"):
        assert sha(Path(alone["result"]["outputs"][0][role])) == \
            sha(out / f"song 00_vocals_{role}.wav")


def test_a_setting_only_the_host_can_refuse_is_reported_as_itself(tmp_path, make_ssh_server):
    """A model id the laptop cannot judge: the worker's payload ends with an `error` event
    (unknown_model) and bye; batch reports that kind and message, not job_failed."""
    make_songs(tmp_path / "in", 2)
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a")})
    code, body = run("batch", tmp_path / "in", "-d", "vocals", "--model", "acme/sam-audio-huge",
                     "--hosts", "gpu1", "--hosts-file", hosts_file, "-o", tmp_path / "out")
    assert code == EXIT_CODES["unknown_model"], body
    assert body["error"]["kind"] == "unknown_model"
    assert "'acme/sam-audio-huge' not found" in body["error"]["message"]
    for item in body["result"]["items"]:
        assert item["status"] == "failed" and item["kind"] == "unknown_model"
        assert "acme/sam-audio-huge" in item["message"] and "ended early" not in item["message"]
    assert len(remote_jobs(tmp_path, "gpu1")) == 1  # not restarted: it would fail alike
