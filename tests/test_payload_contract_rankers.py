"""Reranking and quality scores against the REAL sam_audio classes (tiny random models, CPU).

Runs with ``REMOTE_SEP_REAL_SAM_PYTHON`` set (see tests/test_payload_contract.py, whose
fixtures it shares). The judge is a tiny random ``SAMAudioJudgeModel`` built with the real
config classes (tests/real_sam_tiny.py ``build_judge``), used both as the model's text ranker
(``JudgeRanker``, the real class) and as the scorer.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from payload_util import ROOT, of, write_audio
from test_payload_contract import TIMEOUT, check_outputs, real_python, run_real, tiny_model

from remote_payload.manifest import Item, Settings

__all__ = ["real_python", "tiny_model"]  # fixtures, shared
# Each test runs the real classes in subprocesses (minutes on a loaded 2-core machine).
pytestmark = pytest.mark.timeout(2 * TIMEOUT)


def _judge(real_python: str, tiny_model: Path, folder: Path, max_positions: int | None = None
           ) -> Path:
    argv = [real_python, str(ROOT / "tests" / "real_sam_tiny.py"), "--judge", str(folder),
            str(tiny_model / "t5"), *([str(max_positions)] if max_positions else [])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def tiny_judge(real_python: str, tiny_model: Path) -> Path:
    return _judge(real_python, tiny_model, tiny_model.parent / "judge")


def _variant(tiny_model: Path, folder: Path, **config) -> Path:
    """The tiny model's weights under another config.json (rankers named differently)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = json.loads((tiny_model / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**body, **config}))
    if not (folder / "checkpoint.pt").exists():
        (folder / "checkpoint.pt").symlink_to(tiny_model / "checkpoint.pt")
    return folder


# bf16 model, the real JudgeRanker: its raw scores (what the model's argmax sees without the
# fix) against the scores of rankers.keep_fp32, on the same seeded candidates.
TIE_CHECK = """
import json, sys, torch
from sam_audio import SAMAudio, SAMAudioProcessor
from remote_payload import rankers
folder, candidates = sys.argv[1], int(sys.argv[2])
model = SAMAudio.from_pretrained(folder, visual_ranker=None, span_predictor=None).eval()
processor = SAMAudioProcessor.from_pretrained(folder)
model = model.to(torch.bfloat16)
seen = []
judge = model.text_ranker
real_forward = judge.forward
def spy(**kwargs):
    scores = real_forward(**kwargs)
    seen.append((scores.detach().float().reshape(-1).tolist(),
                 [c.float().clone() for c in kwargs["extracted_audio"][0]]))
    return scores
judge.forward = spy
torch.manual_seed(0)
audio = (0.1 * torch.randn(1, 48000)).to(torch.bfloat16)
def separate():
    batch = processor(descriptions=["speech"], audios=[audio])
    torch.manual_seed(3)
    with torch.inference_mode():
        return model.separate(batch, reranking_candidates=candidates,
                              ode_opt={"method": "euler", "options": {"step_size": 0.5}})
separate()
bf16_scores = seen[-1][0]
rankers.keep_fp32(model)
result = separate()
fp32_scores, cands = seen[-1]
pick = max(range(candidates), key=lambda k: fp32_scores[k])
print(json.dumps({"bf16": bf16_scores, "fp32": fp32_scores, "pick": pick,
                  "ranker_dtype": str(next(judge.parameters()).dtype),
                  "kept_pick": bool(torch.equal(result.target[0].float(), cands[pick]))}))
"""


def test_real_judge_ranker_ties_in_bf16_and_not_in_fp32(real_python: str, tiny_model: Path,
                                                         tiny_judge: Path, tmp_path: Path):
    ranked = _variant(tiny_model, tmp_path / "ranked", visual_ranker={"kind": "imagebind"},
                      text_ranker={"kind": "judge", "checkpoint_or_model_id": str(tiny_judge)})
    proc = subprocess.run([real_python, "-c", TIE_CHECK, str(ranked), "4"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    # bf16: the judge's step near 3 is 1/64; four candidates collapse onto fewer values
    assert len(set(found["bf16"])) < 4, found
    # fp32 (the fix): every candidate has its own score, and the model kept the argmax one
    assert len(set(found["fp32"])) == 4, found
    assert found["ranker_dtype"] == "torch.float32" and found["kept_pick"], found


def test_real_payload_reranks_with_the_judge_and_scores(real_python: str, tiny_model: Path,
                                                        tiny_judge: Path, tmp_path: Path):
    # config.json names ImageBind too (not installed here, as on a host without it): with no
    # video it must not even be built, or the load fails
    ranked = _variant(tiny_model, tmp_path / "ranked", visual_ranker={"kind": "imagebind"},
                      text_ranker={"kind": "judge", "checkpoint_or_model_id": str(tiny_judge)})
    source = write_audio(tmp_path / "in.wav", seconds=1.5, rate=48_000, subtype="FLOAT")
    settings = Settings(model=str(ranked), device="cpu", dtype="bf16", chunk_seconds=1.0,
                        overlap_seconds=0.25, seed=2, rerank=3, ode_method="euler",
                        ode_step_size=0.5, subtype="FLOAT", score=True,
                        judge_model=str(tiny_judge))
    proc, events = run_real(real_python, tmp_path / "job", settings,
                            [Item("r", str(source), ["speech"], ["out/r"])])
    assert proc.returncode == 0, proc.stderr[-3000:]
    load = of(events, "load")[0]
    assert "visual_ranker" in load["components_off"] and load["ranker"] == "text_ranker"
    assert load["judge_shared"] is True  # the ranker's judge scores too: one judge load
    (done,) = of(events, "item_done")
    check_outputs(done, source)
    assert [len(r["scores"]) for r in done["rerank"]] == [3, 3]  # two chunks, 3 candidates
    for rank in done["rerank"]:  # fp32 scores (in bf16 they would mostly tie)
        assert len(set(rank["scores"])) > 1
        assert rank["picked"] == int(np.argmax(rank["scores"]))
    scores = done["scores"]
    assert set(scores) == {"overall", "recall", "precision", "faithfulness", "windows"}
    assert scores["windows"] == 1

    # the same numbers from the judge called directly on the files, as its README does
    direct = subprocess.run([real_python, "-c", DIRECT_SCORE, str(tiny_judge), str(source),
                             done["outputs"]["target"]["path"], "speech"],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert direct.returncode == 0, direct.stderr[-3000:]
    expected = json.loads(direct.stdout.strip().splitlines()[-1])
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, abs=1e-3), name


DIRECT_SCORE = """
import json, sys, soundfile as sf, torch
from sam_audio import SAMAudioJudgeModel, SAMAudioJudgeProcessor
folder, mix, target, text = sys.argv[1:]
model = SAMAudioJudgeModel.from_pretrained(folder).eval()
processor = SAMAudioJudgeProcessor.from_pretrained(folder)
x = torch.from_numpy(sf.read(mix, dtype="float32", always_2d=True)[0].mean(1))[None]
y = torch.from_numpy(sf.read(target, dtype="float32", always_2d=True)[0].mean(1))[None]
with torch.inference_mode():
    out = model(**processor(text=[text], input_audio=[x], separated_audio=[y],
                            sampling_rate=48000))
print(json.dumps({k: float(getattr(out, k)) for k in
                  ("overall", "recall", "precision", "faithfulness")}))
"""

WINDOWS = """
import json, sys, numpy as np, torch
from remote_payload.judge import Judge
judge = Judge(sys.argv[1], "cpu")
rng = np.random.default_rng(0)
mix = (0.1 * rng.standard_normal(3 * 48000)).astype(np.float32)
scores = judge.score(mix, 0.5 * mix, "speech")
try:
    judge._one_pass(mix, 0.5 * mix, "speech")
    whole = "ok"
except Exception as exc:
    whole = type(exc).__name__
print(json.dumps({"window_s": judge.window_samples / 48000, "scores": scores, "whole": whole}))
"""


def test_real_judge_limit_is_real_and_long_items_are_windowed(real_python: str,
                                                              tiny_model: Path,
                                                              tmp_path: Path):
    short = _judge(real_python, tiny_model, tmp_path / "judge32", max_positions=32)
    proc = subprocess.run([real_python, "-c", WINDOWS, str(short)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["window_s"] == pytest.approx(31 * 1920 / 48000)  # 32 positions, less CLS
    assert found["whole"] != "ok"  # 75 frames in one pass: the real RoPE table is too short
    assert found["scores"]["windows"] == 3  # 3 s in windows of at most 1.24 s


def test_real_ranker_load_failures_name_the_component(real_python: str, tiny_model: Path,
                                                      tmp_path: Path):
    source = write_audio(tmp_path / "in.wav", seconds=0.5)
    empty = {"HF_HOME": str(tmp_path / "empty-hf-home")}
    offline = {**empty, "HF_HUB_OFFLINE": "1"}  # the job's preflight names what is missing
    # a Hub that cannot be reached but is not declared offline: the load itself fails, in
    # the real JudgeRanker (rankers.load_failure names it)
    unreachable = {**empty, "HF_ENDPOINT": "http://127.0.0.1:9"}
    clap = _variant(tiny_model, tmp_path / "clap", text_ranker={"kind": "clap"})
    hub_judge = _variant(tiny_model, tmp_path / "hubjudge", text_ranker={"kind": "judge"})
    cases = [(Settings(model=str(clap), device="cpu", rerank=2), offline,
              ("laion_clap", "CLAP", "remote-sep bootstrap")),
             (Settings(model=str(hub_judge), device="cpu", rerank=2), unreachable,
              ("the judge ranker facebook/sam-audio-judge", "--prefetch --rerank")),
             (Settings(model=str(hub_judge), device="cpu", rerank=2), offline,
              ("facebook/sam-audio-judge", "--prefetch")),
             (Settings(model=str(tiny_model), device="cpu", score=True), offline,
              ("facebook/sam-audio-judge", "--prefetch", "--score"))]
    for index, (settings, env, words) in enumerate(cases):
        job = tmp_path / f"job{index}"
        proc, events = run_real(real_python, job, settings,
                                [Item("r", str(source), ["x"], ["out/r"])], env=env)
        errors = of(events, "error")
        assert [e["kind"] for e in errors] == ["not_provisioned"], proc.stderr[-2000:]
        for word in words:
            assert word in errors[0]["message"], (index, errors[0]["message"])
        assert "Traceback" not in errors[0]["message"]
        assert not of(events, "item_done") and not (job / "out").exists()
    assert sf.info(str(source)).frames  # the input is untouched
