"""Quality scores (``settings.score``): the public SAM Audio judge scores each target
against its input and description — overall, recall, precision, faithfulness.

Real API (sam_audio at 68b48d4, ``model/judge.py``, ``processor.py``):
``SAMAudioJudgeModel.from_pretrained(id)`` / ``SAMAudioJudgeProcessor.from_pretrained(id)``
(a Hub id, revision ``sam_audio``, or a folder with config.json + checkpoint.pt + the text
tokenizer); ``processor(text=[...], input_audio=[(1, T)], separated_audio=[(1, T)],
sampling_rate=48000)`` then ``model(**batch)`` -> ``.overall/.recall/.precision/
.faithfulness``, each ``(B, 1)``.

Its limits, read from that code:
- 48 kHz only (the processor raises ValueError for another ``sampling_rate``);
- the processor reflect-pads to whole codec frames (hop 1920): a signal of at most half a
  frame crashes there, so such a signal gets silence up to one frame (as the engine does);
- both PE transformers prepend a CLS token and index a RoPE table of
  ``max_position_embeddings`` rows (10000 by default): one pass holds at most
  ``max_position_embeddings - 1`` frames (about 400 s at 25 frames/s);
- the transformers ignore the padding mask (it reaches them as an unused keyword), so items
  of different lengths in one batch would score differently than alone: one item a call.

Chunking: an item that fits one pass is scored whole. A longer one is cut into equal
windows of at most that many whole frames and the scores are averaged weighted by each
window's length: the judge's own pooling is a mean over frames, so this is the same mean
taken over the windows (exact for the frame-wise part; the attention sees one window at a
time). A CUDA OOM halves the window (down to ``MIN_WINDOW_S``).

The judge always runs in fp32 (bf16 scores tie, see rankers.py). One load per process;
when the model's text ranker already holds the same judge, it is shared, not loaded twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from typing import Any

import numpy as np

from . import audio_io
from .engine import EngineError
from .protocol import SCORE_NAMES

SCORES_SUFFIX = ".scores.json"
MIN_WINDOW_S = 10.0
PREFETCH = "`remote-sep bootstrap HOST --prefetch --score`"


class JudgeError(EngineError):
    """The judge cannot be used: ends the job like a model that cannot load."""


class Judge:
    """Loaded once; ``score_files`` scores one target file against its input."""

    def __init__(self, model_id: str, device: str, model: Any = None, processor: Any = None):
        import torch

        self.torch = torch
        self.model_id = model_id
        self.device = device
        self.shared = model is not None
        if model is None:
            model, processor = _load(model_id)
            model = model.eval().to(device=device, dtype=torch.float32)
        self.model = model
        self.processor = processor
        config = getattr(model, "config", None)
        self.hop = int(getattr(processor, "audio_hop_length", 1920))
        self.rate = int(getattr(processor, "audio_sampling_rate", audio_io.MODEL_RATE))
        self.max_frames = _max_frames(config)

    @property
    def window_samples(self) -> int:
        return self.max_frames * self.hop

    def describe(self) -> dict[str, Any]:
        return {"judge": self.model_id, "judge_shared": self.shared,
                "judge_window_s": round(self.window_samples / self.rate, 3)}

    # -- scoring ----------------------------------------------------------------------
    def score_files(self, input_path: str, target_path: str, description: str
                    ) -> dict[str, Any]:
        """Scores of the target file (mono mean of its channels) against the input's."""
        mixture = _mono_at_rate(input_path, self.rate)
        target = _mono_at_rate(target_path, self.rate)
        size = min(len(mixture), len(target))  # a resampled output may differ by a sample
        return self.score(mixture[:size], target[:size], description)

    def score(self, mixture: np.ndarray, target: np.ndarray, description: str
              ) -> dict[str, Any]:
        window = self.window_samples
        floor = max(self.hop, round(MIN_WINDOW_S * self.rate))
        while True:
            try:
                return self._windowed(mixture, target, description, window)
            except Exception as exc:
                if not _is_oom(self.torch, exc) or window // 2 < floor:
                    raise
                window = max(floor, (window // 2) // self.hop * self.hop)
                if self.device.startswith("cuda"):
                    self.torch.cuda.empty_cache()

    def _windowed(self, mixture: np.ndarray, target: np.ndarray, description: str,
                  window: int) -> dict[str, Any]:
        spans = windows(len(mixture), window, self.hop)
        totals = dict.fromkeys(SCORE_NAMES, 0.0)
        for start, end in spans:
            values = self._one_pass(mixture[start:end], target[start:end], description)
            for name in SCORE_NAMES:
                totals[name] += values[name] * (end - start)
        result: dict[str, Any] = {name: round(totals[name] / len(mixture), 4)
                                  for name in SCORE_NAMES}
        result["windows"] = len(spans)
        return result

    def _one_pass(self, mixture: np.ndarray, target: np.ndarray, description: str
                  ) -> dict[str, float]:
        torch = self.torch
        pieces = [torch.from_numpy(_fit(np.ascontiguousarray(x, np.float32), self.hop))[None]
                  for x in (mixture, target)]
        with contextlib.redirect_stdout(sys.stderr), torch.inference_mode():
            batch = self.processor(text=[description], input_audio=[pieces[0]],
                                   separated_audio=[pieces[1]], sampling_rate=self.rate)
            output = self.model(**batch.to(self.device))
        return {name: float(getattr(output, name).float().reshape(-1)[0])
                for name in SCORE_NAMES}


def windows(size: int, window: int, hop: int) -> list[tuple[int, int]]:
    """Equal windows of whole frames covering [0, size): one when it fits, else the fewest
    of at most ``window`` samples (the last one takes the rest)."""
    if size <= window:
        return [(0, size)]
    count = math.ceil(size / window)
    step = math.ceil(size / count / hop) * hop
    return [(start, min(size, start + step)) for start in range(0, size, step)]


def _max_frames(config: Any) -> int:
    """Frames one pass may hold: the smaller RoPE table of the two transformers, less CLS."""
    tables = [getattr(getattr(config, part, None), "max_position_embeddings", None)
              for part in ("transformer", "finetune_transformer")]
    known = [int(t) for t in tables if t]
    return (min(known) if known else 10_000) - 1


def _fit(signal: np.ndarray, hop: int) -> np.ndarray:
    """At most half a frame: silence up to one frame (the processor's reflect pad would
    crash); else unchanged (the processor pads it itself)."""
    if len(signal) <= hop // 2:
        return np.concatenate([signal, np.zeros(hop - len(signal), dtype=signal.dtype)])
    return signal


def _mono_at_rate(path: str, rate: int) -> np.ndarray:
    info = audio_io.probe(path)
    if rate != audio_io.MODEL_RATE:
        raise JudgeError("internal", f"the judge takes {rate} Hz, the payload reads at "
                         f"{audio_io.MODEL_RATE} Hz")
    blocks = [block.mean(axis=1) for block in audio_io.read_resampled(info)]
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def _is_oom(torch: Any, exc: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(exc, oom_type) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


# -- loading ------------------------------------------------------------------------------
def _load(model_id: str) -> tuple[Any, Any]:
    try:
        from sam_audio import SAMAudioJudgeModel, SAMAudioJudgeProcessor
    except ImportError as exc:
        raise JudgeError("not_provisioned", f"--score needs SAMAudioJudgeModel from sam_audio "
                         f"({exc}); run `remote-sep bootstrap HOST`") from exc
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return (SAMAudioJudgeModel.from_pretrained(model_id),
                    SAMAudioJudgeProcessor.from_pretrained(model_id))
    except Exception as exc:
        mapped = load_failure(exc, model_id)
        if mapped is None:
            raise
        raise JudgeError(*mapped) from exc


def load_failure(exc: BaseException, model_id: str) -> tuple[str, str] | None:
    names = {k.__name__ for link in _chain(exc) for k in type(link).__mro__}
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    page = f"https://huggingface.co/{model_id}"
    if "GatedRepoError" in names:
        return "gated", (f"--score: no access to the gated judge {model_id}: request access "
                         f"on {page} with the Hugging Face account whose token this host uses")
    if "LocalEntryNotFoundError" in names:
        return "not_provisioned", (f"--score needs the judge {model_id}, which is not in this "
                                   f"host's Hugging Face cache, and the Hub could not be "
                                   f"reached ({first}); download it first: {PREFETCH}")
    if "RepositoryNotFoundError" in names or (
            "FileNotFoundError" in names and os.path.isdir(model_id)):
        return "unknown_model", (f"--score: judge {model_id!r} is neither a Hub model nor a "
                                 f"complete folder (config.json + checkpoint.pt + tokenizer): "
                                 f"{first}")
    return None


def find_shared(model: Any, model_id: str) -> tuple[Any, Any] | None:
    """The (judge model, processor) inside the model's text ranker, when it is this judge."""
    ranker = getattr(model, "text_ranker", None)
    stack = [ranker]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        node = getattr(node, "inner", node)  # rankers.Fp32Ranker
        config = getattr(node, "config", None)
        if getattr(config, "checkpoint_or_model_id", None) == model_id and \
                hasattr(node, "model") and hasattr(node, "processor"):
            return node.model, node.processor
        stack.extend(getattr(node, "rankers", None) or [])  # EnsembleRanker
    return None


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


# -- the per-output record ----------------------------------------------------------------
def recorded(target_path: str, target_sha: str, description: str, model_id: str
             ) -> dict[str, Any] | None:
    """Scores saved beside a target earlier, if they are for this file, text and judge."""
    try:
        with open(target_path + SCORES_SUFFIX, encoding="utf-8") as source:
            body = json.load(source)
    except (OSError, ValueError):
        return None
    key = {"sha256": target_sha, "description": description, "judge": model_id}
    if not isinstance(body, dict) or any(body.get(k) != v for k, v in key.items()):
        return None
    scores = body.get("scores")
    return scores if isinstance(scores, dict) else None


def record(target_path: str, target_sha: str, description: str, model_id: str,
           scores: dict[str, Any]) -> None:
    audio_io.write_atomic(target_path + SCORES_SUFFIX, json.dumps(
        {"sha256": target_sha, "description": description, "judge": model_id,
         "scores": scores}))


class Scorer:
    """The runner's side: one judge per process, loaded on first need; scores per output,
    reused from the record beside the target when the target has not changed."""

    def __init__(self, settings: Any, device: str):
        self.settings = settings
        self.device = device
        self.judge: Judge | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.score)

    def ensure_loaded(self, model: Any = None) -> dict[str, Any]:
        """Load the judge (sharing the model's judge ranker when it is the same one); the
        fields it adds to the ``load`` event."""
        if not self.enabled:
            return {}
        if self.judge is None:
            model_id = self.settings.judge_model
            shared = find_shared(model, model_id) if model is not None else None
            self.judge = Judge(model_id, self.device, *(shared or ()))
        return self.judge.describe()

    def scores(self, input_path: str, target_path: str, target_sha: str,
               description: str) -> dict[str, Any]:
        if not self.enabled:
            return {}
        model_id = self.settings.judge_model
        found = recorded(target_path, target_sha, description, model_id)
        if found is None:
            self.ensure_loaded()
            assert self.judge is not None
            found = self.judge.score_files(input_path, target_path, description)
            record(target_path, target_sha, description, model_id, found)
        return {"scores": found}
