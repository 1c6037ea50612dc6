"""Payload benchmark (prints figures; not a test).

1. Peak RSS of ``python -m remote_payload`` (stand-in model, LTI mode, CPU) on a 60 min
   input vs a 5 min input. Goal: ratio <= 1.2 (memory must not grow with the length).
2. Throughput of the numeric core (chunk plan + overlap-add) in audio-seconds per second,
   and its ratio to a reference measured in the same run (slicing + concatenating the same
   chunks with no weighting).

Usage: python bench/bench_payload.py [--long-min 60] [--short-min 5]
"""

from __future__ import annotations

import argparse
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

from remote_payload.chunking import OverlapAdd, plan_chunks  # noqa: E402
from remote_payload.manifest import Item, Manifest, Settings  # noqa: E402

RATE = 44100


def write_long_wav(path: Path, minutes: float) -> None:
    """A tone + noise file written block by block (the benchmark itself stays small)."""
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * RATE)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16") as out:
        for start in range(0, total, RATE * 10):
            t = (np.arange(start, min(total, start + RATE * 10)) / RATE)
            out.write(0.3 * np.sin(2 * np.pi * 110 * t) + 0.05 * rng.standard_normal(len(t)))


def peak_rss_mb(workdir: Path, audio: Path) -> tuple[float, float]:
    """Run the payload as a child; return (peak RSS in MiB, wall seconds)."""
    workdir.mkdir()
    settings = Settings(device="cpu", chunk_seconds=10, overlap_seconds=2, batch_size=1)
    manifest = Manifest("bench", settings, [Item("x", str(audio), ["bass"], ["out/x"])])
    (workdir / "manifest.json").write_text(manifest.to_json())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests/standins")]),
           "SAM_STANDIN_MODE": "lti"}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "remote_payload", "run", "--manifest",
                             "manifest.json", "--events", "events.jsonl"], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"payload failed in {workdir}")
    return usage.ru_maxrss / 1024, time.monotonic() - started


def core_throughput(seconds: float = 600.0) -> tuple[float, float]:
    """(overlap-add audio-s/s, reference audio-s/s) on 48 kHz stereo, 10 s / 2 s chunks."""
    rate, total = 48_000, int(seconds * 48_000)
    signal = np.random.default_rng(1).standard_normal((total, 2)).astype(np.float32)
    plan = plan_chunks(total, 10 * rate, 2 * rate)
    started = time.perf_counter()
    acc = OverlapAdd(plan, channels=2)
    produced = sum(len(acc.add(c.index, signal[c.start:c.end])) for c in plan)
    ola = time.perf_counter() - started
    assert produced == total
    started = time.perf_counter()
    produced = sum(len(signal[c.start:c.end].astype(np.float64)) for c in plan)
    ref = time.perf_counter() - started
    return seconds / ola, seconds / ref


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--long-min", type=float, default=60)
    parser.add_argument("--short-min", type=float, default=5)
    args = parser.parse_args()
    ola, ref = core_throughput()
    print(f"numeric core: {ola:,.0f} audio-s/s overlap-add; reference slicing {ref:,.0f} "
          f"audio-s/s; ratio {ola / ref:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-payload-") as tmp:
        base = Path(tmp)
        figures = {}
        for name, minutes in (("short", args.short_min), ("long", args.long_min)):
            audio = base / f"{name}.wav"
            write_long_wav(audio, minutes)
            rss, wall = peak_rss_mb(base / name, audio)
            figures[name] = rss
            print(f"payload {minutes:g} min: peak RSS {rss:.0f} MiB, {wall:.1f} s wall "
                  f"({minutes * 60 / wall:.0f} audio-s/s with the stand-in on CPU)")
            audio.unlink()
        ratio = figures["long"] / figures["short"]
        verdict = "ok" if ratio <= 1.2 else "OVER GOAL"
        print(f"peak RSS ratio {args.long_min:g} min / {args.short_min:g} min: {ratio:.2f} "
              f"(goal <= 1.2: {verdict})")


if __name__ == "__main__":
    main()
