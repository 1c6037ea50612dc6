"""Stand-in ImageBindRanker (sam_audio/ranking/imagebind.py)."""

from __future__ import annotations

import os

import torch

from .ranker import Ranker

__imagebind_exists__ = os.environ.get("SAM_STANDIN_IMAGEBIND") == "1"


class ImageBindRanker(Ranker):
    def __init__(self, cfg):
        super().__init__()
        assert __imagebind_exists__ or os.environ.get("SAM_STANDIN_IMAGEBIND") == "1", (
            "Install ImageBind in order to use this ranker: "
            "https://github.com/facebookresearch/ImageBind/tree/main")
        self.scale = torch.nn.Parameter(torch.ones(1), requires_grad=False)

    @torch.inference_mode()
    def forward(self, extracted_audio, videos, sample_rate=48_000, **kwargs):
        return torch.stack([c.to(self.scale.dtype).abs().mean(-1) * self.scale
                            for c in extracted_audio])
