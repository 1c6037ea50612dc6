"""Stand-in rankers (sam_audio/ranking/*.py): the same module names, signatures and build-time
failures; ``create_ranker`` takes the config.json dict (``kind`` + arguments).

- ``judge``: ``JudgeRanker`` loads the stand-in judge (``checkpoint_or_model_id``) and
  returns its ``overall`` per candidate, like the real one.
- ``clap``: building imports ``laion_clap`` as the real one does: without it, the real
  ``ModuleNotFoundError``.
- ``imagebind``: without ImageBind the real ``AssertionError`` ("Install ImageBind…");
  ``SAM_STANDIN_IMAGEBIND=1`` stands for an installed one (scores: the candidate's mean
  absolute level, deterministic).
- ``ensemble``: the weighted sum of its rankers.
"""

from __future__ import annotations

import json
import os


def _log_built(kind: str) -> None:
    log = os.environ.get("SAM_STANDIN_LOAD_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps({"ranker_built": kind, "pid": os.getpid()}) + "\n")


def create_ranker(config):
    if config is None:
        return None
    config = dict(config)
    kind = config.pop("kind")
    _log_built(kind)
    if kind == "judge":
        from .judge import JudgeRanker, JudgeRankerConfig

        return JudgeRanker(JudgeRankerConfig(**config))
    if kind == "clap":
        from .clap import ClapRanker

        return ClapRanker(config)
    if kind == "imagebind":
        from .imagebind import ImageBindRanker

        return ImageBindRanker(config)
    if kind == "ensemble":
        from .ranker import EnsembleRanker

        pairs = list(config["rankers"].values())
        return EnsembleRanker([create_ranker(c) for c, _ in pairs], [w for _, w in pairs])
    raise AssertionError(f"unknown ranker kind {kind!r}")
