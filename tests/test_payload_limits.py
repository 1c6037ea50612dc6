"""The real model's limits, kept by the payload (the stand-in crashes where the real code
does): tiny inputs and chunks, the 400 s cap on one pass, every setting checked before the
model loads; and rates the model never sees (192 kHz) kept in the residual."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from payload_util import of, run_payload, standin_env, tone_mix

from remote_payload.manifest import Item, Manifest, ManifestError, Settings
from remote_payload.protocol import EXIT_CODES

SMALL = dict(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25, subtype="FLOAT")


def standin():
    sys.path.insert(0, str(Path(__file__).resolve().parent / "standins"))
    from sam_audio import SAMAudio, SAMAudioProcessor

    # the parts the payload switches off for a plain run (building them is not free: the
    # stand-in, like the real code, builds the rankers config.json names)
    off = {"text_ranker": None, "visual_ranker": None, "span_predictor": None}
    return (SAMAudio.from_pretrained("facebook/sam-audio-small", **off).eval(),
            SAMAudioProcessor.from_pretrained("facebook/sam-audio-small"))


def test_the_standin_crashes_where_the_real_model_does():
    model, processor = standin()

    def run(samples: int):
        return model.separate(processor(descriptions=["x"], audios=[torch.zeros(1, samples)]))

    with pytest.raises(RuntimeError, match="Padding size should be less than"):
        run(960)  # the codec's reflect padding needs more than half a frame
    assert len(run(961).target[0]) == 1920
    frames = torch.zeros(1, 10_001, 1)  # past the RoPE table: the real error text
    with pytest.raises(RuntimeError, match=r"must match the size of tensor b \(10000\)"):
        from sam_audio.model import _rope_positions

        _rope_positions(frames.shape[1])


@pytest.mark.parametrize("frames,rate,channels", [(1, 48000, 1), (480, 48000, 2),
                                                  (700, 44100, 1), (3000, 192000, 1)])
def test_very_short_inputs_work_and_keep_their_length(tmp_path: Path, frames: int, rate: int,
                                                      channels: int):
    audio = tmp_path / "short.wav"
    sf.write(audio, tone_mix(frames / rate, rate, channels), rate, subtype="FLOAT")
    assert sf.info(str(audio)).frames == frames
    rc, events, proc = run_payload(tmp_path / "job", [Item("s", str(audio), ["bass"], ["out/s"])],
                                   Settings(**SMALL))
    assert rc == 0, [e for e in events if e["event"] == "error"] or proc.stderr
    (done,) = of(events, "item_done")
    source = sf.read(audio, always_2d=True)[0]
    target = sf.read(done["outputs"]["target"]["path"], always_2d=True)[0]
    residual = sf.read(done["outputs"]["residual"]["path"], always_2d=True)[0]
    assert target.shape == residual.shape == source.shape  # to the sample
    assert np.abs(target + residual - source).max() < 1e-4


def test_tiny_chunks_are_never_sent_below_the_minimum(tmp_path: Path):
    audio = tmp_path / "m.wav"
    sf.write(audio, tone_mix(0.1, 48000), 48000, subtype="FLOAT")
    settings = Settings(device="cpu", chunk_seconds=0.015, overlap_seconds=0.005,
                        subtype="FLOAT", batch_size=4)  # 720-sample chunks
    rc, events, proc = run_payload(tmp_path / "job", [Item("t", str(audio), ["v"], ["out/t"])],
                                   settings)
    assert rc == 0, [e for e in events if e["event"] == "error"] or proc.stderr
    assert of(events, "item_start")[0]["chunks"] > 5
    (done,) = of(events, "item_done")
    assert sf.info(done["outputs"]["target"]["path"]).frames == 4800


@pytest.mark.parametrize("patch,field,words", [
    ({"chunk_seconds": 401}, "settings.chunk_seconds", "400"),
    ({"chunk_seconds": 0}, "settings.chunk_seconds", "> 0"),
    ({"ode_method": "rk45"}, "settings.ode_method", "midpoint"),
    ({"ode_step_size": 2}, "settings.ode_step_size", "<= 1"),
    ({"chunk_seconds": "ten"}, "settings.chunk_seconds", "a number"),
    ({"batch_size": 1.5}, "settings.batch_size", "whole number"),
    ({"predict_spans": "yes"}, "settings.predict_spans", "true or false"),
    ({"worker_idle_timeout": -1}, "settings.worker_idle_timeout", ">= 0"),
    ({"model": " "}, "settings.model", "empty"),
])
def test_a_bad_setting_is_bad_config_before_the_model_loads(tmp_path: Path, patch, field,
                                                            words):
    body = json.loads(Manifest("j", Settings(device="cpu"), []).to_json())
    body["settings"].update(patch)
    with pytest.raises(ManifestError, match=field):  # the laptop calls the same check
        Manifest.from_json(json.dumps(body))
    job = tmp_path / "job"
    job.mkdir()
    (job / "manifest.json").write_text(json.dumps(body))
    loads = tmp_path / "loads.log"
    proc = subprocess.run([sys.executable, "-m", "remote_payload", "run", "--manifest",
                           "manifest.json", "--events", "events.jsonl"], cwd=job,
                          env=standin_env(SAM_STANDIN_LOAD_LOG=str(loads)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_CODES["bad_config"] == 4
    assert "Traceback" not in proc.stderr
    events = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    (error,) = of(events, "error")
    assert error["kind"] == "bad_config" and field in error["message"]
    assert words in error["message"]
    assert events[-1]["event"] == "bye" and events[-1]["exit_code"] == 4
    assert not loads.exists()  # refused before any model load


def test_400_s_chunks_are_the_cap_and_fit_the_model():
    Settings(chunk_seconds=400).validate()
    from remote_payload.audio_io import AudioInfo
    from remote_payload.separation import make_plan

    info = AudioInfo("x.wav", 48000, 1, 48000 * 1000)  # a 1000 s file
    plan = make_plan(info, Settings(chunk_seconds=400), 400)
    assert max(c.length for c in plan) == 10_000 * 1920  # the RoPE table, not one more


def level(x: np.ndarray, hz: float, rate: int) -> float:
    t = np.arange(len(x)) / rate
    return abs(np.dot(x, np.exp(-2j * np.pi * hz * t))) * 2 / len(x)


@pytest.mark.parametrize("stereo", ["mid", "channels"])
def test_192_khz_keeps_what_the_model_never_saw_in_the_residual(tmp_path: Path, stereo: str):
    rate, seconds = 192_000, 1.5
    t = np.arange(round(seconds * rate)) / rate
    ultrasonic = 0.1 * np.sin(2 * np.pi * 40_000 * t)  # above the model's 24 kHz
    program = tone_mix(seconds, rate, channels=2)  # bass, treble, noise (to 96 kHz)
    mix = (program + ultrasonic[:, None]).astype(np.float32)
    audio = tmp_path / "hi.wav"
    sf.write(audio, mix, rate, subtype="FLOAT")
    rc, events, proc = run_payload(
        tmp_path / "job", [Item("h", str(audio), ["voice"], ["out/h"])],
        Settings(**{**SMALL, "stereo": stereo}))
    assert rc == 0, proc.stderr
    (done,) = of(events, "item_done")
    target, t_rate = sf.read(done["outputs"]["target"]["path"], always_2d=True)
    residual, r_rate = sf.read(done["outputs"]["residual"]["path"], always_2d=True)
    assert t_rate == r_rate == rate and target.shape == residual.shape == mix.shape
    assert np.abs(target + residual - mix).max() < 1e-4  # the input, at its own rate
    for c in range(2):
        assert level(residual[:, c], 40_000, rate) == pytest.approx(0.1, abs=0.002)
        assert level(target[:, c], 40_000, rate) < 1e-3
        assert level(target[:, c], 2500 + 300 * c if stereo == "channels" else 2500,
                     rate) > 0.05  # the model still separated what it saw


def test_long_chunks_get_whole_frames_so_the_frame_count_is_exact():
    """Past 2**24 samples the processor's float32 ceil(samples / 1920) can be one frame
    short (the real processor does the same), which would cut the output short."""
    from remote_payload.engine import _fit_to_model

    _, processor = standin()
    size = 8739 * 1920 + 1  # about 349.5 s at 48 kHz
    signal = np.zeros(size, dtype=np.float32)
    raw = processor(descriptions=["x"], audios=[torch.from_numpy(signal).unsqueeze(0)])
    assert int(raw.sizes[0]) == 8739  # one short: 8739 * 1920 < size
    fitted = _fit_to_model(signal, 1920)
    assert len(fitted) == 8740 * 1920
    batch = processor(descriptions=["x"], audios=[torch.from_numpy(fitted).unsqueeze(0)])
    assert int(batch.sizes[0]) * 1920 >= size  # the output covers the whole chunk
    short = np.arange(100, dtype=np.float32)
    assert len(_fit_to_model(short, 1920)) == 1920  # too short to reflect: silence added
    normal = np.zeros(48_000, dtype=np.float32)
    assert _fit_to_model(normal, 1920) is normal  # the model pads it, as a direct call
