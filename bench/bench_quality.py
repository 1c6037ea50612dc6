"""What each --quality preset costs in model calls, measured with the REAL sam_audio classes
(prints figures; not a test).

The payload (``python -m remote_payload run``, real chunk plan, real engine) runs one input
for each preset under the real-sam interpreter, on a tiny random config built with the real
classes (tests/real_sam_tiny.py): the solver, the candidate repeat of reranking and the
chunking are the real code, only the widths are small, so the number of calls is what a
released model makes. The codec's decoder, which runs once after the solver, is replaced
by silence of its shape (counted: decodes and rows), because on a small CPU it alone takes
minutes per 30 s chunk; it does not change the model calls. ``SAMAudio.forward`` (one
evaluation of the flow's vector field, i.e. one DiT pass over a batch) is counted, with
the rows and latent frames of each call:

- calls per second of audio (sequential model passes: what latency follows on a GPU that
  is not full);
- row-frames per second of audio (rows x latent frames: the DiT work, what throughput
  follows), and both as a ratio to ``balanced`` (the defaults) measured in the same run.

The settings come from the laptop's own builder (remote_sep/jobs/settings.py), with
batch_size 1 so that every chunk is its own call (on a GPU several chunks share a call: the
row-frames stay, the calls divide by the batch).

Usage: REAL_PY=/tmp/realsam-venv/bin/python
       python bench/bench_quality.py [--python $REAL_PY] [--seconds 66] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from remote_payload.chunking import plan_chunks  # noqa: E402

REAL_ENV = "REMOTE_SEP_REAL_SAM_PYTHON"
LONG_S = 600.0  # the projection's input length
RATE = 48_000
HOP = 1920

# Run inside the payload process (the real-sam interpreter): count SAMAudio.forward.
COUNTING_PAYLOAD = r"""
import json, sys
import sam_audio
from remote_payload.runner import run_job

import torch
from sam_audio.model.codec import DACVAE

counts = {"calls": 0, "rows": 0, "row_frames": 0, "decodes": 0, "decoded_rows": 0}
forward = sam_audio.SAMAudio.forward

def counted(self, noisy_audio, *args, **kwargs):
    counts["calls"] += 1
    counts["rows"] += int(noisy_audio.size(0))
    counts["row_frames"] += int(noisy_audio.size(0) * noisy_audio.size(1))
    return forward(self, noisy_audio, *args, **kwargs)

def decode(self, encoded_frames):
    # After the solver, outside what is counted: silence of the decoder's shape (the real
    # decoder and its watermark LSTM take minutes per 30 s chunk on a small CPU).
    counts["decodes"] += 1
    counts["decoded_rows"] += int(encoded_frames.size(0))
    samples = encoded_frames.size(-1) * self.hop_length
    return torch.zeros(encoded_frames.size(0), 1, samples, dtype=encoded_frames.dtype)

sam_audio.SAMAudio.forward = counted
DACVAE.decode = decode
code = run_job(sys.argv[1], sys.argv[2], None)
with open(sys.argv[3], "w") as out:
    json.dump(counts, out)
sys.exit(code)
"""


def preset_settings(name: str, model: Path):
    from remote_sep.jobs.settings import build_settings, requested_settings

    return build_settings(None, requested_settings({
        "quality": name, "model": str(model), "device": "cpu", "dtype": "fp32",
        "batch_size": 1, "seed": 3}))


def write_input(path: Path, seconds: float) -> None:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(0)
    mix = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, mix.astype(np.float32), RATE, subtype="FLOAT")


def run_preset(python: str, name: str, model: Path, audio: Path, work: Path) -> dict:
    from remote_payload.manifest import Item, Manifest

    settings = preset_settings(name, model)
    job = work / name
    job.mkdir()
    (job / "manifest.json").write_text(Manifest(name, settings, [Item(
        "i0", str(audio), ["speech"], ["out/speech"])]).to_json())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([python, "-c", COUNTING_PAYLOAD, "manifest.json", "events.jsonl",
                           "counts.json"], cwd=job, env=env, capture_output=True, text=True,
                          timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: the payload failed ({proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}\n{(job / 'events.jsonl').read_text()[-2000:]}")
    events = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["event"] == "item_start")
    counts = json.loads((job / "counts.json").read_text())
    return {"preset": name, "solver": settings.ode_method,
            "steps": round(1 / settings.ode_step_size), "rerank": settings.rerank,
            "chunk_s": settings.chunk_seconds, "overlap_s": settings.overlap_seconds,
            "chunks": start["chunks"], **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=os.environ.get(REAL_ENV),
                        help=f"interpreter with the real sam_audio (default ${REAL_ENV})")
    parser.add_argument("--seconds", type=float, default=66.0,
                        help="input length (default 66: three 30 s chunks, two seams)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if not args.python:
        raise SystemExit(f"needs the real sam_audio: --python PY or ${REAL_ENV} (the stand-in "
                         "has no solver, so its calls say nothing about the model's)")
    from remote_sep.setting_table import QUALITY_PRESETS

    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        work = Path(tmp)
        built = subprocess.run([args.python, str(ROOT / "tests" / "real_sam_tiny.py"),
                                str(work / "tiny")], capture_output=True, text=True,
                               timeout=1200)
        if built.returncode != 0:
            raise SystemExit(f"building the tiny real model failed:\n{built.stderr[-3000:]}")
        audio = work / "input.wav"
        write_input(audio, args.seconds)
        rows = [run_preset(args.python, name, work / "tiny", audio, work)
                for name in QUALITY_PRESETS]
    reference = next(r for r in rows if r["preset"] == "balanced")
    for row in rows:
        # a long input: the payload's own chunk plan times the calls measured per chunk
        long_chunks = len(plan_chunks(int(LONG_S * RATE), int(row["chunk_s"] * RATE),
                                      int(row["overlap_s"] * RATE)))
        row["long_calls_per_audio_s"] = long_chunks * row["calls"] / row["chunks"] / LONG_S
        row["long_row_frames_per_audio_s"] = (long_chunks * row["row_frames"] / row["chunks"]
                                              / LONG_S)
        row["calls_per_audio_s"] = row["calls"] / args.seconds
        row["row_frames_per_audio_s"] = row["row_frames"] / args.seconds
        row["calls_vs_balanced"] = row["calls"] / reference["calls"]
        row["work_vs_balanced"] = row["row_frames"] / reference["row_frames"]
    print(f"{args.seconds:g} s of audio, real sam_audio solver (tiny widths), batch_size 1; "
          f"reference: balanced (the defaults), same run")
    print(f"{'preset':9} {'solver':8} {'steps':>5} {'rerank':>6} {'chunk/overlap':>13} "
          f"{'chunks':>6} {'calls':>6} {'calls/s':>7} {'x bal':>6} {'row-frames/s':>12} "
          f"{'x bal':>6}")
    for r in rows:
        print(f"{r['preset']:9} {r['solver']:8} {r['steps']:5d} {r['rerank']:6d} "
              f"{r['chunk_s']:6g}/{r['overlap_s']:<6g} {r['chunks']:6d} {r['calls']:6d} "
              f"{r['calls_per_audio_s']:7.2f} {r['calls_vs_balanced']:6.2f} "
              f"{r['row_frames_per_audio_s']:12.1f} {r['work_vs_balanced']:6.2f}")
    print(f"(a second of audio is {RATE // HOP} latent frames: a full pass over it once is "
          f"{RATE / HOP:g} row-frames)")
    print(f"\nper chunk (measured) and a {LONG_S / 60:g}-minute input (the payload's chunk plan "
          "x the calls measured per chunk):")
    print(f"{'preset':9} {'calls/chunk':>11} {'decodes x rows':>14} {'calls/s':>8} "
          f"{'x bal':>6} {'row-frames/s':>12} {'x bal':>6}")
    for r in rows:
        print(f"{r['preset']:9} {r['calls'] / r['chunks']:11g} "
              f"{r['decodes']:7d} x {r['decoded_rows'] // max(r['decodes'], 1):<4d} "
              f"{r['long_calls_per_audio_s']:8.3f} "
              f"{r['long_calls_per_audio_s'] / reference['long_calls_per_audio_s']:6.2f} "
              f"{r['long_row_frames_per_audio_s']:12.1f} "
              f"{r['long_row_frames_per_audio_s'] / reference['long_row_frames_per_audio_s']:6.2f}")
    if args.json:
        args.json.write_text(json.dumps({"seconds": args.seconds, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
