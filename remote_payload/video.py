"""Visual prompts on the GPU box: an item's frames and masks, cut to each chunk's time range.

The laptop decodes the video (remote_sep/jobs/video_decode.py) and uploads two ``.npy``
files through the verified cache; an item names them in ``Item.video``::

    {"frames": "/base/cache/<sha>.npy",   # uint8 (N, 3, H, W): RGB frames, NCHW
     "masks": "/base/cache/<sha>.npy",    # uint8 (N, 1, H, ceil(W / 8)): np.packbits(axis=-1)
     "fps": 25.0}                          # frame k shows time k / fps of the item's audio

Masks are bit-packed (1 bit a pixel, 1/24 of the frames' size: the upload stays small);
a set bit marks the object, as SAM 2/3 masks do, and goes to the real
``processor.mask_videos(videos, masks)`` unchanged (which keeps the pixels where the mask
is 0: ``v * m.eq(0)``, sam_audio/processor.py at 68b48d4; upstream issue #75 asks whether
that inversion is intended — we pass what upstream's own example passes).

Time: the real processor gives the vision encoder one frame per latent frame (1920 samples
at 48 kHz, 25 a second); given a tensor it picks ``linspace(0, N - 1, frames)`` of it. We hand
each chunk exactly one frame per latent frame, the one nearest in time to that latent
frame's start (``round(t * fps)``, what the processor's own path branch does with ``argmin``
over the frame times), so its linspace is the identity and a chunk sees the frames of its
own time range. Past the video's end the last frame holds.

Frames stay memory-mapped: one chunk's frames are read at a time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .manifest import HOP_LENGTH, MODEL_SAMPLE_RATE

VIDEO_KEYS = {"frames", "masks", "fps"}


class VideoError(ValueError):
    """The item's video reference or files are not usable (a bad_config)."""


def check_ref(ref: Any, where: str) -> None:
    """The shape of ``Item.video`` (no file access): the message names the field."""
    if not isinstance(ref, dict):
        raise VideoError(f"{where}.video must be an object with {sorted(VIDEO_KEYS)}")
    if set(ref) != VIDEO_KEYS:
        raise VideoError(f"{where}.video needs exactly the keys {sorted(VIDEO_KEYS)}, "
                         f"got {sorted(ref)}")
    for key in ("frames", "masks"):
        if not isinstance(ref[key], str) or not ref[key]:
            raise VideoError(f"{where}.video.{key} must be a file path")
    fps = ref["fps"]
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not (
            math.isfinite(fps) and fps > 0):
        raise VideoError(f"{where}.video.fps must be a number > 0")


@dataclass
class VideoSource:
    """One item's frames and masks, memory-mapped."""

    frames: np.ndarray  # uint8 (N, 3, H, W)
    packed_masks: np.ndarray  # uint8 (N, 1, H, ceil(W / 8))
    fps: float

    @property
    def count(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    def indices(self, start: int, samples: int, rate: int = MODEL_SAMPLE_RATE,
                hop: int = HOP_LENGTH) -> np.ndarray:
        """Frame index for each latent frame of the chunk ``[start, start + samples)``."""
        latent = max(1, math.ceil(samples / hop))
        times = (start + np.arange(latent, dtype=np.float64) * hop) / rate
        return np.clip(np.rint(times * self.fps), 0, self.count - 1).astype(np.int64)

    def for_chunk(self, start: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
        """(frames uint8 (n, 3, H, W), masks uint8 0/1 (n, 1, H, W)) for one chunk."""
        picks = self.indices(start, samples)
        frames = np.ascontiguousarray(self.frames[picks])
        width = self.size[1]
        masks = np.unpackbits(np.asarray(self.packed_masks[picks]), axis=-1, count=width)
        return frames, np.ascontiguousarray(masks)


def open_video(base: str, ref: dict[str, Any]) -> VideoSource:
    """Map the item's files and check that they belong together; VideoError otherwise."""
    frames = _load(os.path.join(base, ref["frames"]), "frames")
    masks = _load(os.path.join(base, ref["masks"]), "masks")
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] < 1:
        raise VideoError(f"video frames {ref['frames']}: shape {frames.shape} is not "
                         "(N >= 1, 3, H, W)")
    count, _, height, width = frames.shape
    want = (count, 1, height, (width + 7) // 8)
    if masks.shape != want:
        raise VideoError(f"video masks {ref['masks']}: shape {masks.shape}, expected {want} "
                         f"(bit-packed, one per frame of {count} frames of {width}x{height})")
    return VideoSource(frames, masks, float(ref["fps"]))


def _load(path: str, what: str) -> np.ndarray:
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VideoError(f"video {what} {path} cannot be read as .npy: {exc}") from exc
    if data.dtype != np.uint8:
        raise VideoError(f"video {what} {path}: dtype {data.dtype}, expected uint8")
    return data


def masked_videos(processor: Any, videos: list[tuple[np.ndarray, np.ndarray]]) -> list[Any]:
    """The real API, ``processor.mask_videos(videos, masks)``, on one batch's chunks (CPU
    tensors: ``Batch.to(device)`` moves them with the audio)."""
    import torch

    frames = [torch.from_numpy(f) for f, _ in videos]
    masks = [torch.from_numpy(m) for _, m in videos]
    return processor.mask_videos(frames, masks)


def fit_vision_encoder(model: Any, dtype: Any, device: str) -> bool:
    """Make the vision encoder run in a bf16/fp16 model.

    The real ``PerceptionEncoder`` turns frames into float32 (``x.float() / 255``) inside its
    transform and hands them to its first conv: in a bf16/fp16 model that is "Input type
    (torch.FloatTensor) and weight type (…BFloat16…) should be the same" for any video
    (checked with the real classes at 68b48d4). The encoder's forward is run under autocast
    in the model's dtype (its convs and matmuls take the float32 frames) and its features are
    handed on in that dtype. Wrapping ``forward`` of whatever sits at ``model.vision_encoder``
    also covers an encoder built on its first call (a lazy load). fp32 needs nothing.
    Returns whether it wrapped.
    """
    import torch

    encoder = getattr(model, "vision_encoder", None)
    if encoder is None or dtype == torch.float32:
        return False
    forward = encoder.forward
    device_type = torch.device(device).type

    def forward_in_dtype(*args, **kwargs):
        with torch.autocast(device_type=device_type, dtype=dtype):
            features = forward(*args, **kwargs)
        return features.to(dtype)

    encoder.forward = forward_in_dtype
    return True
