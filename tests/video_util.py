"""Synthetic videos for tests, written with PyAV (the `video` extra): real containers and
codecs, made in the test. ``ffv1`` in Matroska is lossless (exact frame checks); ``h264`` +
``aac`` in MP4 is what users have."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def level_frames(count: int, height: int, width: int, step: int = 10) -> np.ndarray:
    """(N, H, W, 3) uint8: frame k is a flat grey of level k * step (plus a red stripe)."""
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for k in range(count):
        frames[k] = (k * step) % 256
        frames[k, :, : max(1, width // 8), 0] = 255
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int = 30, *, codec: str | None = None,
                audio: np.ndarray | None = None, audio_rate: int = 48_000,
                audio_codec: str | None = None) -> Path:
    """frames (N, H, W, 3) uint8 RGB; audio (n, channels) float32 in [-1, 1] or None."""
    import av

    lossless = path.suffix.lower() == ".mkv"
    codec = codec or ("ffv1" if lossless else "h264")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        if codec == "h264":
            stream.options = {"crf": "18", "preset": "ultrafast"}
        sound = None
        if audio is not None:
            name = audio_codec or ("pcm_s16le" if lossless else "aac")
            layout = "stereo" if audio.shape[1] == 2 else "mono"
            sound = container.add_stream(name, rate=audio_rate, layout=layout)
        for k, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = k
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            fmt = "s16" if sound.codec_context.name.startswith("pcm") else "fltp"
            block = 1024
            for start in range(0, len(audio), block):
                part = audio[start:start + block]
                if fmt == "s16":
                    data = np.round(part * 32767).astype(np.int16).reshape(1, -1)
                else:
                    data = np.ascontiguousarray(part.T.astype(np.float32))
                chunk = av.AudioFrame.from_ndarray(data, format=fmt,
                                                   layout="stereo" if part.shape[1] == 2
                                                   else "mono")
                chunk.sample_rate = audio_rate
                chunk.pts = start
                chunk.time_base = Fraction(1, audio_rate)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def box_masks(count: int, height: int, width: int, box: tuple[int, int, int, int],
              move: int = 0) -> np.ndarray:
    """(N, H, W, 3) uint8 mask video: white inside the box (moved right by `move` px a frame)."""
    masks = np.zeros((count, height, width, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    for k in range(count):
        masks[k, y0:y1, x0 + k * move:x1 + k * move] = 255
    return masks
