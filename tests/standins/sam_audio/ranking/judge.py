"""Stand-in JudgeRanker (sam_audio/ranking/judge.py): the judge's ``overall`` per candidate."""

from __future__ import annotations

import torch

from ..judge import SAMAudioJudgeModel
from ..processor import SAMAudioJudgeProcessor
from .ranker import Ranker


class JudgeRankerConfig:
    kind = "judge"

    def __init__(self, checkpoint_or_model_id: str = "facebook/sam-audio-judge"):
        self.checkpoint_or_model_id = checkpoint_or_model_id


class JudgeRanker(Ranker):
    def __init__(self, config: JudgeRankerConfig):
        super().__init__()
        self.config = config
        self.model = SAMAudioJudgeModel.from_pretrained(config.checkpoint_or_model_id)
        self.processor = SAMAudioJudgeProcessor.from_pretrained(config.checkpoint_or_model_id)

    @torch.inference_mode()
    def forward(self, input_audio, extracted_audio, descriptions, sample_rate=48_000,
                **kwargs):
        bsz, ncandidates = len(input_audio), len(input_audio[0])
        input_seqs = [x[None] for candidates in input_audio for x in candidates]
        extracted_seqs = [x[None] for candidates in extracted_audio for x in candidates]
        repeated = [x for x in descriptions for _ in range(ncandidates)]
        processed = self.processor(text=repeated, input_audio=input_seqs,
                                   separated_audio=extracted_seqs, return_tensors="pt",
                                   padding=True, sampling_rate=sample_rate)
        res = self.model(**processed.to(input_audio[0].device))
        return res.overall.view(bsz, ncandidates)
