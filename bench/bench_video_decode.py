"""Laptop-side video staging: what `separate clip.mp4 --box …` costs before the upload.

    python3 bench/bench_video_decode.py [--seconds 10] [--width 1280] [--height 720]

Writes a synthetic H.264 + AAC clip (moving content, 30 fps), then, in the same run:
(ref) PyAV decoding every frame and nothing else — the floor any decoder pays;
(a)   video_decode.decode: the same decode plus resize to 336x336, 25 fps sampling, the box
      mask and both .npy files;
(b)   video_decode.extract_audio: the audio track to float32 W64.
Prints seconds, (a)/(ref), real-time factors (clip seconds per second of work) and the bytes
that go to the host against the clip's own size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from video_util import write_video  # noqa: E402

from remote_sep.jobs import video_decode  # noqa: E402


def clip_frames(seconds: float, fps: int, height: int, width: int) -> np.ndarray:
    count = round(seconds * fps)
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for k in range(count):
        frames[k, ..., 0] = (x + 4 * k) % 256
        frames[k, ..., 1] = (y + 2 * k) % 256
        frames[k, ..., 2] = ((x + y) // 4 + k) % 256
    return frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()
    import av

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = np.arange(round(args.seconds * 48_000)) / 48_000
        tone = (0.3 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1)
                ).astype(np.float32)
        clip = write_video(folder / "clip.mp4", clip_frames(args.seconds, 30, args.height,
                                                            args.width), 30, audio=tone)
        started = time.perf_counter()
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            decoded = sum(1 for _ in container.decode(stream))
        ref = time.perf_counter() - started
        started = time.perf_counter()
        got = video_decode.decode(clip, folder / "f.npy", folder / "m.npy",
                                  box=(args.width // 4, args.height // 4, args.width // 2,
                                       args.height // 2))
        staged = time.perf_counter() - started
        started = time.perf_counter()
        track = video_decode.extract_audio(clip, folder / "a.w64")
        extracted = time.perf_counter() - started
        sizes = {name: (folder / name).stat().st_size for name in ("f.npy", "m.npy")}
        sizes["a.w64"] = track.stat().st_size
        clip_bytes = clip.stat().st_size
    print(f"clip: {args.seconds:g} s, {args.width}x{args.height} @ 30 fps, {decoded} frames, "
          f"{clip_bytes / 1e6:.1f} MB (H.264 + AAC)")
    print(f"(ref) decode only     {ref:7.2f} s  ({args.seconds / ref:6.1f}x real time)")
    print(f"(a)   decode + stage  {staged:7.2f} s  ({args.seconds / staged:6.1f}x real time)"
          f"  (a)/(ref) = {staged / ref:.2f}  -> {got.count} frames at 25 fps, {got.size}px")
    print(f"(b)   audio track     {extracted:7.2f} s  ({args.seconds / extracted:6.1f}x real "
          "time)")
    total = sum(sizes.values())
    print("to the host: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items())
          + f"; {total / 1e6 / args.seconds:.2f} MB per second of clip")


if __name__ == "__main__":
    main()
