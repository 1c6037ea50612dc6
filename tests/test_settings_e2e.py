"""Settings that are not the defaults really reach the payload over a real loopback sshd:
the files written are 24-bit at 44.1 kHz when asked, a hosts.yaml `quality:` preset and
`format:` are in the job's manifest (batch names its outputs with the host's format), and
`separate` and `batch` build the same settings from the same options (stand-in sam_audio,
the only double)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from batch_helpers import fleet, make_songs, remote_jobs
from typer.testing import CliRunner

from remote_sep.cli.main import app

pytestmark = pytest.mark.e2e


def run(*argv: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, [*map(str, argv), "--json"])
    return result.exit_code, json.loads(result.stdout.splitlines()[-1])


def job_settings(job: Path) -> dict:
    return json.loads((job / "manifest.json").read_text())["settings"]


def test_bit_depth_sample_rate_and_a_hosts_yaml_preset_reach_the_payload(
        tmp_path, make_ssh_server):
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("gpu1")})
    text = hosts_file.read_text().replace("    host:", "    quality: fast\n    format: flac\n"
                                          "    host:", 1)
    hosts_file.write_text(text)
    (song,) = make_songs(tmp_path / "in", 1, seconds=1.0, rate=16000)
    options = ("--bit-depth", "24", "--sample-rate", "44100", "--chunk-seconds", "0.5")

    code, body = run("separate", song, "-d", "vocals", "--host", "gpu1", "--hosts", hosts_file,
                     "--out", tmp_path / "alone", *options)
    assert code == 0, body
    for kind in ("target", "residual"):
        info = sf.info(body["result"]["outputs"][0][kind])
        assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_24", 44100), info
        assert info.frames == 44100  # 1 s of input at the new rate
    (job,) = remote_jobs(tmp_path, "gpu1")
    alone = job_settings(job)
    # the host's `quality: fast` (euler) under the options; the chunk given shrinks its overlap
    assert (alone["ode_method"], alone["subtype"], alone["sample_rate"]) == (
        "euler", "PCM_24", 44100)
    assert (alone["chunk_seconds"], alone["overlap_seconds"]) == (0.5, 0.125)

    code, body = run("batch", song, "-d", "vocals", "--hosts", "gpu1", "--hosts-file",
                     hosts_file, "-o", tmp_path / "out", *options)
    assert code == 0, body
    (item,) = body["result"]["items"]
    for out in item["outputs"].values():  # named .flac: the host's format, before any run
        info = sf.info(out["path"])
        assert out["path"].endswith(".flac") and (info.format, info.subtype, info.samplerate) \
            == ("FLAC", "PCM_24", 44100), info
    batch_job = next(j for j in remote_jobs(tmp_path, "gpu1") if j != job)
    assert {k: v for k, v in job_settings(batch_job).items() if k != "worker_idle_timeout"} == \
        {k: v for k, v in alone.items() if k != "worker_idle_timeout"}
