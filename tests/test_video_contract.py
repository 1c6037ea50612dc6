"""Visual prompts through the payload against the REAL sam_audio (tiny -tv model, CPU).

Skipped unless ``REMOTE_SEP_REAL_SAM_PYTHON`` is set (see tests/test_payload_contract.py).
The model comes from tests/real_sam_tiny_tv.py: real classes, the PE vision encoder at its
real output width, the video gate open, so a video really changes the output."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from payload_util import ROOT, of, write_audio
from test_payload_contract import ENV_VAR, TIMEOUT, _probe, check_outputs, run_real
from test_video_payload import write_video

from remote_payload.manifest import Item, Settings

pytestmark = pytest.mark.timeout(TIMEOUT * 3)  # several real-model runs per test


@pytest.fixture(scope="module")
def real_python() -> str:
    python = os.environ.get(ENV_VAR)
    if not python:
        pytest.skip(f"the real sam_audio is not set up: set {ENV_VAR} (docs/real-model-check.md)")
    reason = _probe(python)
    if reason:  # asked for explicitly: a broken setup fails instead of hiding in a skip
        pytest.fail(reason)
    return python


@pytest.fixture(scope="module")
def tiny_tv(real_python: str, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("real-sam-tv") / "tiny-tv"
    proc = subprocess.run([real_python, str(ROOT / "tests" / "real_sam_tiny_tv.py"),
                           str(folder)], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_real_video_prompt_bf16_chunked_reranked(real_python: str, tiny_tv: Path,
                                                  tmp_path: Path):
    """Two chunks, each with the frames of its time range, in bf16: the real vision encoder
    turns frames into float32 inside its transform, so a bf16 model crashes on any video
    unless the payload runs it under autocast (remote_payload/video.py fit_vision_encoder)."""
    source = write_audio(tmp_path / "in.wav", seconds=1.5, rate=48_000, channels=2)
    ref, _, _ = write_video(tmp_path / "v", count=38, height=24, width=40)
    settings = Settings(model=str(tiny_tv), device="cpu", dtype="bf16", chunk_seconds=1.0,
                        overlap_seconds=0.25, seed=2, ode_method="euler", ode_step_size=0.5,
                        video=True, rerank=2)
    proc, events = run_real(real_python, tmp_path / "job", settings,
                            [Item("b", str(source), [""], ["out/b"], video=ref)])
    assert proc.returncode == 0, (of(events, "error"), proc.stderr[-3000:])
    assert of(events, "item_start")[0]["chunks"] == 2
    check_outputs(of(events, "item_done")[0], source)
    # this config has no rankers; a video job keeps the visual ranker's slot (rerank 2)
    assert "visual_ranker" not in of(events, "load")[0]["components_off"]


# The real API called directly, as upstream's README does for a visual prompt.
DIRECT_CALL = """
import sys
import numpy as np, soundfile as sf, torch
from sam_audio import SAMAudio, SAMAudioProcessor
from remote_payload.engine import batch_seed
folder, path, frames, masks, seed, item, out = sys.argv[1:]
model = SAMAudio.from_pretrained(folder, text_ranker=None, visual_ranker=None,
                                 span_predictor=None).eval()
processor = SAMAudioProcessor.from_pretrained(folder)
audio = sf.read(path, dtype="float32")[0]
frames = torch.from_numpy(np.load(frames))
masks = np.load(masks)
masks = torch.from_numpy(np.unpackbits(masks, axis=-1, count=frames.shape[-1]))
outputs = []
for video in (processor.mask_videos([frames], [masks]),  # what the payload runs
              processor.mask_videos([frames], [torch.zeros_like(masks)]),  # no object blanked
              None):  # no video at all
    batch = processor(descriptions=[""], audios=[torch.from_numpy(audio)[None]],
                      masked_videos=video)
    torch.manual_seed(batch_seed(int(seed), item, 0, 0, 0, 1))
    result = model.separate(batch, ode_opt={"method": "euler", "options": {"step_size": 0.5}})
    outputs.append(result.target[0][:len(audio)].numpy())
np.save(out, np.stack(outputs))
"""


def test_real_one_chunk_video_equals_the_direct_api_call(real_python: str, tiny_tv: Path,
                                                         tmp_path: Path):
    # 1.3 s: 33 latent frames; 33 frames at 25 fps: the processor's linspace is the identity
    source = write_audio(tmp_path / "in.wav", seconds=1.3, rate=48_000, subtype="FLOAT")
    ref, _, _ = write_video(tmp_path / "v", count=33, height=24, width=40)
    settings = Settings(model=str(tiny_tv), device="cpu", dtype="fp32", chunk_seconds=10.0,
                        seed=4, subtype="FLOAT", ode_method="euler", ode_step_size=0.5,
                        video=True)
    proc, events = run_real(real_python, tmp_path / "job", settings,
                            [Item("r", str(source), [""], ["out/r"], video=ref)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    stems = check_outputs(of(events, "item_done")[0], source)
    reference = tmp_path / "direct.npy"
    direct = subprocess.run([real_python, "-c", DIRECT_CALL, str(tiny_tv), str(source),
                             ref["frames"], ref["masks"], "4", "r", str(reference)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert direct.returncode == 0, direct.stderr[-3000:]
    masked, unmasked, no_video = np.load(reference)
    np.testing.assert_array_equal(stems["target"][:, 0].astype(np.float32), masked)
    # the gate is open: the video changes the output, and so does its mask
    assert np.abs(masked - unmasked).max() > 1e-4 and np.abs(masked - no_video).max() > 1e-4
