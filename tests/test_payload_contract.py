"""The payload against the REAL sam_audio (tiny random config, CPU). Skipped where it is absent.

The real package is not on PyPI (install it from a fetched copy of
github facebookresearch/sam-audio with its git-only dependencies to run this).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from payload_util import ROOT, of, read_events, write_audio

from remote_payload.manifest import Item, Manifest, Settings


def _real_sam_audio() -> str | None:
    """Why the real package cannot be used here, or None when it can."""
    if importlib.util.find_spec("sam_audio") is None:
        return "the real sam_audio is not installed (not on PyPI; install from its git repo)"
    import sam_audio

    if getattr(sam_audio, "IS_STANDIN", False):
        return "the importable sam_audio is the test stand-in"
    return None


REASON = _real_sam_audio()


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_real_model_from_a_tiny_random_config(tmp_path: Path):
    import torch
    from sam_audio import SAMAudio
    from sam_audio.model.config import SAMAudioConfig

    folder = tmp_path / "tiny-model"
    folder.mkdir()
    config = json.loads(os.environ.get("SAM_AUDIO_TINY_CONFIG", "{}"))
    if not config:
        pytest.skip("set SAM_AUDIO_TINY_CONFIG to a JSON config small enough for the CPU")
    model = SAMAudio(SAMAudioConfig(**config))
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(model.state_dict(), folder / "checkpoint.pt")
    audio = write_audio(tmp_path / "m.wav", seconds=1.5)
    job = tmp_path / "job"
    job.mkdir()
    settings = Settings(model=str(folder), device="cpu", chunk_seconds=1.0, overlap_seconds=0.25)
    item = Item("r", str(audio), ["speech"], ["out/r"])
    (job / "manifest.json").write_text(Manifest("c", settings, [item]).to_json())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "remote_payload", "run", "--manifest",
                           "manifest.json", "--events", "events.jsonl"], cwd=job, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = of(read_events(job / "events.jsonl"), "item_done")
    assert len(done) == 1
    import soundfile as sf

    assert sf.info(done[0]["outputs"]["target"]["path"]).frames == sf.info(str(audio)).frames
