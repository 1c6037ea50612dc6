"""`--score` and `--rerank` end to end through the CLI over the real loopback sshd, the real
payload and the stand-in sam_audio (its judge scores computably, its ranker is the judge)."""

from __future__ import annotations

import csv
import json
import sys

import pytest
from batch_helpers import fleet, make_songs
from conftest import TESTS, profile_for, write_hosts_file
from test_separate_e2e import make_audio
from typer.testing import CliRunner

from remote_payload.protocol import SCORE_NAMES
from remote_sep.cli.main import app

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))


def test_separate_score_and_rerank_show_in_json_and_summary(ssh_server, tmp_path):
    entry = profile_for(ssh_server, tmp_path / "remote",
                        env={"PYTHONPATH": str(TESTS / "standins")}, python=sys.executable)
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": entry})
    audio = make_audio(tmp_path / "mix.wav")
    result = CliRunner().invoke(app, [
        "separate", str(audio), "--desc", "bass hum", "--desc", "whistle", "--host", "gpu",
        "--hosts", str(hosts), "--score", "--rerank", "3", "--chunk-seconds", "1", "--json"])
    assert result.exit_code == 0, result.output
    outputs = json.loads(result.stdout)["result"]["outputs"]
    for entry in outputs:
        assert set(entry["scores"]) == {*SCORE_NAMES, "windows"}
        assert entry["rerank"] and all(len(r["scores"]) == 3 for r in entry["rerank"])
    assert outputs[0]["scores"] != outputs[1]["scores"]

    human = CliRunner().invoke(app, [
        "separate", str(audio), "--desc", "whistle", "--host", "gpu", "--hosts", str(hosts),
        "--score", "--out", str(tmp_path / "again")])
    assert human.exit_code == 0, human.output
    assert "scores of 'whistle': overall " in human.stderr
    assert all(f"{name} " in human.stderr for name in SCORE_NAMES)
    assert "Traceback" not in human.output


def test_batch_writes_scores_csv_and_keeps_it_on_resume(tmp_path, make_ssh_server):
    make_songs(tmp_path / "in", 3)
    hosts_file, _ = fleet(tmp_path, {"gpu1": make_ssh_server("a")})
    out = tmp_path / "out"
    argv = ["batch", str(tmp_path / "in"), "--desc", "vocals", "--desc", "bass", "--hosts",
            "gpu1", "--hosts-file", str(hosts_file), "--out-dir", str(out), "--score", "--json"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)["result"]
    assert body["scores_csv"] == str(out / "scores.csv")
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert len(rows) == 6  # 3 files x 2 descriptions
    by_unit = {(i["input"], i["description"]): i for i in body["items"]}
    for row in rows:
        item = by_unit[(row["input"], row["description"])]
        assert row["target"] == item["outputs"]["target"]["path"] and row["status"] == "done"
        for name in SCORE_NAMES:
            assert float(row[name]) == item["scores"][name]
    assert not [p for p in out.iterdir() if p.name.startswith(".scores.csv")]  # atomic

    again = CliRunner().invoke(app, argv)  # resume: all skipped, scores from the state
    assert again.exit_code == 0, again.output
    resumed = list(csv.DictReader((out / "scores.csv").open()))
    assert [r["status"] for r in resumed] == ["skipped"] * 6
    assert [{k: r[k] for k in SCORE_NAMES} for r in resumed] == \
        [{k: r[k] for k in SCORE_NAMES} for r in rows]
