"""Stand-in Ranker / EnsembleRanker (sam_audio/ranking/ranker.py)."""

from __future__ import annotations

import torch


class Ranker(torch.nn.Module):
    pass


class EnsembleRanker(Ranker):
    def __init__(self, rankers, weights):
        super().__init__()
        self.rankers = torch.nn.ModuleList(rankers)
        self.weights = weights

    def forward(self, **kwargs):
        result = None
        for weight, ranker in zip(self.weights, self.rankers, strict=False):
            score = weight * ranker(**kwargs)
            result = score if result is None else result + score
        return result
