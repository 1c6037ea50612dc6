"""Visual prompts in the payload (remote_payload/video.py) with the stand-in sam_audio.

The stand-in adds VIDEO_GAIN * (mean of the masked frame) to the target over each latent
frame (tests/standins/sam_audio/_video.py), so the difference between a run with a video
and the same seeded run without one is known exactly: it tells which frame every latent frame
of every chunk got, and that masked pixels were blanked."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from payload_util import STANDINS, of, run_payload, standin_env, write_audio

from remote_payload.audio_io import probe
from remote_payload.chunking import overlap_add
from remote_payload.manifest import HOP_LENGTH, Item, ManifestError, Settings
from remote_payload.separation import make_plan
from remote_payload.video import VideoError, VideoSource, open_video

sys.path.insert(0, str(STANDINS))
from sam_audio._video import VIDEO_GAIN  # noqa: E402

RATE = 48_000


def write_video(folder: Path, count: int, height: int = 6, width: int = 10,
                seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """Random frames with a brightness that differs per frame, and a box mask; the files as
    the laptop uploads them. Returns (Item.video, frames, masks 0/1)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (count, 3, height, width), dtype=np.uint8)
    frames = (frames // 2 + (np.arange(count) * 97 % 128)[:, None, None, None]).astype(np.uint8)
    masks = np.zeros((count, 1, height, width), dtype=np.uint8)
    masks[:, :, 1:4, 2:7] = 1
    masks[::3, :, 0, :] = 1  # differs over time too
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "frames.npy", frames)
    np.save(folder / "masks.npy", np.packbits(masks, axis=-1))
    return ({"frames": str(folder / "frames.npy"), "masks": str(folder / "masks.npy"),
             "fps": 25.0}, frames, masks)


def frame_features(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """What the stand-in's encoder gives each frame: the mean of the masked frame in [0, 1]."""
    kept = frames.astype(np.float64) * (masks == 0)
    return kept.mean(axis=(1, 2, 3)) / 255.0


def expected_term(length: int, plan, features: np.ndarray, fps: float) -> np.ndarray:
    """The video's share of the target: per chunk, latent frame j gets the frame nearest to
    its start time (computed here, independently of the payload), overlap-added."""
    outputs = []
    for chunk in plan:
        latent = math.ceil(chunk.length / HOP_LENGTH)
        times = (chunk.start + np.arange(latent) * HOP_LENGTH) / RATE
        picks = np.clip(np.rint(times * fps), 0, len(features) - 1).astype(int)
        outputs.append(VIDEO_GAIN * np.repeat(features[picks], HOP_LENGTH)[: chunk.length])
    out = overlap_add(plan, iter(outputs))
    assert len(out) == length
    return out[:, 0]


def _settings(**kw) -> Settings:
    base = dict(device="cpu", subtype="FLOAT", seed=3, chunk_seconds=1.0, overlap_seconds=0.3,
                video=True)
    return Settings(**{**base, **kw})


def _target(done: dict) -> np.ndarray:
    return sf.read(done["outputs"]["target"]["path"], dtype="float64")[0]


@pytest.mark.parametrize("fps", [25.0, 10.0])
def test_each_chunk_gets_the_frames_of_its_time_range(tmp_path: Path, fps: float):
    source = write_audio(tmp_path / "in.wav", seconds=2.6, rate=RATE, subtype="FLOAT")
    ref, frames, masks = write_video(tmp_path / "v", count=math.ceil(2.6 * fps) - 2)
    ref["fps"] = fps  # fewer frames than the audio lasts: the last frame holds
    settings = _settings()
    plain = Item("p", str(source), ["speech"], ["out/p"])
    visual = Item("p", str(source), ["speech"], ["out/v"], video=ref)
    code, events, proc = run_payload(tmp_path / "job", [visual], settings)
    assert code == 0, proc.stderr[-2000:]
    (done,) = of(events, "item_done")
    (start,) = of(events, "item_start")
    assert start["video_frames"] == len(frames) and start["chunks"] == 4
    code, ref_events, proc = run_payload(tmp_path / "ref", [plain], _settings(video=False))
    assert code == 0, proc.stderr[-2000:]
    difference = _target(done) - _target(of(ref_events, "item_done")[0])
    plan = make_plan(probe(str(source)), settings, 1.0)
    want = expected_term(len(difference), plan, frame_features(frames, masks), fps)
    np.testing.assert_allclose(difference, want, atol=2e-6)
    assert np.abs(want).max() > 0.01  # the video really moved the target
    residual = sf.read(done["outputs"]["residual"]["path"], dtype="float64")[0]
    audio = sf.read(str(source), dtype="float64")[0]
    np.testing.assert_allclose(_target(done) + residual, audio, atol=1e-5)


def test_masked_pixels_are_blanked_and_empty_text_is_allowed(tmp_path: Path):
    source = write_audio(tmp_path / "in.wav", seconds=0.5, rate=RATE, subtype="FLOAT")
    ref, frames, masks = write_video(tmp_path / "v", count=13)
    full = np.ones_like(masks)  # everything masked: the whole frame blanked, no video term
    np.save(tmp_path / "v" / "all.npy", np.packbits(full, axis=-1))
    items = [Item("a", str(source), [""], ["out/a"], video=ref),
             Item("b", str(source), [""], ["out/b"], video={**ref, "masks": str(
                 tmp_path / "v" / "all.npy")}),
             Item("c", str(source), ["x"], ["out/c"])]
    # no noise: items of other ids get other seeds
    code, events, proc = run_payload(tmp_path / "job", items, _settings(),
                                     env=standin_env(SAM_STANDIN_NOISE="0"))
    assert code == 0, proc.stderr[-2000:]
    got = {d["item"]: _target(d) for d in of(events, "item_done")}
    np.testing.assert_allclose(got["b"], got["c"], atol=2e-6)  # all blanked == no video
    assert np.abs(got["a"] - got["c"]).max() > 0.01


def test_bad_video_refs_are_bad_config_for_that_item_only(tmp_path: Path):
    source = write_audio(tmp_path / "in.wav", seconds=0.5, rate=RATE)
    ref, frames, _ = write_video(tmp_path / "v", count=5)
    np.save(tmp_path / "v" / "short.npy", np.zeros((4, 1, 6, 2), dtype=np.uint8))
    np.save(tmp_path / "v" / "float.npy", frames.astype(np.float32))
    items = [Item("missing", str(source), ["x"], ["out/m"], video={**ref, "frames": "nope.npy"}),
             Item("count", str(source), ["x"], ["out/c"],
                  video={**ref, "masks": str(tmp_path / "v" / "short.npy")}),
             Item("dtype", str(source), ["x"], ["out/d"],
                  video={**ref, "frames": str(tmp_path / "v" / "float.npy")}),
             Item("ok", str(source), ["x"], ["out/ok"], video=ref)]
    code, events, proc = run_payload(tmp_path / "job", items, _settings())
    errors = {e["item"]: e for e in of(events, "error")}
    assert {k: e["kind"] for k, e in errors.items()} == {
        "missing": "bad_config", "count": "bad_config", "dtype": "bad_config"}
    assert "nope.npy" in errors["missing"]["message"]
    assert "expected (5, 1, 6, 2)" in errors["count"]["message"]
    assert "uint8" in errors["dtype"]["message"]
    assert [d["item"] for d in of(events, "item_done")] == ["ok"]
    assert code == 4 and "Traceback" not in proc.stderr

    # a job not declared as visual (settings.video false) refuses an item with a video
    code, events, _ = run_payload(tmp_path / "job2", items[-1:], _settings(video=False))
    assert [e["kind"] for e in of(events, "error")] == ["bad_config"]
    assert "settings.video" in of(events, "error")[0]["message"]


def test_item_video_shape_is_checked_by_the_manifest():
    for bad, words in [("x", "must be an object"), ({"frames": "a"}, "exactly the keys"),
                       ({"frames": "a", "masks": "", "fps": 25}, "video.masks"),
                       ({"frames": "a", "masks": "b", "fps": 0}, "video.fps"),
                       ({"frames": "a", "masks": "b", "fps": True}, "video.fps")]:
        with pytest.raises(ManifestError, match=words):
            Item("i", "in.wav", ["x"], ["out/i"], video=bad).validate()
    good = {"frames": "a", "masks": "b", "fps": 25}
    with pytest.raises(ManifestError, match="a stem split takes no video"):
        Item("i", "in.wav", ["x"], ["out/i"], video=good, stems=["vocals"]).validate()


def test_bf16_model_takes_the_video(tmp_path: Path):
    """The real vision encoder turns frames into float32 inside its transform: a bf16 model
    crashes on any video unless the payload runs it under autocast (remote_payload/video.py)."""
    source = write_audio(tmp_path / "in.wav", seconds=0.5, rate=RATE)
    ref, _, _ = write_video(tmp_path / "v", count=13)
    code, events, proc = run_payload(tmp_path / "job", [Item("b", str(source), ["x"], ["out/b"],
                                                             video=ref)], _settings(dtype="bf16"))
    assert code == 0, (of(events, "error"), proc.stderr[-1500:])


def test_visual_ranker_loads_only_for_a_video_job(tmp_path: Path):
    """The stand-in's default config names ImageBind as the visual ranker (like the released
    ones): a text job with --rerank never builds it; a video job does, and here, with no
    imagebind package, fails naming it (remote_payload/rankers.py)."""
    source = write_audio(tmp_path / "in.wav", seconds=0.5, rate=RATE)
    ref, _, _ = write_video(tmp_path / "v", count=13)
    log = tmp_path / "loads.jsonl"
    env = standin_env(SAM_STANDIN_LOAD_LOG=str(log))
    code, _, proc = run_payload(tmp_path / "text", [Item("i", str(source), ["x"], ["out/i"])],
                                _settings(rerank=2, video=False), env=env)
    assert code == 0, proc.stderr[-1500:]
    assert json.loads(log.read_text().splitlines()[0])["overrides"] == {
        "visual_ranker": None, "span_predictor": None}
    code, events, _ = run_payload(tmp_path / "visual", [Item("i", str(source), ["x"], ["out/i"],
                                                             video=ref)],
                                  _settings(rerank=2), env=env)
    (error,) = of(events, "error")
    assert error["kind"] == "not_provisioned" and "visual ranker ImageBind" in error["message"]


def test_video_source_indices_hold_the_last_frame():
    frames = np.zeros((3, 3, 2, 2), dtype=np.uint8)
    source = VideoSource(frames, np.zeros((3, 1, 2, 1), dtype=np.uint8), 25.0)
    assert source.indices(0, 5 * HOP_LENGTH).tolist() == [0, 1, 2, 2, 2]
    assert source.indices(HOP_LENGTH // 2 + 1, 1).tolist() == [1]  # nearest, not floor
    with pytest.raises(VideoError):
        open_video("/", {"frames": "/nonexistent.npy", "masks": "/x.npy", "fps": 25})


def test_bf16_video_through_the_lean_load(tmp_path: Path):
    """A model folder loads lean: the vision encoder is built on the first video
    (remote_payload/loading.py); the bf16 fit must cover that encoder too."""
    from lean_probe import make_standin

    make_standin(tmp_path / "model", 0)  # imports the stand-in sam_audio (tests/standins)
    source = write_audio(tmp_path / "in.wav", seconds=0.5, rate=RATE)
    ref, _, _ = write_video(tmp_path / "v", count=13)
    code, events, proc = run_payload(
        tmp_path / "job", [Item("b", str(source), ["x"], ["out/b"], video=ref)],
        _settings(dtype="bf16", model=str(tmp_path / "model")))
    assert code == 0, (of(events, "error"), proc.stderr[-1500:])
    assert of(events, "load")[0]["loader"] == "lean"


def test_lean_load_gives_the_naive_output_for_a_video(tmp_path: Path):
    """The lean load builds the vision encoder inside the first separate(), after the job
    seeded the RNG; building draws from it (the real PE's torch.randn parameters), so
    without care the first batch's noise shifts and a lean job differs from a naive one
    (found with the real classes, tests/test_video_contract.py)."""
    from lean_probe import make_standin

    make_standin(tmp_path / "model", 0)
    source = write_audio(tmp_path / "in.wav", seconds=0.5, rate=RATE, subtype="FLOAT")
    ref, _, _ = write_video(tmp_path / "v", count=13)
    targets = {}
    for name, extra in (("lean", {}), ("naive", {"REMOTE_SEP_NAIVE_LOAD": "1"})):
        code, events, proc = run_payload(
            tmp_path / name, [Item("b", str(source), ["x"], ["out/b"], video=ref)],
            _settings(model=str(tmp_path / "model")), env=standin_env(**extra))
        assert code == 0, (of(events, "error"), proc.stderr[-1500:])
        assert of(events, "load")[0]["loader"] == name
        targets[name] = _target(of(events, "item_done")[0])
    np.testing.assert_array_equal(targets["lean"], targets["naive"])
