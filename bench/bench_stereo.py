"""Stereo modes on a panned source (prints figures; not a test).

A synthetic stereo mix: a 110 Hz tone panned HARD LEFT (the target, "bass") plus noise
above 1 kHz centred (the same on both channels). The payload runs with the stand-in model
(a lowpass for "bass": it finds the tone) in each stereo mode, and the bench prints, per
mode:

- right share: the fraction of the target's energy that lands on the right channel (the
  source is not there at all: 0 is right; the mono target on both channels gives 0.5);
- error: energy of (target - true tone) over the tone's, both channels (dB, lower better);
- passes: model passes (the ``item_start`` event's ``passes``), the cost;
- each figure's ratio to ``mid`` measured in the same run.

``image p=1`` / ``image p=2`` apply the ratio mask ``|T|^p / (|T|^p + |R|^p)`` to the whole
file from the ``mid`` run's answer (no chunks): the plain ratio against the Wiener-like mask
the payload uses (``stereo.MASK_POWER``).

A second mix puts the tone in the centre, where every mode should do as well as ``mid``.

Last, the CPU cost of turning one 10 s stereo chunk's mono answer into stereo
(``stereo.combine``): ``image`` (four STFTs, two inverse) against ``mid`` (a copy), in
seconds per second of audio, measured in the same run.

Usage: python bench/bench_stereo.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from remote_payload import stereo  # noqa: E402
from remote_payload.manifest import Item, Manifest, Settings  # noqa: E402

RATE = 48_000
MODES = ("mid", "image", "channels")


def panned_mix(seconds: float, pan: str = "left", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mix, tone) as (frames, 2) float64: the tone on the left only (or centred)."""
    t = np.arange(round(seconds * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 110 * t)
    noise = np.random.default_rng(seed).standard_normal(len(t))
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(len(t), 1 / RATE) < 1000] = 0  # only above 1 kHz
    noise = 0.05 * np.fft.irfft(spectrum, n=len(t)) / np.std(np.fft.irfft(spectrum, n=len(t)))
    placed = np.stack([tone, np.zeros_like(tone)] if pan == "left" else [tone, tone], axis=1)
    return placed + noise[:, None], placed


def run_mode(workdir: Path, audio: Path, mode: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The payload with the stand-in model in one stereo mode: (target, residual, passes)."""
    workdir.mkdir(parents=True)
    settings = Settings(device="cpu", chunk_seconds=2.0, overlap_seconds=0.5, batch_size=4,
                        subtype="FLOAT", stereo=mode)
    manifest = Manifest("bench", settings, [Item("x", str(audio), ["bass"], ["out/x"])])
    (workdir / "manifest.json").write_text(manifest.to_json())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests/standins")]),
           "SAM_STANDIN_NOISE": "0"}
    subprocess.run([sys.executable, "-m", "remote_payload", "run", "--manifest",
                    "manifest.json", "--events", "events.jsonl"], cwd=workdir, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]
    passes = next(e["passes"] for e in events if e["event"] == "item_start")
    return (sf.read(workdir / "out/x_target.wav", always_2d=True)[0],
            sf.read(workdir / "out/x_residual.wav", always_2d=True)[0], passes)


def figures(target: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    energy = np.sum(target ** 2, axis=0)
    right_share = float(energy[1] / energy.sum())
    error_db = float(10 * np.log10(np.sum((target - truth) ** 2) / np.sum(truth ** 2)))
    return right_share, error_db


def measure(workdir: Path, seconds: float, pan: str) -> dict[str, dict[str, float]]:
    mix, truth = panned_mix(seconds, pan)
    audio = workdir / f"{pan}.wav"
    sf.write(audio, mix.astype(np.float32), RATE, subtype="FLOAT")
    rows = {}
    for mode in MODES:
        target, residual, passes = run_mode(workdir / f"{pan}-{mode}", audio, mode)
        share, error = figures(target, truth)
        rows[mode] = {"right_share": share, "error_db": error, "passes": passes}
        if mode == "mid":  # the model's mono answer, for the mask variants below
            side = mix - mix.mean(axis=1, keepdims=True)
            answer = (target[:, 0], (residual - side).mean(axis=1))
    for power in (1.0, 2.0):  # the mask on the whole file (no chunks), from that answer
        target, _ = stereo.image_split(mix, *answer, power=power)
        share, error = figures(target, truth)
        rows[f"image p={power:g}"] = {"right_share": share, "error_db": error,
                                      "passes": rows["mid"]["passes"]}
    return rows


def combine_cost(mode: str, seconds: float = 10.0, repeats: int = 3) -> float:
    """CPU seconds of ``stereo.combine`` per second of a stereo chunk (best of repeats)."""
    data = np.random.default_rng(1).standard_normal((round(seconds * RATE), 2))
    answer = (data.mean(axis=1) * 0.5, data.mean(axis=1) * 0.5)
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        stereo.combine(mode, data, [answer])
        best = min(best, time.process_time() - started)
    return best / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for pan in ("left", "centre"):
            rows = measure(Path(tmp), args.seconds, pan)
            ref = rows["mid"]
            print(f"tone panned {pan}, noise centred ({args.seconds:g} s, 2 s chunks); "
                  "reference: mid, same run")
            print(f"  {'mode':11} {'right share':>11} {'error dB':>9} {'passes':>7} "
                  f"{'passes/mid':>10}")
            for mode, row in rows.items():
                print(f"  {mode:11} {row['right_share']:11.4f} {row['error_db']:9.1f} "
                      f"{row['passes']:7d} {row['passes'] / ref['passes']:10.2f}")
    image, mid = combine_cost("image"), combine_cost("mid")
    print(f"stereo.combine CPU s per audio s (10 s stereo chunk): image {image:.4f}, "
          f"mid {mid:.4f} (reference, same run), ratio {image / max(mid, 1e-9):.0f}x")


if __name__ == "__main__":
    main()
