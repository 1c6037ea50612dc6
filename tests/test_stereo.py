"""Stereo that keeps its image: the STFT, the mask, exact sums (pure numpy), and the panned
source figure through the payload (stand-in model) in every mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from payload_util import run_payload, standin_env

from remote_payload import stereo
from remote_payload.manifest import Item, Settings

RATE = 48_000


def test_istft_inverts_stft_at_any_length_and_offset():
    rng = np.random.default_rng(3)
    for length in (1, 700, stereo.N_FFT, 48_001):
        x = rng.standard_normal(length)
        for offset in (0, 1, 130, 96_000):
            back = stereo.istft(stereo.stft(x, offset), length, offset)
            assert back.shape == x.shape and np.abs(back - x).max() < 1e-12


def test_a_chunk_sees_the_whole_files_frames_inside_it():
    # frames sit on the file's grid: chunk frame i is file frame i + start // HOP, so away
    # from the chunk's ends its mask is the file's mask
    rng = np.random.default_rng(4)
    target, residual = rng.standard_normal(40_000), rng.standard_normal(40_000)
    start, end = 10_123, 30_000
    whole = stereo.ratio_mask(target, residual)
    part = stereo.ratio_mask(target[start:end], residual[start:end], offset=start)
    shift = start // stereo.HOP
    edge = stereo.N_FFT // stereo.HOP + 1  # frames that reach past the chunk's ends
    inner = slice(edge, len(part) - edge)
    assert np.abs(part[inner] - whole[shift + edge: shift + len(part) - edge]).max() < 1e-9
    # without the offset the grid moves and the mask is another one
    moved = stereo.ratio_mask(target[start:end], residual[start:end])
    assert np.abs(moved[inner] - whole[shift + edge: shift + len(part) - edge]).max() > 0.1


def test_mask_is_between_0_and_1_and_empty_bins_stay_in_the_residual():
    rng = np.random.default_rng(5)
    t, r = rng.standard_normal(5000), rng.standard_normal(5000)
    mask = stereo.ratio_mask(t, r)
    assert mask.min() >= 0 and mask.max() <= 1
    assert np.all(stereo.ratio_mask(np.zeros(5000), np.zeros(5000)) == 0)
    assert np.allclose(stereo.ratio_mask(t, np.zeros(5000))[2:-2], 1)


def test_image_split_keeps_a_panned_source_on_its_side_and_adds_up():
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 110 * t)
    hiss = np.sin(2 * np.pi * 5000 * t) * 0.5
    data = np.stack([tone + hiss, hiss], axis=1)
    mid = data.mean(axis=1)
    target, residual = stereo.image_split(data, tone / 2, mid - tone / 2)  # an ideal answer
    assert np.abs(target + residual - data).max() < 1e-12
    energy = np.sum(target[2000:-2000] ** 2, axis=0)
    assert energy[1] < 1e-3 * energy[0]  # nothing of the tone on the right
    assert np.abs(target[2000:-2000, 0] - tone[2000:-2000]).max() < 0.05


def test_a_mono_input_is_the_models_own_answer_in_every_mode():
    data = np.random.default_rng(6).standard_normal((3000, 1))
    answer = (data[:, 0] * 0.25, data[:, 0] * 0.75)
    for mode in ("image", "mid", "channels"):
        target, residual = stereo.combine(mode, data, [answer])
        assert np.array_equal(target[:, 0], answer[0]) and target.shape == data.shape


def panned_mix(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A 110 Hz tone hard left plus noise above 1 kHz in the centre."""
    t = np.arange(round(seconds * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 110 * t)
    spectrum = np.fft.rfft(np.random.default_rng(0).standard_normal(len(t)))
    spectrum[np.fft.rfftfreq(len(t), 1 / RATE) < 1000] = 0
    noise = np.fft.irfft(spectrum, n=len(t))
    noise *= 0.05 / noise.std()
    return np.stack([tone + noise, noise], axis=1), tone


@pytest.fixture(scope="module")
def panned_runs(tmp_path_factory) -> dict[str, tuple[np.ndarray, int]]:
    """The payload on the panned mix in each mode: (target, model passes)."""
    root = tmp_path_factory.mktemp("panned")
    mix, _ = panned_mix(4.0)
    audio = root / "panned.wav"
    sf.write(audio, mix.astype(np.float32), RATE, subtype="FLOAT")
    runs = {}
    for mode in ("mid", "image", "channels"):
        settings = Settings(device="cpu", chunk_seconds=2.0, overlap_seconds=0.5,
                            batch_size=4, subtype="FLOAT", stereo=mode)
        job = root / mode
        rc, events, proc = run_payload(job, [Item("p", str(audio), ["bass"], ["out/p"])],
                                       settings, env=standin_env(SAM_STANDIN_NOISE="0"))
        assert rc == 0, proc.stderr
        start = next(e for e in events if e["event"] == "item_start")
        target = sf.read(job / "out/p_target.wav", always_2d=True)[0]
        residual = sf.read(job / "out/p_residual.wav", always_2d=True)[0]
        assert np.abs(target + residual - mix).max() < 1e-5, json.dumps(start)
        runs[mode] = (target, start["passes"])
    return runs


def right_share(target: np.ndarray) -> float:
    energy = np.sum(target ** 2, axis=0)
    return float(energy[1] / energy.sum())


def test_a_source_panned_left_stays_left_with_image_at_the_cost_of_one_pass(panned_runs):
    shares = {mode: right_share(target) for mode, (target, _) in panned_runs.items()}
    passes = {mode: count for mode, (_, count) in panned_runs.items()}
    assert abs(shares["mid"] - 0.5) < 0.01  # the mono target on both channels
    assert shares["image"] < 0.01 and shares["channels"] < 0.01  # measured: 0.0000 both
    assert passes["image"] == passes["mid"] and passes["channels"] == 2 * passes["mid"]
    _, tone = panned_mix(4.0)
    error = np.sum((panned_runs["image"][0][:, 0] - tone) ** 2) / np.sum(tone ** 2)
    assert error < 0.01  # and the left channel is the tone


def test_image_is_the_default():
    assert Settings().stereo == "image"
