"""Reranking and quality scores through the payload, with the stand-in sam_audio (whose
rankers and judge keep the real signatures, build-time failures and limits)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from payload_util import STANDINS, of, run_payload, standin_env, write_audio

from remote_payload.manifest import Item, Settings

SMALL = dict(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25, batch_size=2)
HOP = 1920


def model_folder(tmp_path: Path, name: str, **config) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "checkpoint.pt").write_bytes(b"")
    return folder


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_rerank_builds_only_the_text_ranker_and_keeps_the_best_candidate(tmp_path: Path):
    audio = write_audio(tmp_path / "mix.wav", seconds=2.5, rate=44100)
    log = tmp_path / "loads.log"
    rc, events, proc = run_payload(
        tmp_path / "job", [Item("a", str(audio), ["voice", "bass"], ["out/a0", "out/a1"])],
        Settings(**SMALL, dtype="bf16", rerank=4),
        # candidates 1e-2 apart: distinct even as bf16 audio (1e-3 can round together)
        env=standin_env(SAM_STANDIN_LOAD_LOG=str(log), SAM_STANDIN_NOISE="1e-2"))
    assert rc == 0, proc.stderr
    lines = log_lines(log)
    # the config names ImageBind too: without a video it is overridden, never built
    assert lines[0]["overrides"] == {"visual_ranker": None, "span_predictor": None}
    assert [line["ranker_built"] for line in lines if "ranker_built" in line] == ["judge"]
    load = of(events, "load")[0]
    assert (load["candidates"], load["ranker"]) == (4, "text_ranker")
    picked = []
    for done in of(events, "item_done"):
        assert len(done["rerank"]) == of(events, "item_start")[0]["chunks"]
        for rank in done["rerank"]:  # bf16 model, fp32 scores: four distinct numbers
            assert len(set(rank["scores"])) == 4
            assert rank["picked"] == int(np.argmax(rank["scores"]))
            picked.append(rank["picked"])
    assert set(picked) != {0}  # argmax over ties would always keep candidate 0


def test_bf16_ranker_scores_tie_unless_kept_in_fp32(monkeypatch):
    """In process, the stand-in model cast to bf16: its JudgeRanker's raw scores tie; with
    rankers.keep_fp32 they do not, and the model keeps the argmax candidate."""
    monkeypatch.syspath_prepend(str(STANDINS))
    monkeypatch.setenv("SAM_STANDIN_NOISE", "1e-2")  # candidates distinct as bf16 audio
    for name in [m for m in sys.modules if m == "sam_audio" or m.startswith("sam_audio.")]:
        monkeypatch.delitem(sys.modules, name)
    import torch
    from sam_audio import SAMAudio, SAMAudioProcessor

    from remote_payload import rankers

    model = SAMAudio.from_pretrained("facebook/sam-audio-small", visual_ranker=None,
                                     span_predictor=None).eval().to(torch.bfloat16)
    processor = SAMAudioProcessor.from_pretrained("facebook/sam-audio-small")
    seen = []
    forward = model.text_ranker.forward

    def spy(**kwargs):
        scores = forward(**kwargs)
        seen.append((scores.float().reshape(-1).tolist(), kwargs["extracted_audio"][0]))
        return scores

    model.text_ranker.forward = spy
    t = torch.arange(48_000) / 48_000
    audio = (0.3 * torch.sin(2 * torch.pi * 300 * t))[None].to(torch.bfloat16)

    def separate():
        batch = processor(descriptions=["voice"], audios=[audio])
        torch.manual_seed(3)  # a seed whose best candidate is not the first
        return model.separate(batch, reranking_candidates=4)

    separate()
    assert len(set(seen[-1][0])) == 1  # bf16 around 3: every candidate scores the same
    rankers.keep_fp32(model)
    result = separate()
    scores, candidates = seen[-1]
    assert len(set(scores)) == 4
    best = int(np.argmax(scores))
    assert best != 0 and torch.equal(result.target[0], candidates[best])
    assert rankers.take_scores(model)[0] == "text"


def test_a_model_without_a_text_ranker_warns_and_runs_one_candidate(tmp_path: Path):
    folder = model_folder(tmp_path, "plain", text_ranker=None)
    audio = write_audio(tmp_path / "mix.wav", seconds=1.0, rate=48000)
    rc, events, proc = run_payload(tmp_path / "job", [Item("a", str(audio), ["x"], ["out/a"])],
                                   Settings(**SMALL, model=str(folder), rerank=4))
    assert rc == 0, proc.stderr
    # (an empty checkpoint.pt also makes the lean load fall back, with its own warning)
    (warning,) = [w for w in of(events, "warning") if w["code"] == "rerank_no_ranker"]
    assert "only cost 4x the time" in warning["message"]
    assert of(events, "load")[0]["candidates"] == 1
    assert "rerank" not in of(events, "item_done")[0]


@pytest.mark.parametrize("case", ["clap", "judge_uncached"])
def test_a_ranker_that_cannot_load_is_named(tmp_path: Path, case: str):
    audio = write_audio(tmp_path / "mix.wav", seconds=1.0, rate=48000)
    if case == "clap":
        model = str(model_folder(tmp_path, "clap", text_ranker={"kind": "clap"}))
        # found by the job's preflight (hub_cache) before the load, else at the load
        env, words = standin_env(), ("CLAP", "laion_clap", "remote-sep bootstrap HOST")
    else:
        model = "facebook/sam-audio-small"
        env = standin_env(SAM_STANDIN_UNCACHED="facebook/sam-audio-judge")
        words = ("the judge ranker facebook/sam-audio-judge", "--prefetch --rerank")
    rc, events, proc = run_payload(tmp_path / "job", [Item("a", str(audio), ["x"], ["out/a"])],
                                   Settings(**SMALL, model=model, rerank=2), env=env)
    (error,) = of(events, "error")
    assert (rc, error["kind"]) == (9, "not_provisioned")
    for word in words:
        assert word in error["message"]
    assert "Traceback" not in proc.stderr and not (tmp_path / "job" / "out").exists()


def expected_scores(mix: np.ndarray, target: np.ndarray, description: str) -> dict:
    """The stand-in judge's formula (tests/standins/sam_audio/judge.py) over whole frames."""
    size = len(mix) + (-len(mix)) % HOP  # reflect padding to whole frames
    x = np.pad(mix, (0, size - len(mix)), mode="reflect").reshape(-1, HOP)
    y = np.pad(target, (0, size - len(target)), mode="reflect").reshape(-1, HOP)
    ratio = (y ** 2).mean(1) / ((x ** 2).mean(1) + 1e-6)
    words = len(description.split())
    pooled = [np.mean(ratio - 0.5), np.mean(ratio), np.mean(1 - ratio),
              np.mean(0.5 * ratio + 0.01 * words)]
    return dict(zip(("overall", "recall", "precision", "faithfulness"),
                    (3 + p for p in pooled), strict=True))


def mono48(path: str) -> np.ndarray:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 48000
    return data.mean(axis=1)


@pytest.mark.parametrize("max_positions", [10_000, 40])
def test_scores_are_the_judges_over_the_whole_item_windowed_past_its_limit(
        tmp_path: Path, max_positions: int):
    judge = model_folder(tmp_path, "judge", transformer={
        "max_position_embeddings": max_positions})
    audio = write_audio(tmp_path / "mix.wav", seconds=4.0, rate=48000, channels=2,
                        subtype="FLOAT")
    log = tmp_path / "loads.log"
    settings = Settings(**SMALL, score=True, judge_model=str(judge), subtype="FLOAT")
    items = [Item("a", str(audio), ["bass guitar", "voice"], ["out/a0", "out/a1"])]
    rc, events, proc = run_payload(tmp_path / "job", items, settings,
                                   env=standin_env(SAM_STANDIN_LOAD_LOG=str(log)))
    assert rc == 0, proc.stderr
    load = of(events, "load")[0]
    window_s = (max_positions - 1) * HOP / 48000
    assert load["judge_window_s"] == pytest.approx(window_s, abs=1e-3)
    assert load["judge_shared"] is False  # rerank off: no judge ranker to share
    dones = of(events, "item_done")
    for done in dones:
        got = done["scores"]
        assert got["windows"] == (1 if window_s >= 4 else 3)  # 4 s in windows of 1.56 s
        want = expected_scores(mono48(str(audio)), mono48(done["outputs"]["target"]["path"]),
                               done["description"])
        for name, value in want.items():  # windows of whole frames: the same frame mean
            assert got[name] == pytest.approx(value, abs=2e-4), name
    assert dones[0]["scores"] != dones[1]["scores"]
    assert sum("judge" in line for line in log_lines(log)) == 1  # one judge load

    # rerun in place: outputs and scores come from their records, nothing is loaded
    rc, again, proc = run_payload(tmp_path / "job", items, settings,
                                  env=standin_env(SAM_STANDIN_LOAD_LOG=str(log)))
    assert rc == 0, proc.stderr
    new = again[len(events):]
    assert all(d["skipped"] for d in of(new, "item_done"))
    assert [d["scores"] for d in of(new, "item_done")] == [d["scores"] for d in dones]
    assert sum("judge" in line for line in log_lines(log)) == 1


def test_an_uncached_judge_fails_before_any_separation(tmp_path: Path):
    audio = write_audio(tmp_path / "mix.wav", seconds=1.0, rate=48000)
    rc, events, proc = run_payload(
        tmp_path / "job", [Item("a", str(audio), ["x"], ["out/a"])],
        Settings(**SMALL, score=True),
        env=standin_env(SAM_STANDIN_UNCACHED="facebook/sam-audio-judge"))
    (error,) = of(events, "error")
    assert (rc, error["kind"]) == (9, "not_provisioned")
    assert "the judge facebook/sam-audio-judge" in error["message"]
    assert "remote-sep bootstrap HOST --prefetch --score" in error["message"]
    assert not of(events, "item_start") and not (tmp_path / "job" / "out").exists()
