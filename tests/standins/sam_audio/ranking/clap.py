"""Stand-in ClapRanker (sam_audio/ranking/clap.py): it needs laion_clap, as the real one."""

from __future__ import annotations

from .ranker import Ranker


class ClapRanker(Ranker):
    def __init__(self, config):
        from laion_clap.training import data  # the real import: ModuleNotFoundError without it

        super().__init__()
        self.laion_data_module = data
        self.config = config

    def forward(self, extracted_audio, descriptions, sample_rate=48_000, **kwargs):
        raise NotImplementedError("the stand-in has no CLAP model")
