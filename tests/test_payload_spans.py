"""Span prompts and predicted spans through the payload (stand-in sam_audio, lti mode).

The stand-in acts on anchors frame by frame (``+`` frame: the target is the input, ``-``
frame: silence; tests/standins/sam_audio/anchors.py) with the real processor's frame
mapping, so where a span acted can be checked to the sample. The file is 67 latent frames
and the 1 s chunks with 0.25 s overlap start on frame boundaries (0, 14, 28, 42 frames), so
chunked and whole-file runs see the same frames.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from payload_util import STANDINS, of, run_payload, standin_env

from remote_payload.manifest import Item, Settings

RATE, HOP = 48_000, 1920
FRAMES = 67
BURSTS = [(10, 20), (40, 55)]  # frames: 0.4-0.8 s and 1.6-2.2 s
SPANS = [["+", 0.4, 0.8], ["-", 1.6, 2.2]]
WHOLE = dict(device="cpu", chunk_seconds=30, overlap_seconds=1, subtype="FLOAT")
CHUNKED = dict(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25, batch_size=3,
               subtype="FLOAT")


def bursts(path: Path) -> Path:
    """Quiet noise with two loud tone bursts on known frames (what the predictor finds)."""
    t = np.arange(FRAMES * HOP) / RATE
    audio = 0.01 * np.random.default_rng(3).standard_normal(len(t))
    for lo, hi in BURSTS:
        part = slice(lo * HOP, hi * HOP)
        audio[part] += 0.3 * np.sin(2 * np.pi * 440 * t[part])
    sf.write(str(path), audio.astype(np.float32), RATE, subtype="FLOAT")
    return path


def frames(lo: int, hi: int) -> slice:
    return slice(lo * HOP, hi * HOP)


def separate(tmp_path: Path, name: str, item: Item, **settings) -> tuple[np.ndarray, list]:
    rc, events, proc = run_payload(tmp_path / name, [item], Settings(**settings),
                                   env=standin_env(SAM_STANDIN_MODE="lti"))
    assert rc == 0, proc.stderr[-3000:]
    (done,) = of(events, "item_done")
    return sf.read(done["outputs"]["target"]["path"], dtype="float32")[0], events


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


def test_spans_act_exactly_where_they_lie_and_chunked_equals_whole_file(tmp_path: Path):
    audio = bursts(tmp_path / "in.wav")
    source = sf.read(audio, dtype="float32")[0]
    plain, _ = separate(tmp_path, "plain", Item("a", str(audio), ["x"], ["out/a"]), **WHOLE)
    spanned = Item("a", str(audio), ["x"], ["out/a"], spans=SPANS)
    whole, events = separate(tmp_path, "whole", spanned, **WHOLE)
    assert of(events, "item_start")[0]["spans"] == SPANS
    np.testing.assert_array_equal(whole[frames(10, 20)], source[frames(10, 20)])  # "+"
    np.testing.assert_array_equal(whole[frames(40, 55)], 0)  # "-"
    outside = np.ones(len(source), dtype=bool)
    outside[frames(10, 20)] = outside[frames(40, 55)] = False
    np.testing.assert_array_equal(whole[outside], plain[outside])

    # both spans cross chunk seams: each chunk must get its part, in its own time
    chunked, events = separate(tmp_path, "chunked", spanned, **CHUNKED)
    assert of(events, "item_start")[0]["chunks"] == 4
    np.testing.assert_array_equal(chunked[frames(10, 20)], source[frames(10, 20)])
    np.testing.assert_array_equal(chunked[frames(40, 55)], 0)
    assert snr_db(whole, chunked) >= 60


def test_predicted_spans_are_used_reported_in_input_time_and_chunk_independent(
        tmp_path: Path):
    audio = bursts(tmp_path / "in.wav")
    source = sf.read(audio, dtype="float32")[0]
    item = Item("p", str(audio), ["x"], ["out/p"])
    results = {}
    for name, chunking in (("whole", WHOLE), ("chunked", CHUNKED)):
        target, events = separate(tmp_path, name, item, predict_spans=True, **chunking)
        assert "span_predictor" not in of(events, "load")[0]["components_off"]
        (done,) = of(events, "item_done")
        results[name] = target, done
        assert done["predicted_spans"] == [[0.4, 0.8], [1.6, 2.2]]
        for lo, hi in BURSTS:  # the predicted "+" spans reached the model
            np.testing.assert_array_equal(target[frames(lo, hi)], source[frames(lo, hi)])
    assert snr_db(results["whole"][0], results["chunked"][0]) >= 60

    # the same spans given explicitly: the same samples (the predicted ones were the
    # anchors; not the same bytes: a FLOAT wav's PEAK chunk holds a time stamp)
    given = Item("p", str(audio), ["x"], ["out/p"], spans=[["+", 0.4, 0.8], ["+", 1.6, 2.2]])
    target, _ = separate(tmp_path, "given", given, **CHUNKED)
    np.testing.assert_array_equal(target, results["chunked"][0])
    # given spans win over predict_spans: nothing predicted, nothing reported
    _, events = separate(tmp_path, "both", Item("p", str(audio), ["x"], ["out/p"],
                                                  spans=SPANS), predict_spans=True, **CHUNKED)
    assert "predicted_spans" not in of(events, "item_done")[0]


def test_spans_outside_the_file_or_malformed_are_bad_config(tmp_path: Path):
    audio = bursts(tmp_path / "in.wav")  # 2.68 s
    items = [Item("far", str(audio), ["x"], ["out/far"], spans=[["+", 2.0, 3.0]]),
             Item("ok", str(audio), ["x"], ["out/ok"], spans=[["-", 0.0, 2.68]])]
    rc, events, proc = run_payload(tmp_path / "job", items, Settings(device="cpu"))
    assert rc == 4, proc.stderr
    (error,) = of(events, "error")
    assert (error["item"], error["kind"]) == ("far", "bad_config")
    assert "+2:3 lies outside the file (2.680 s long)" in error["message"]
    assert [d["item"] for d in of(events, "item_done")] == ["ok"]

    reversed_span = [Item("r", str(audio), ["x"], ["out/r"], spans=[["+", 1.0, 0.5]])]
    rc, events, _ = run_payload(tmp_path / "bad", reversed_span, Settings(device="cpu"))
    assert rc == 4 and of(events, "error")[0]["kind"] == "bad_config"
    assert "item r: spans[0]: +1:0.5 is reversed" in of(events, "error")[0]["message"]


def test_standin_predict_spans_flag_is_the_pins_no_op():
    """Like sam_audio 68b48d4 (upstream #98): separate(predict_spans=True) predicts spans
    into the batch after its inputs were built, so the output does not change."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(STANDINS))
    try:
        from sam_audio import SAMAudio, SAMAudioProcessor
    finally:
        sys.path.remove(str(STANDINS))
    # the rankers off, as the payload loads it (the stand-in builds what its config names)
    model = SAMAudio.from_pretrained("facebook/sam-audio-small", text_ranker=None,
                                     visual_ranker=None).eval()
    processor = SAMAudioProcessor.from_pretrained("facebook/sam-audio-small")
    audio = torch.zeros(1, 20 * HOP)
    audio[0, frames(5, 9)] = 0.5
    outputs = []
    for flag in (False, True):
        batch = processor(descriptions=["x"], audios=[audio])
        torch.manual_seed(0)
        outputs.append(model.separate(batch, predict_spans=flag).target[0])
        if flag:
            assert batch.anchors == [[["+", 5 * HOP / RATE, 9 * HOP / RATE]]]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_predicting_with_a_model_that_has_no_span_predictor_says_so(tmp_path: Path):
    model = tmp_path / "no predictor"
    model.mkdir()
    (model / "config.json").write_text('{"span_predictor": null}')
    (model / "checkpoint.pt").write_bytes(b"")
    audio = bursts(tmp_path / "in.wav")
    rc, events, proc = run_payload(tmp_path / "job", [Item("p", str(audio), ["x"], ["out/p"])],
                                   Settings(model=str(model), device="cpu", predict_spans=True))
    assert rc == 4, proc.stderr[-2000:]
    (error,) = of(events, "error")
    assert error["kind"] == "bad_config" and "has no span predictor" in error["message"]
    assert not of(events, "item_done") and "Traceback" not in proc.stderr
