"""Video on the laptop: frames and masks decoded into what SAM Audio's processor takes, and the
audio track extracted, with PyAV (the optional extra ``remote-sep[video]``).

Why PyAV and not an ``ffmpeg`` binary: its wheels carry their own FFmpeg libraries on Linux,
macOS and Windows (nothing else to install, no version drift between hosts), it hands frames
over as numpy arrays with their timestamps (no pipe or text parsing), and it decodes the
video and its mask in lockstep, a frame at a time, so memory stays flat for any length.

What the model takes (sam_audio at 68b48d4): one frame per latent frame, 25 a second
(``FPS``, 48 kHz / hop 1920), each resized to the vision encoder's ``image_size`` squared
(``PerceptionEncoderConfig``: 336 by default) — so frames are sampled here at 25 fps
(nearest source frame in time) and resized to ``FRAME_SIZE`` squared: shipping more pixels
or frames would only be thrown away on the GPU box. Files (format in remote_payload/video.py):

- frames: uint8 ``.npy`` (N, 3, S, S), RGB (8.5 MB per second of video at S = 336);
- masks: uint8 ``.npy`` (N, 1, S, ceil(S / 8)), ``np.packbits`` of the object mask (1 where
  the mask video is brighter than half, or inside ``--box``), 1/24 of the frames' size.

Every failure here is the user's input: ``ConfigError`` (bad_config) naming the file, or
``BadAudio`` for a video without the audio track it was asked for.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from remote_payload.manifest import HOP_LENGTH, MODEL_SAMPLE_RATE
from remote_sep.errors import BadAudio, ConfigError

FPS = MODEL_SAMPLE_RATE / HOP_LENGTH  # 25.0: one frame per latent frame
FRAME_SIZE = 336  # PerceptionEncoderConfig.image_size (the PE-Core-L14-336 default)
MASK_THRESHOLD = 127  # a lossy mask video is never exactly 0/255


def require_av() -> Any:
    try:
        import av
    except ImportError:
        raise ConfigError("reading a video needs PyAV, which is not installed",
                          hint="pip install 'remote-sep[video]'  (or: pip install av)") from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    has_audio: bool


def probe_video(path: Path, what: str = "video") -> VideoInfo:
    """Open the file and its first video stream; ConfigError when that is not possible."""
    av = require_av()
    if not path.is_file():
        raise ConfigError(f"{what} file not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ConfigError(f"{path} holds no video stream (the {what} must be a video)")
            stream = container.streams.video[0]
            return VideoInfo(path, int(stream.codec_context.width),
                             int(stream.codec_context.height), bool(container.streams.audio))
    except av.FFmpegError as exc:
        raise ConfigError(f"{path} is not a video PyAV can read ({exc})") from None


def is_video(path: Path) -> bool:
    """A file with a video stream (PyAV installed); False for anything else."""
    try:
        import av
    except ImportError:
        return path.suffix.lower() in {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except (av.FFmpegError, OSError):
        return False


def parse_box(text: str) -> tuple[int, int, int, int]:
    """'X0,Y0,X1,Y1' in pixels of the video frame -> ints (bounds checked in check_box)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        box = tuple(int(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise ConfigError(f"--box {text!r}: use X0,Y0,X1,Y1 (whole pixels of the video frame, "
                          "left,top,right,bottom)")
    return box  # type: ignore[return-value]


def check_box(box: tuple[int, int, int, int], info: VideoInfo) -> None:
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= info.width and 0 <= y0 < y1 <= info.height):
        raise ConfigError(f"--box {x0},{y0},{x1},{y1} is not inside the {info.width}x"
                          f"{info.height} frame of {info.path.name} (need 0 <= X0 < X1 <= "
                          f"{info.width} and 0 <= Y0 < Y1 <= {info.height})")


def check_pair(video: Path, mask: Path | None, box: tuple[int, int, int, int] | None
               ) -> VideoInfo:
    """Headers only: both readable, the mask of the video's frame size, the box inside."""
    info = probe_video(video)
    if mask is not None:
        mask_info = probe_video(mask, "mask")
        if (mask_info.width, mask_info.height) != (info.width, info.height):
            raise ConfigError(f"mask {mask.name} is {mask_info.width}x{mask_info.height} but "
                              f"the video {video.name} is {info.width}x{info.height}: one mask "
                              "frame per video frame, of the same size")
    if box is not None:
        check_box(box, info)
    return info


@dataclass(frozen=True)
class Decoded:
    frames: Path
    masks: Path
    count: int  # frames written (at FPS)
    source_frames: int  # frames decoded from the video
    size: int


def decode(video: Path, frames_out: Path, masks_out: Path, *, mask: Path | None = None,
           box: tuple[int, int, int, int] | None = None, size: int = FRAME_SIZE,
           fps: float = FPS) -> Decoded:
    """Frames (and the mask video in lockstep, or the box) -> the two .npy files."""
    av = require_av()
    info = check_pair(video, mask, box)
    box_mask = _box_mask(box, info, size) if box is not None else None
    raw_frames, raw_masks = (Path(f"{p}.raw") for p in (frames_out, masks_out))
    try:
        with av.open(str(video)) as container, open(raw_frames, "wb") as fout, \
                open(raw_masks, "wb") as mout:
            mask_container = av.open(str(mask)) if mask is not None else None
            try:
                pairs = _pairs(container, mask_container, video, mask, size, box_mask)
                count, decoded = _resample(pairs, fps, _frame_step(container), fout, mout)
            finally:
                if mask_container is not None:
                    mask_container.close()
        _to_npy(raw_frames, frames_out, (count, 3, size, size))
        _to_npy(raw_masks, masks_out, (count, 1, size, (size + 7) // 8))
    except av.FFmpegError as exc:
        raise ConfigError(f"{video} could not be decoded ({exc})") from None
    finally:
        raw_frames.unlink(missing_ok=True)
        raw_masks.unlink(missing_ok=True)
    return Decoded(frames_out, masks_out, count, decoded, size)


class _Picked:
    """One source frame (and its mask frame), converted only once picked: frames that no
    output time is nearest to are decoded but never resized."""

    def __init__(self, time: float, frame, mask_frame, box_mask, size: int):
        self.time = time
        self._frame, self._mask_frame, self._box_mask, self._size = (frame, mask_frame,
                                                                     box_mask, size)
        self._bytes: tuple[bytes, bytes] | None = None

    def data(self) -> tuple[bytes, bytes]:
        """(RGB (3, S, S) bytes, packed mask (1, S, ceil(S/8)) bytes)."""
        if self._bytes is None:
            # AREA: a box filter, the right one for shrinking (and the fastest swscale has)
            size = self._size
            rgb = self._frame.reformat(width=size, height=size, format="rgb24",
                                       interpolation="AREA").to_ndarray()
            if self._mask_frame is not None:
                gray = self._mask_frame.reformat(width=size, height=size, format="gray",
                                                 interpolation="AREA").to_ndarray()
                mask = (gray > MASK_THRESHOLD).astype(np.uint8)
            else:
                mask = self._box_mask
            self._bytes = (rgb.transpose(2, 0, 1).tobytes(),
                           np.packbits(mask[None], axis=-1).tobytes())
            self._frame = self._mask_frame = None
        return self._bytes


def _pairs(container, mask_container, video: Path, mask: Path | None, size: int,
           box_mask: np.ndarray | None) -> Iterator[_Picked]:
    """Every source frame with its time from the first frame, and its mask."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    masks = None
    if mask_container is not None:
        mask_stream = mask_container.streams.video[0]
        mask_stream.thread_type = "AUTO"
        masks = mask_container.decode(mask_stream)
    rate = float(stream.average_rate or stream.guessed_rate or FPS)
    first = None
    index = 0
    for frame in container.decode(stream):
        time = frame.time if frame.time is not None else index / rate
        first = time if first is None else first
        mask_frame = None
        if masks is not None:
            mask_frame = next(masks, None)
            if mask_frame is None:
                raise ConfigError(f"mask {mask.name} ends after {index} frames, before the "
                                  f"video {video.name}: one mask frame per video frame")
        yield _Picked(time - first, frame, mask_frame, box_mask, size)
        index += 1
    if masks is not None and next(masks, None) is not None:
        raise ConfigError(f"mask {mask.name} has more frames than the video {video.name} "
                          f"({index}): one mask frame per video frame")
    if index == 0:
        raise ConfigError(f"{video} holds no video frames")


def _frame_step(container) -> float:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    return 1 / float(rate) if rate else 1 / FPS


def _resample(pairs, fps: float, step: float, fout, mout) -> tuple[int, int]:
    """Write, for every output time k / fps, the source frame nearest to it; the last one
    holds for its own duration (``step``, the stream's nominal frame time). Returns
    (frames written, frames decoded)."""
    written = decoded = 0
    prev: _Picked | None = None

    def emit(pick: _Picked) -> None:
        nonlocal written
        rgb, mask = pick.data()
        fout.write(rgb)
        mout.write(mask)
        written += 1

    for current in pairs:
        decoded += 1
        while written / fps <= current.time:
            t = written / fps
            emit(current if prev is None or current.time - t < t - prev.time else prev)
        prev = current
    end = prev.time + step  # the last frame shows for one frame's duration
    # (1 ms of slack: containers such as Matroska round frame times to milliseconds)
    while written / fps < end - 1e-3 or written == 0:
        emit(prev)
    return written, decoded


def _box_mask(box: tuple[int, int, int, int], info: VideoInfo, size: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((size, size), dtype=np.uint8)
    rows = slice(math.floor(y0 * size / info.height), math.ceil(y1 * size / info.height))
    cols = slice(math.floor(x0 * size / info.width), math.ceil(x1 * size / info.width))
    mask[rows, cols] = 1
    return mask


def _to_npy(raw: Path, out: Path, shape: tuple[int, ...]) -> None:
    """The .npy header, then the raw bytes streamed after it (no copy held in memory)."""
    assert raw.stat().st_size == math.prod(shape), (raw, shape)
    with open(out, "wb") as target, open(raw, "rb") as source:
        np.lib.format.write_array_header_1_0(
            target, {"descr": "|u1", "fortran_order": False, "shape": shape})
        while block := source.read(1 << 22):
            target.write(block)
        target.flush()
        os.fsync(target.fileno())


def extract_audio(video: Path, out: Path) -> Path:
    """The video's first audio track -> float32 samples at its own rate and channel count,
    in a Wave64 file (``out``'s suffix is the caller's; use ``.w64``). Not WAV: libsndfile
    stamps float WAVs with a PEAK chunk holding the time of writing, so the same track would
    hash differently each run and defeat the content-addressed cache (W64 has no such
    chunk, nor WAV's 4 GB limit)."""
    av = require_av()
    import soundfile

    try:
        with av.open(str(video)) as container:
            if not container.streams.audio:
                raise BadAudio(f"{video.name} has no audio track",
                               hint="give the audio as the input and the video with --video: "
                                    f"remote-sep separate AUDIO --video {video.name} …")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate)
            channels = int(stream.codec_context.channels)
            layout = stream.codec_context.layout.name
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            written = 0
            with soundfile.SoundFile(str(out), "w", samplerate=rate, channels=channels,
                                     subtype="FLOAT", format="W64") as sink:
                for frame in container.decode(stream):
                    for part in resampler.resample(frame):
                        block = part.to_ndarray().T
                        sink.write(block)
                        written += len(block)
                for part in resampler.resample(None):
                    block = part.to_ndarray().T
                    sink.write(block)
                    written += len(block)
    except av.FFmpegError as exc:
        raise ConfigError(f"the audio track of {video} could not be decoded ({exc})") from None
    if written == 0:
        raise BadAudio(f"the audio track of {video.name} holds no samples")
    return out
