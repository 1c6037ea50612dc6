"""Chunk seams (linear time-invariant stand-in) and the OOM back-off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from payload_util import of, run_payload, standin_env, write_audio

from remote_payload.manifest import Item, Settings


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


def test_chunked_equals_unchunked_for_a_linear_time_invariant_model(tmp_path: Path):
    # 183 whole latent frames: like the real codec, the stand-in reflect-pads a pass to whole
    # frames, which changes its last samples; here only the seams may differ
    audio = write_audio(tmp_path / "lti.wav", seconds=7.32, rate=48000, subtype="FLOAT")
    item = Item("l", str(audio), ["anything"], ["out/l"])
    env = standin_env(SAM_STANDIN_MODE="lti")
    whole = Settings(device="cpu", chunk_seconds=30, overlap_seconds=1, subtype="FLOAT")
    chunked = Settings(device="cpu", chunk_seconds=2, overlap_seconds=0.5, batch_size=3,
                       subtype="FLOAT")
    outputs = {}
    for name, settings in (("whole", whole), ("chunked", chunked)):
        rc, events, proc = run_payload(tmp_path / name, [item], settings, env=env)
        assert rc == 0, proc.stderr
        outputs[name] = sf.read(tmp_path / name / "out/l_target.wav")[0]
        outputs[name + "_chunks"] = of(events, "item_start")[0]["chunks"]
    assert outputs["whole_chunks"] == 1 and outputs["chunked_chunks"] >= 4
    assert len(outputs["whole"]) == len(outputs["chunked"]) == sf.info(str(audio)).frames
    assert snr_db(outputs["whole"], outputs["chunked"]) >= 60


def test_oom_backs_off_batch_then_chunk_and_finishes(tmp_path: Path):
    audio = write_audio(tmp_path / "m.wav", seconds=4.0)
    item = Item("o", str(audio), ["voice"], ["out/o"])
    # 2 s chunks x 2 per batch = 192k samples; 1 s x 1 = 48k fits under 60k
    settings = Settings(device="cpu", chunk_seconds=2, overlap_seconds=0.5, batch_size=2,
                        min_chunk_seconds=0.5)
    env = standin_env(SAM_STANDIN_OOM_ABOVE="60000")
    rc, events, proc = run_payload(tmp_path / "job", [item], settings, env=env)
    assert rc == 0, proc.stderr
    warnings = of(events, "warning")
    assert [w["code"] for w in warnings] == ["oom_backoff", "oom_backoff"]
    assert "1 chunk(s) per batch" in warnings[0]["message"]
    assert "1 s chunks" in warnings[1]["message"]
    assert sf.info(str(tmp_path / "job/out/o_target.wav")).frames == sf.info(str(audio)).frames
    assert not list((tmp_path / "job/out").glob(".*part*"))
