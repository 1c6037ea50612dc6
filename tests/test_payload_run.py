"""The payload end to end with the stand-in model: lengths, rates, stereo, loads, seeds, reruns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from payload_util import of, run_payload, standin_env, write_audio

from remote_payload.manifest import Item, Settings

SMALL = dict(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25, batch_size=2)


def test_lengths_rate_and_reconstruction_with_two_descriptions_one_load(tmp_path: Path):
    # no noise: content above 20 kHz would not survive 44.1 -> 48 -> 44.1 kHz resampling
    audio = write_audio(tmp_path / "mix.wav", seconds=3.37, rate=44100, noise=0.0)
    loads = tmp_path / "loads.log"
    items = [Item("a", str(audio), ["bass", "voice"], ["out/a_bass", "out/a_voice"]),
             Item("b", str(audio), ["drums"], ["out/b_drums"])]
    rc, events, proc = run_payload(tmp_path / "job", items, Settings(**SMALL, subtype="FLOAT"),
                                   env=standin_env(SAM_STANDIN_LOAD_LOG=str(loads)))
    assert rc == 0, proc.stderr
    assert [e["event"] for e in events][:2] == ["hello", "load"]
    assert events[-1]["event"] == "bye" and events[-1]["ok"] is True
    assert [e["seq"] for e in events] == list(range(len(events)))
    lines = loads.read_text().splitlines()
    assert len(lines) == 1  # three (item, description) pairs, one model load
    assert json.loads(lines[0])["overrides"] == {"text_ranker": None, "visual_ranker": None,
                                                 "span_predictor": None}
    source, rate = sf.read(audio)
    done = of(events, "item_done")
    assert len(done) == 3
    for event in done:
        target, t_rate = sf.read(event["outputs"]["target"]["path"])
        residual, r_rate = sf.read(event["outputs"]["residual"]["path"])
        assert t_rate == r_rate == rate
        assert len(target) == len(residual) == len(source)  # to the sample
        inner = slice(200, -200)  # resampler edge transients aside
        assert np.abs(target + residual - source)[inner].max() < 1e-4
    bass = sf.read(done[0]["outputs"]["target"]["path"])[0]
    voice = sf.read(done[1]["outputs"]["target"]["path"])[0]

    def level(x: np.ndarray, hz: float) -> float:  # amplitude of one of the mix's tones
        t = np.arange(len(x)) / rate
        return abs(np.dot(x, np.exp(-2j * np.pi * hz * t))) * 2 / len(x)

    assert level(bass, 80) > 0.25 and level(bass, 2500) < 0.01
    assert level(voice, 2500) > 0.12 and level(voice, 80) < 0.03
    chunks = of(events, "chunk")
    planned = of(events, "item_start")[-1]["chunks"]
    assert chunks and chunks[-1]["done"] == chunks[-1]["total"] == planned


def test_stereo_mid_target_and_exact_residual(tmp_path: Path):
    audio = write_audio(tmp_path / "st.wav", seconds=2.5, rate=48000, channels=2, subtype="FLOAT")
    item = Item("s", str(audio), ["bass"], ["out/s"])
    rc, events, proc = run_payload(tmp_path / "job", [item],
                                   Settings(**SMALL, subtype="FLOAT", stereo="mid"))
    assert rc == 0, proc.stderr
    source = sf.read(audio)[0]
    target = sf.read(tmp_path / "job/out/s_target.wav")[0]
    residual = sf.read(tmp_path / "job/out/s_residual.wav")[0]
    assert target.shape == residual.shape == source.shape
    assert np.allclose(target[:, 0], target[:, 1])  # the mono estimate on both channels
    assert np.abs(target + residual - source).max() < 1e-5  # side info kept in the residual


def test_stereo_channels_mode_separates_each_channel(tmp_path: Path):
    audio = write_audio(tmp_path / "st.wav", seconds=2.0, rate=48000, channels=2, subtype="FLOAT")
    item = Item("s", str(audio), ["voice"], ["out/s"])
    rc, _, proc = run_payload(tmp_path / "job", [item],
                              Settings(**SMALL, subtype="FLOAT", stereo="channels"))
    assert rc == 0, proc.stderr
    source = sf.read(audio)[0]
    target = sf.read(tmp_path / "job/out/s_target.wav")[0]
    assert not np.allclose(target[:, 0], target[:, 1])  # each channel its own estimate
    assert np.abs(target + sf.read(tmp_path / "job/out/s_residual.wav")[0] - source).max() < 1e-5


def test_seeded_runs_identical_and_other_seed_differs(tmp_path: Path):
    audio = write_audio(tmp_path / "m.wav", seconds=2.2)
    item = Item("m", str(audio), ["voice"], ["out/m"])
    shas = []
    for name, seed in (("one", 7), ("two", 7), ("three", 8)):
        rc, events, proc = run_payload(tmp_path / name, [item], Settings(**SMALL, seed=seed))
        assert rc == 0, proc.stderr
        shas.append(of(events, "item_done")[0]["outputs"]["target"]["sha256"])
    assert shas[0] == shas[1] != shas[2]


def test_rerun_skips_recorded_outputs_and_redoes_damaged_ones(tmp_path: Path):
    audio = write_audio(tmp_path / "m.wav", seconds=1.5)
    loads = tmp_path / "loads.log"
    env = standin_env(SAM_STANDIN_LOAD_LOG=str(loads))
    items = [Item("m", str(audio), ["voice", "bass"], ["out/m0", "out/m1"])]
    job = tmp_path / "job"
    rc, first, _ = run_payload(job, items, Settings(**SMALL), env=env)
    assert rc == 0
    rc, second, _ = run_payload(job, items, Settings(**SMALL), env=env)
    rerun = [e for e in second if e["seq"] >= len(first)]  # same events file, appended
    assert rc == 0 and all(e["skipped"] for e in of(rerun, "item_done"))
    assert not of(rerun, "load") and len(loads.read_text().splitlines()) == 1
    (job / "out/m1_target.wav").write_bytes(b"damaged")
    rc, third, _ = run_payload(job, items, Settings(**SMALL), env=env)
    done = {e["desc"]: e for e in of(third[len(second):], "item_done")}
    assert rc == 0 and done[0]["skipped"] and not done[1]["skipped"]
    assert sf.info(str(job / "out/m1_target.wav")).frames == sf.info(str(audio)).frames


@pytest.mark.parametrize("name", ["it's a \"mix\" $(touch pwned) café 🎵.wav"])
def test_awkward_file_names(tmp_path: Path, name: str):
    audio = write_audio(tmp_path / name, seconds=1.2)
    item = Item("w", str(audio), ["voice"], [f"out/{name[:-4]} sep"])
    rc, events, proc = run_payload(tmp_path / "job", [item], Settings(**SMALL))
    assert rc == 0, proc.stderr
    target = Path(of(events, "item_done")[0]["outputs"]["target"]["path"])
    assert target.name == f"{name[:-4]} sep_target.wav" and target.exists()
    assert not (tmp_path / "job" / "pwned").exists()


@pytest.mark.parametrize("fmt,subtype,rate", [("FLAC", "PCM_16", 44100), ("OGG", "VORBIS", 22050),
                                              ("MP3", "MPEG_LAYER_III", 44100)])
def test_compressed_inputs(tmp_path: Path, fmt: str, subtype: str, rate: int):
    if fmt not in sf.available_formats():
        pytest.skip(f"libsndfile here cannot write {fmt}")
    audio = write_audio(tmp_path / f"in.{fmt.lower()}", seconds=1.7, rate=rate, format=fmt,
                        subtype=subtype)
    item = Item("c", str(audio), ["voice"], ["out/c"])
    rc, _, proc = run_payload(tmp_path / "job", [item], Settings(**SMALL))
    assert rc == 0, proc.stderr
    info = sf.info(str(tmp_path / "job/out/c_target.wav"))
    assert (info.frames, info.samplerate) == (sf.info(str(audio)).frames, rate)


def test_flac_output_at_a_chosen_rate(tmp_path: Path):
    audio = write_audio(tmp_path / "m.wav", seconds=1.0, rate=44100)
    item = Item("f", str(audio), ["voice"], ["out/f"])
    settings = Settings(**SMALL, format="flac", subtype="PCM_24", sample_rate=16000)
    rc, _, proc = run_payload(tmp_path / "job", [item], settings)
    assert rc == 0, proc.stderr
    info = sf.info(str(tmp_path / "job/out/f_residual.flac"))
    assert (info.format, info.subtype, info.samplerate, info.frames) == ("FLAC", "PCM_24", 16000,
                                                                         16000)
