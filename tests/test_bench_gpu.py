"""bench/bench_gpu.py: its CPU smoke mode runs (stand-in always, real classes when set up),
its budget bounds it, and its fit feeds the engine's batch sizing (remote_payload/vram_fit)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from payload_util import ROOT, standin_env

from remote_payload import vram_fit

BENCH = str(ROOT / "bench" / "bench_gpu.py")
SMOKE = ["--device", "cpu", "--tiny", "--chunks", "0.25,0.5", "--batches", "1,2"]


def run_bench(python: str, args: list[str], env: dict[str, str], timeout: float = 900) -> dict:
    proc = subprocess.run([python, BENCH, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "anchor: A100-80GB bf16 stripped large, 30 s: rtf 0.146" in proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_smoke_mode_with_the_standin_measures_every_point():
    report = run_bench(sys.executable, [*SMOKE, "--dtypes", "fp32,bf16"], standin_env())
    assert report["standin"] and report["device"] == "cpu"
    grid = {(p["dtype"], p["chunk_s"], p["batch"]) for p in report["points"]}
    assert grid == {(d, c, b) for d in ("fp32", "bf16") for c in (0.25, 0.5) for b in (1, 2)}
    assert all(p["rtf"] > 0 and p["seconds"] > 0 for p in report["points"])


def test_budget_bounds_the_run():
    report = run_bench(sys.executable, [*SMOKE, "--budget-seconds", "0"], standin_env(),
                       timeout=300)
    assert report["points"] and all(p.get("skipped") == "budget" for p in report["points"])


def test_smoke_mode_with_the_real_classes():
    python = os.environ.get("REMOTE_SEP_REAL_SAM_PYTHON")
    if not python:
        pytest.skip("the real sam_audio is not set up (REMOTE_SEP_REAL_SAM_PYTHON)")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SAM_STANDIN_")},
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    report = run_bench(python, ["--device", "cpu", "--tiny", "--chunks", "0.25",
                                "--batches", "1,2", "--dtypes", "fp32"], env, timeout=1500)
    assert not report["standin"]
    assert [p["batch"] for p in report["points"]] == [1, 2]
    assert all(p["rtf"] > 0 for p in report["points"])


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_recovers_a_line_and_the_engine_sizing_uses_it(tmp_path: Path, monkeypatch):
    bench = load_bench()
    a, b = 300 * 2**20, 40 * 2**20  # 300 MiB fixed + 40 MiB per audio second
    points = [{"size": "large", "dtype": "bf16", "chunk_s": c, "batch": n,
               "peak_vram_mb": (a + b * c * n) / 2**20} for c in (10, 30) for n in (1, 2, 4)]
    fits = bench.fit(points)
    got = fits["large/bf16"]
    assert abs(got["a_bytes"] - a) < 2**20 and abs(got["b_bytes_per_audio_second"] - b) < 2**16

    # written into a copy of remote_payload/vram_fit.py, which then holds exactly that fit
    copy = tmp_path / "vram_fit.py"
    copy.write_text((ROOT / "remote_payload" / "vram_fit.py").read_text())
    monkeypatch.setattr(bench, "FIT_MODULE", copy)
    bench.write_fit_module(fits, "NVIDIA Test GPU", None)
    spec = importlib.util.spec_from_file_location("fitted", copy)
    fitted = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fitted)
    assert fitted.MEASURED_ON == "NVIDIA Test GPU"
    assert fitted.FIT["large/bf16"] == (got["a_bytes"], got["b_bytes_per_audio_second"])

    # the engine's rule: the largest batch with a + b * seconds * batch <= free memory
    monkeypatch.setattr(vram_fit, "FIT", fitted.FIT)
    free = a + b * 30 * 5 + 1
    assert vram_fit.batch_that_fits(free, "facebook/sam-audio-large", "bf16", 30.0, 32) == 5
    assert vram_fit.batch_that_fits(free, "facebook/sam-audio-large", "bf16", 30.0, 4) == 4
    assert vram_fit.batch_that_fits(free, "facebook/sam-audio-large", "fp32", 30.0, 32) == 2
    # no fit for small: the prior (the earlier guess, 256 MiB per second)
    assert vram_fit.batch_that_fits(2**30 * 16, "small", "bf16", 10.0, 32) == 6
