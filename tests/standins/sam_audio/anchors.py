"""Stand-in span prompting: the real anchor tensors, a checkable effect, a span predictor.

- ``process_anchors``: the real ``Batch.process_anchors`` (sam_audio/processor.py at
  68b48d4), to the tensor: ids ``{"<null>": 0, "+": 1, "-": 2, "<pad>": 3}``, frame ``k``
  of an item points at its span when ``ceil(start*sr/hop) <= k < ceil(end*sr/hop)`` (plain
  python slicing: a negative start counts from the end, an end past the item marks its
  padding), later spans win, frames no span covers point at ``<null>``, padding at
  ``<pad>``.
- ``apply_anchors``: what the stand-in model does with them (the real one embeds them,
  gated by ``tanh(gate)``): on every ``+`` frame the target is the whole input, on every
  ``-`` frame it is silence, elsewhere unchanged. Frame-local, so a test can check exactly
  where a span acted, and chunked == whole-file when chunks start on frame boundaries.
- ``SpanPredictor`` / ``SpanPredictorTransform``: the call shape of the real PE-A-Frame
  (``perception_models`` ``PEAudioFrame.forward(input_ids, input_features, attention_mask,
  padding_mask, return_spans=True)`` -> ``.spans``: per item ``[[start_s, end_s], …]`` at
  frame resolution). Deterministic: a frame is predicted where the input's RMS over the
  frame exceeds ``SAM_STANDIN_SPAN_LEVEL`` (default 0.05), whatever the text.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

ANCHOR_IDS = {"<null>": 0, "+": 1, "-": 2, "<pad>": 3}


def process_anchors(batch, anchors) -> None:
    """Sets ``batch.anchor_ids`` (B, N), ``batch.anchor_alignment`` (B, frames) and
    ``batch.anchors`` exactly as the real processor does."""
    size = len(batch.audios)
    alignment = torch.zeros(size, batch.audio_pad_mask.size(-1), dtype=torch.long)
    alignment[~batch.audio_pad_mask] = 1  # point to the pad token
    if anchors is None:
        ids = torch.full((size, 2), ANCHOR_IDS["<null>"], dtype=torch.long)
        ids[:, 1] = ANCHOR_IDS["<pad>"]
    else:
        rows = []
        for i, spans in enumerate(anchors):
            current = [ANCHOR_IDS["<null>"], ANCHOR_IDS["<pad>"]]
            for token, start, end in spans:
                first = math.ceil(start * batch.audio_sampling_rate / batch.hop_length)
                last = math.ceil(end * batch.audio_sampling_rate / batch.hop_length)
                alignment[i, first:last] = len(current)
                current.append(ANCHOR_IDS[token])
            rows.append(torch.tensor(current))
        ids = pad_sequence(rows, batch_first=True, padding_value=ANCHOR_IDS["<pad>"])
    batch.anchor_ids = ids.to(batch.audios.device)
    batch.anchor_alignment = alignment.to(batch.audios.device)
    batch.anchors = anchors


def frame_tokens(anchor_ids: torch.Tensor, anchor_alignment: torch.Tensor) -> torch.Tensor:
    """(B, frames) anchor id of every frame: what the real EmbedAnchors gathers."""
    return anchor_ids.gather(1, anchor_alignment)


def apply_anchors(target: torch.Tensor, padded: torch.Tensor, tokens: torch.Tensor,
                  hop: int) -> torch.Tensor:
    """(B, T) target with ``+`` frames set to the input, ``-`` frames to silence."""
    per_sample = tokens.repeat_interleave(hop, dim=1)[:, : target.size(1)]
    target = torch.where(per_sample == ANCHOR_IDS["+"], padded, target)
    return torch.where(per_sample == ANCHOR_IDS["-"], torch.zeros_like(target), target)


def audio_features(padded: torch.Tensor, hop: int) -> torch.Tensor:
    """(B, 1, T) whole frames -> (B, frames, 2): each frame's RMS, doubled like the real
    ``_get_audio_features`` stacks the codec features twice."""
    frames = padded[:, 0].unflatten(1, (-1, hop))
    rms = frames.float().pow(2).mean(dim=2).sqrt().to(padded.dtype).unsqueeze(2)
    return torch.cat([rms, rms], dim=2)


class Tokens(dict):
    """The transform's output (a transformers BatchFeature: a dict with ``.to``)."""

    def to(self, device):
        return Tokens({k: v.to(device) for k, v in self.items()})


class SpanPredictorTransform:
    def __call__(self, text=None, audio=None, sampling_rate=None) -> Tokens:
        lengths = torch.tensor([[len(t)] for t in text])
        return Tokens(input_ids=lengths, attention_mask=torch.ones_like(lengths))


@dataclass
class SpanOutput:
    spans: list


class SpanPredictor(torch.nn.Module):
    def __init__(self, hop_length: int, sample_rate: int):
        super().__init__()
        self.hop_length = hop_length
        self.sample_rate = sample_rate

    def forward(self, input_ids, input_values=None, input_features=None, attention_mask=None,
                padding_mask=None, threshold: float = 0.3, return_spans: bool = True):
        level = float(os.environ.get("SAM_STANDIN_SPAN_LEVEL", "0.05"))
        loud = input_features[:, :, 0].float() > level
        if padding_mask is not None:
            loud &= padding_mask
        spans = []
        for row in loud.tolist():
            found, start = [], None
            for k, on in enumerate([*row, False]):
                if on and start is None:
                    start = k
                elif not on and start is not None:
                    found.append([start * self.hop_length / self.sample_rate,
                                  k * self.hop_length / self.sample_rate])
                    start = None
            spans.append(found)
        return SpanOutput(spans=spans if return_spans else None)
