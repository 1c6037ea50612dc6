"""Stand-in SAMAudioJudgeModel (sam_audio/model/judge.py): the real call shape and output,
scores computed from the signals so a test can compute them exactly.

Per codec frame f (``hop_length`` samples; frames past ``padding_mask`` ignored, as the
real masked mean pooling does), with the energy kept ``r_f = mean(sep^2) / (mean(in^2) +
1e-6)`` and ``w`` the description's word count, the per-frame head is
``[r_f - 0.5, r_f, 1 - r_f, 0.5 r_f + 0.01 w]``; pooled = its mean over frames; the output
is ``pooled * std + mean`` (parameters, ``mean`` = 3, ``std`` = 1, like the real
de-normalisation), so in bf16 scores a few hundredths apart tie (bf16's step near 3 is
1/64). Everything runs in the parameters' dtype, like a cast real model.

Limits kept: both PE transformers prepend a CLS token and index a RoPE table of
``max_position_embeddings`` (config ``transformer``; 10000 by default): a pass over more
than ``max_position_embeddings - 1`` frames fails with the real ``AssertionError``
(``reshape_for_broadcast``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch

from ._hub import judge_config, require_checkpoint


@dataclass
class SAMAudioJudgeOutput:
    overall: torch.Tensor | None = None
    recall: torch.Tensor | None = None
    precision: torch.Tensor | None = None
    faithfulness: torch.Tensor | None = None
    text_model_output: Any = None
    audio_model_output: Any = None


class _Part:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class _Config:
    """SAMAudioJudgeConfig's shape: ``audio_codec.hop_length``, ``transformer`` and
    ``finetune_transformer`` with ``max_position_embeddings``."""

    def __init__(self, body: dict):
        self.audio_codec = _Part(hop_length=int(body.get("audio_codec", {}).get(
            "hop_length", 1920)))
        for part in ("transformer", "finetune_transformer"):
            given = body.get(part) or body.get("transformer") or {}
            setattr(self, part, _Part(max_position_embeddings=int(given.get(
                "max_position_embeddings", 10_000))))


class SAMAudioJudgeModel(torch.nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.config = _Config(config)
        self.mean = torch.nn.Parameter(torch.full((4,), 3.0), requires_grad=False)
        self.std = torch.nn.Parameter(torch.ones(4), requires_grad=False)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> SAMAudioJudgeModel:
        config = judge_config(model_id)
        require_checkpoint(model_id)
        log = os.environ.get("SAM_STANDIN_LOAD_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as out:
                out.write(json.dumps({"judge": model_id, "pid": os.getpid()}) + "\n")
        return cls(config)

    def forward(self, input_ids, input_values, separated_values, attention_mask=None,
                padding_mask=None) -> SAMAudioJudgeOutput:
        dtype, hop = self.mean.dtype, self.config.audio_codec.hop_length
        for given in (input_values, separated_values):
            if given.dtype != dtype:  # what the real codec's first conv raises
                raise RuntimeError(f"Input type ({given.dtype}) and bias type ({dtype}) "
                                   "should be the same")
        x, y = input_values[:, 0], separated_values[:, 0]
        bsz, length = x.shape
        frames = length // hop
        positions = min(self.config.transformer.max_position_embeddings,
                        self.config.finetune_transformer.max_position_embeddings)
        if frames + 1 > positions:  # the real RoPE table's shape check
            raise AssertionError()
        e_in = (x.reshape(bsz, frames, hop) ** 2).mean(-1)
        e_sep = (y.reshape(bsz, frames, hop) ** 2).mean(-1)
        ratio = e_sep / (e_in + 1e-6)
        words = (input_ids != 0).sum(-1, keepdim=True).to(dtype)  # one id per word here
        head = torch.stack([ratio - 0.5, ratio, 1 - ratio, 0.5 * ratio + 0.01 * words], -1)
        valid = (torch.ones(bsz, frames, dtype=torch.bool, device=x.device)
                 if padding_mask is None else padding_mask[:, ::hop][:, :frames])
        weight = valid.to(dtype).unsqueeze(-1)
        pooled = (head * weight).sum(1) / weight.sum(1)
        scores = pooled * self.std + self.mean
        return SAMAudioJudgeOutput(*scores.chunk(4, dim=1))


__all__ = ["SAMAudioJudgeModel", "SAMAudioJudgeOutput"]
