"""Stand-in video path, with the real signatures and limits (sam_audio at 68b48d4):

- ``Processor.mask_videos(videos, masks)`` -> ``[v * m.eq(0) ...]`` (processor.py), tensors
  only (the real one also decodes paths with torchcodec; the payload passes tensors);
- ``load_video(sizes, videos)``: the real tensor branch, NCHW asserted (3 channels), one
  frame per latent frame picked by ``linspace(0, N - 1, size).round()``;
- ``VisionEncoder``: the real transform's ``x.float() / 255`` before ``encode`` (a conv in the
  model's dtype: a bf16 model given float32 raises torch's real dtype error, as the real
  ``PerceptionEncoder`` does). Its feature per frame is the frame's mean over channels and
  pixels, in [0, 1].

Effect, exact and checkable: the target gains ``VIDEO_GAIN * feature[j]`` on every sample of
latent frame j (and the residual loses it, so target + residual is still the input). A test
computes the expected target from the frames and masks it gave.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence

VIDEO_GAIN = 0.05


def mask_videos(videos, masks) -> list[torch.Tensor]:
    if any(isinstance(v, str) for v in [*videos, *masks]):
        raise NotImplementedError("the stand-in decodes no video files (the real one uses "
                                  "torchcodec); pass (N, C, H, W) tensors")
    return [v * m.eq(0) for v, m in zip(videos, masks, strict=False)]


def load_video(sizes: torch.Tensor, videos) -> list[torch.Tensor]:
    all_frames = []
    for size, video in zip(sizes, videos, strict=False):
        if isinstance(video, str):
            raise NotImplementedError("the stand-in decodes no video files")
        assert video.size(1) == 3, (
            f"Expected video tensor to be in NCHW format, but found {video.size(1)} channels")
        idx = torch.linspace(0, video.size(0) - 1, int(size)).round().long()
        all_frames.append(video[idx])
    return all_frames


class VisionEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1, bias=True)  # mean over channels, in the dtype
        with torch.no_grad():
            self.conv.weight.fill_(1 / 3)
            self.conv.bias.zero_()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(1, 2, 3))  # (T,)

    @torch.no_grad()
    def forward(self, videos: list[torch.Tensor]) -> torch.Tensor:
        """(B, T): one feature per frame, padded along time like the real one."""
        return pad_sequence([self.encode(video.float() / 255.0) for video in videos],
                            batch_first=True)


def video_term(encoder: VisionEncoder, masked_video, sizes: torch.Tensor, hop: int,
               length: int, like: torch.Tensor) -> torch.Tensor:
    """(B, length) to add to the target: each latent frame's feature over its samples."""
    features = encoder(masked_video)
    rows = []
    for feature, size in zip(features, sizes, strict=True):
        held = feature[: int(size)].to(like.dtype).repeat_interleave(hop)
        row = torch.zeros(length, dtype=like.dtype, device=like.device)
        row[: min(length, held.numel())] = held[:length]
        rows.append(row)
    return VIDEO_GAIN * torch.stack(rows)
