"""Stem splits in the payload (stand-in model): the chain, `other`, exact sums, chunking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from payload_util import of, run_payload, standin_env, write_audio

from remote_payload.chain import pcm_codes
from remote_payload.manifest import Item, Settings

SMALL = dict(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25, batch_size=3)
STEMS = ["bass", "voice", "hiss"]


def split_item(audio: Path, stems: list[str] = STEMS) -> Item:
    return Item("s", str(audio), list(stems), ["out/song"], stems=list(stems))


def read_out(job: Path, stems: list[str], dtype: str) -> dict[str, np.ndarray]:
    return {stem: sf.read(job / f"out/song_{stem}.wav", dtype=dtype, always_2d=True)[0]
            for stem in [*stems, "other"]}


def test_pcm16_stems_and_other_add_up_to_the_input_codes_with_one_load(tmp_path: Path):
    audio = write_audio(tmp_path / "mix.wav", seconds=3.3, rate=44100, channels=2,
                        subtype="PCM_16")
    loads = tmp_path / "loads.log"
    rc, events, proc = run_payload(tmp_path / "job", [split_item(audio)], Settings(**SMALL),
                                   env=standin_env(SAM_STANDIN_LOAD_LOG=str(loads)))
    assert rc == 0, proc.stderr
    assert len(of(events, "load")) == 1 and len(loads.read_text().splitlines()) == 1
    done = of(events, "item_done")
    assert len(done) == 1 and list(done[0]["outputs"]) == [*STEMS, "other"]
    files = read_out(tmp_path / "job", STEMS, "int16")
    source = sf.read(audio, dtype="int16", always_2d=True)[0]
    assert all(f.shape == source.shape for f in files.values())
    total = sum(f.astype(np.int64) for f in files.values())
    assert np.array_equal(total, source)  # exact, in the files' own integer codes
    for stem, info in done[0]["outputs"].items():
        assert info["path"].endswith(f"song_{stem}.wav") and len(info["sha256"]) == 64
    # the chain: bass (lowpass) first, the voice from what bass left: no bass in the voice
    assert np.abs(files["bass"]).max() > 3000 and np.abs(files["voice"]).max() > 1000
    spectrum = np.abs(np.fft.rfft(files["voice"][:, 0].astype(float)))
    freqs = np.fft.rfftfreq(len(files["voice"]), 1 / 44100)
    assert spectrum[np.abs(freqs - 80) < 3].max() < 0.05 * spectrum.max()
    chunks = of(events, "chunk")
    assert chunks[-1]["done"] == chunks[-1]["total"] == of(events, "item_start")[0]["chunks"]


def test_float_other_closes_the_sum_to_its_own_rounding(tmp_path: Path):
    audio = write_audio(tmp_path / "mix.wav", seconds=2.2, rate=48000, channels=2,
                        subtype="FLOAT")
    rc, _, proc = run_payload(tmp_path / "job", [split_item(audio)],
                              Settings(**SMALL, subtype="FLOAT"))
    assert rc == 0, proc.stderr
    files = read_out(tmp_path / "job", STEMS, "float32")
    source = sf.read(audio, dtype="float32", always_2d=True)[0].astype(np.float64)
    total = sum(f.astype(np.float64) for f in files.values())
    # the only error: other's own rounding to float32 (half a float32 step of other)
    assert np.all(np.abs(total - source) <= np.spacing(np.abs(files["other"])) / 2)
    # summed in float64 and stored as float32, nearly every sample is the input bit for bit
    # (the others: zero crossings, where other is far larger than the mix)
    assert np.mean(total.astype(np.float32) == source.astype(np.float32)) > 0.95


def test_pcm24_output_of_a_float_input_adds_up_to_the_input_written_at_24_bits(
        tmp_path: Path):
    audio = write_audio(tmp_path / "mix.wav", seconds=1.5, rate=48000, channels=1,
                        subtype="FLOAT")
    rc, _, proc = run_payload(tmp_path / "job", [split_item(audio, ["bass", "voice"])],
                              Settings(**SMALL, subtype="PCM_24"))
    assert rc == 0, proc.stderr
    files = read_out(tmp_path / "job", ["bass", "voice"], "int32")
    total = sum(f.astype(np.int64) >> 8 for f in files.values())
    mix = sf.read(audio, dtype="float32", always_2d=True)[0]
    assert np.array_equal(total, pcm_codes(mix, 24))


def test_chained_chunks_equal_the_whole_file_for_a_time_invariant_model(tmp_path: Path):
    audio = write_audio(tmp_path / "lti.wav", seconds=7.32, rate=48000, channels=2,
                        subtype="FLOAT")
    env = standin_env(SAM_STANDIN_MODE="lti")
    runs = {"whole": Settings(device="cpu", chunk_seconds=30, overlap_seconds=1,
                              subtype="FLOAT"),
            "chunked": Settings(device="cpu", chunk_seconds=2, overlap_seconds=0.5,
                                batch_size=3, subtype="FLOAT")}
    out = {}
    for name, settings in runs.items():
        rc, events, proc = run_payload(tmp_path / name, [split_item(audio, ["a", "b"])],
                                       settings, env=env)
        assert rc == 0, proc.stderr
        out[name] = read_out(tmp_path / name, ["a", "b"], "float64")
        out[name + "_chunks"] = of(events, "item_start")[0]["chunks"]
    assert out["whole_chunks"] == 1 and out["chunked_chunks"] >= 4
    for stem in ("a", "b", "other"):
        whole, chunked = out["whole"][stem], out["chunked"][stem]
        assert whole.shape == chunked.shape
        snr = 10 * np.log10(np.sum(whole ** 2) / np.sum((whole - chunked) ** 2))
        assert snr >= 60, (stem, snr)
    # stage b saw what a left: a lowpass of (x - lowpass x) is far weaker than a
    assert np.sum(out["whole"]["b"] ** 2) < 0.1 * np.sum(out["whole"]["a"] ** 2)


def test_a_rerun_skips_a_finished_split_and_bad_stem_names_are_bad_config(tmp_path: Path):
    audio = write_audio(tmp_path / "mix.wav", seconds=1.2, rate=48000)
    job = tmp_path / "job"
    rc, _, proc = run_payload(job, [split_item(audio, ["bass"])], Settings(**SMALL))
    assert rc == 0, proc.stderr
    rc, events, proc = run_payload(job, [split_item(audio, ["bass"])], Settings(**SMALL))
    assert rc == 0, proc.stderr
    assert [e["skipped"] for e in of(events, "item_done")][-1] is True
    for stems in (["Bass"], ["other"], ["a", "a"], ["a/b"]):
        item = Item("x", str(audio), ["d"] * len(stems), ["out/x"], stems=stems)
        rc, events, _ = run_payload(tmp_path / "bad", [item], Settings(**SMALL))
        assert rc == 4 and of(events, "error")[0]["kind"] == "bad_config", stems
    item = Item("e", str(audio), ["bass", " "], ["out/e"], stems=["a", "b"])
    rc, events, _ = run_payload(tmp_path / "empty", [item], Settings(**SMALL))
    assert of(events, "error")[0]["kind"] == "bad_description" and not of(events, "load")


@pytest.mark.parametrize("mode", ["image", "mid", "channels"])
def test_every_stereo_mode_chains_and_adds_up(tmp_path: Path, mode: str):
    audio = write_audio(tmp_path / "mix.wav", seconds=1.6, rate=48000, channels=2,
                        subtype="PCM_16")
    rc, events, proc = run_payload(tmp_path / "job", [split_item(audio, ["bass", "voice"])],
                                   Settings(**SMALL, stereo=mode))
    assert rc == 0, proc.stderr
    files = read_out(tmp_path / "job", ["bass", "voice"], "int16")
    source = sf.read(audio, dtype="int16", always_2d=True)[0]
    assert np.array_equal(sum(f.astype(np.int64) for f in files.values()), source)
    assert json.dumps(of(events, "item_done")[0]["outputs"])


def test_an_other_outside_pcm16_is_clipped_counted_and_reported(tmp_path: Path):
    # a model that overshoots wildly (stand-in noise x20): stems clip at full scale and
    # what other would need does not fit 16 bits; every such sample is counted, the rest
    # still adds up exactly
    t = np.arange(48_000) / 48_000
    audio = tmp_path / "loud.wav"
    sf.write(audio, (0.999 * np.sign(np.sin(2 * np.pi * 50 * t))).astype(np.float32), 48_000,
             subtype="PCM_16")
    stems = ["bass", "voice", "hiss"]
    rc, events, proc = run_payload(tmp_path / "job", [split_item(audio, stems)],
                                   Settings(**SMALL), env=standin_env(SAM_STANDIN_NOISE="20"))
    assert rc == 0, proc.stderr
    (warning,) = [w for w in of(events, "warning") if w["code"] == "other_clipped"]
    files = read_out(tmp_path / "job", stems, "int16")
    wrong = int(np.count_nonzero(sum(f.astype(np.int64) for f in files.values())
                                 != sf.read(audio, dtype="int16", always_2d=True)[0]))
    assert wrong > 0 and warning["message"].startswith(f"item s: {wrong} sample(s) of other")
