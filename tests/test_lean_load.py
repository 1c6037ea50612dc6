"""The lean model load (remote_payload/loading.py) gives the naive load's output with less RAM.

Each load runs in its own child process (tests/lean_probe.py), so its peak RSS (VmHWM) is its
own. With the stand-in always; with the real sam_audio classes (a tiny random model built by
tests/real_sam_tiny.py) when REMOTE_SEP_REAL_SAM_PYTHON is set, like test_payload_contract.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from payload_util import ROOT, of, run_payload, standin_env, write_audio

from remote_payload.manifest import Item, Settings

PROBE = str(ROOT / "tests" / "lean_probe.py")
BALLAST_MB = 96  # stand-in weights: 96 MB "DiT" + 96 MB "vision encoder", fp32
REAL_ENV = "REMOTE_SEP_REAL_SAM_PYTHON"
REAL_TIMEOUT = pytest.mark.timeout(1800)  # a naive load of the tiny model: 40 s idle, more busy


def probe(python: str, *args: str, env: dict[str, str] | None = None,
          timeout: float = 600) -> dict:
    proc = subprocess.run([python, PROBE, *args], capture_output=True, text=True,
                          env=env or standin_env(), timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}


def both_ways(python: str, folder: Path, dtype: str, tmp: Path, env: dict[str, str]):
    lean = probe(python, "load", str(folder), dtype, str(tmp / "lean.npy"), env=env)
    naive = probe(python, "load", str(folder), dtype, str(tmp / "naive.npy"),
                  env={**env, "REMOTE_SEP_NAIVE_LOAD": "1"})
    return lean, naive, np.load(tmp / "lean.npy"), np.load(tmp / "naive.npy")


@pytest.fixture(scope="module")
def standin_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lean") / "standin model"
    probe(sys.executable, "make-standin", str(folder), str(BALLAST_MB))
    return folder


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_standin_lean_output_identical_and_less_ram(standin_model: Path, dtype: str,
                                                    tmp_path: Path):
    lean, naive, got, want = both_ways(sys.executable, standin_model, dtype, tmp_path,
                                       standin_env())
    np.testing.assert_array_equal(got, want)
    assert (lean["load"]["loader"], naive["load"]["loader"]) == ("lean", "naive")
    assert lean["load"]["components_off"] == ["span_predictor", "text_ranker",
                                              "vision_encoder", "visual_ranker"]
    assert "vision_encoder" not in naive["load"]["components_off"]
    assert lean["warnings"] == [] and lean["vision"] == "LazyVisionEncoder"
    # naive: random init of both ballasts, then torch.load of both (4 x 96 MB touched); lean
    # touches at most the "DiT" once (cast: one tensor at a time, its mapped pages dropped)
    saved_mb = (naive["peak_kb"] - lean["peak_kb"]) / 1024
    assert saved_mb > 2 * BALLAST_MB, (lean["peak_kb"], naive["peak_kb"])


def test_standin_checkpoint_that_cannot_be_mapped_falls_back_with_a_warning(
        standin_model: Path, tmp_path: Path):
    legacy = tmp_path / "legacy model"
    legacy.mkdir()
    shutil.copy(standin_model / "config.json", legacy / "config.json")
    state = torch.load(standin_model / "checkpoint.pt", weights_only=True)
    torch.save(state, legacy / "checkpoint.pt", _use_new_zipfile_serialization=False)
    lean, naive, got, want = both_ways(sys.executable, legacy, "fp32", tmp_path, standin_env())
    np.testing.assert_array_equal(got, want)
    assert lean["load"]["loader"] == "naive" and "memory-map" in lean["load"]["lean_fallback"]
    assert len(lean["warnings"]) == 1 and "naive" in lean["warnings"][0]


def test_standin_vision_encoder_built_on_the_first_video_equals_the_eager_one(
        standin_model: Path):
    result = probe(sys.executable, "video", str(standin_model))
    assert result["equal"] and result["built"] == "PerceptionEncoder"


def test_standin_hub_ids_load_as_before_and_the_load_event_says_how(tmp_path: Path):
    """Stand-in Hub ids resolve through its own from_pretrained (naive, quietly)."""
    source = write_audio(tmp_path / "in.wav", seconds=0.5)
    rc, events, proc = run_payload(tmp_path / "job", [Item("a", str(source), ["x"], ["out/a"])],
                                   Settings(device="cpu"))
    assert rc == 0, proc.stderr[-2000:]
    (load,) = of(events, "load")
    assert load["loader"] == "naive" and not of(events, "warning")


# -- the real classes --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_python() -> str:
    python = os.environ.get(REAL_ENV)
    if not python:
        pytest.skip(f"the real sam_audio is not set up ({REAL_ENV}; docs/real-model-check.md)")
    return python


@pytest.fixture(scope="module")
def real_tiny(real_python: str, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("real-lean") / "tiny"
    proc = subprocess.run([real_python, str(ROOT / "tests" / "real_sam_tiny.py"), str(folder)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def real_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM_STANDIN_")}
    return {**env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


@REAL_TIMEOUT
def test_real_lean_output_bit_identical_and_less_ram(real_python: str, real_tiny: Path,
                                                     tmp_path: Path):
    lean, naive, got, want = both_ways(real_python, real_tiny, "fp32", tmp_path, real_env())
    np.testing.assert_array_equal(got, want)
    assert (lean["load"]["loader"], naive["load"]["loader"]) == ("lean", "naive")
    assert "vision_encoder" in lean["load"]["components_off"] and lean["warnings"] == []
    # the tiny checkpoint is ~0.55 GB (the codec decoder keeps its real width): naive holds
    # it twice plus the vision encoder; lean maps it and touches none of it while loading
    assert naive["peak_kb"] - lean["peak_kb"] > 400 * 1024, (lean["peak_kb"], naive["peak_kb"])


@REAL_TIMEOUT
def test_real_build_writes_none_of_the_weights_it_will_map(real_python: str, real_tiny: Path):
    """Building without init really touches no weights, even after transformers (the T5 load)
    has put back the init functions it saw at import (it did, before _with_init re-installs)."""
    small = probe(real_python, "build", str(real_tiny), "0", env=real_env(), timeout=900)
    big = probe(real_python, "build", str(real_tiny), "1", env=real_env(), timeout=900)
    extra_dit_kb = big["dit_kb"] - small["dit_kb"]
    assert extra_dit_kb > 300 * 1024
    # the codec's weight norm computes its weights at build time (the naive path too): the
    # same in both; a DiT 330 MB bigger must cost next to nothing more
    assert big["grown_kb"] - small["grown_kb"] < extra_dit_kb / 4, (small, big)


@REAL_TIMEOUT
def test_real_vision_encoder_built_on_the_first_video_equals_the_eager_one(
        real_python: str, real_tiny: Path):
    result = probe(real_python, "video", str(real_tiny), env=real_env(), timeout=900)
    assert result["equal"] and result["built"] == "PerceptionEncoder", result


@REAL_TIMEOUT
def test_real_hub_id_from_the_cache_loads_lean(real_python: str, real_tiny: Path,
                                               tmp_path: Path):
    """A Hub id resolves through snapshot_download (offline: the HF cache), as upstream does."""
    home = tmp_path / "hf"
    snapshot = home / "hub" / "models--facebook--sam-audio-small" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "checkpoint.pt"):
        (snapshot / name).symlink_to(real_tiny / name)
    (home / "hub" / "models--facebook--sam-audio-small" / "refs").mkdir()
    (home / "hub" / "models--facebook--sam-audio-small" / "refs" / "main").write_text("0" * 40)
    env = {**real_env(), "HF_HOME": str(home)}
    result = probe(real_python, "load", "small", "fp32", str(tmp_path / "hub.npy"), env=env,
                   timeout=900)
    assert result["load"]["loader"] == "lean" and result["warnings"] == []
