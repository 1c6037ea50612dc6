"""Reranking (``reranking_candidates > 1``): which rankers a run may load, scoring in fp32,
and what a ranker that cannot load is called in the message.

Facts from sam_audio at 68b48d4 (``model/model.py`` ``SAMAudio.__init__`` / ``separate``,
``ranking/*.py``):

- ``SAMAudio.__init__`` builds whatever config.json names under ``visual_ranker`` and
  ``text_ranker`` (``create_ranker``); ``from_pretrained(id, visual_ranker=None)`` replaces
  a key the config has, so that ranker is never built.
- ``separate`` ranks with the visual ranker only when the batch has a masked video, else
  with the text ranker; with neither it silently returns candidate 0 (``idxs = zeros``).
  So without a video the visual ranker (ImageBind: 1.2 B parameters, downloaded into
  ``./.checkpoints`` at build time) can never serve: it is not loaded.
- ``model.to(bfloat16)`` casts the rankers too; the judge's scores (``pooled * std + mean``,
  a few units) then differ by less than bf16's step there, tie, and ``argmax`` picks
  candidate 0 every time. The rankers are kept in fp32 and given fp32 audio
  (``Fp32Ranker``), whatever the model's dtype.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

VISUAL, TEXT = "visual_ranker", "text_ranker"
JUDGE_DEFAULT = "facebook/sam-audio-judge"
PREFETCH = "`remote-sep bootstrap HOST --prefetch --rerank`"

# sam_audio module -> (component named in messages, the pip package it needs)
COMPONENTS = {
    "sam_audio.ranking.judge": ("the judge ranker", None),
    "sam_audio.ranking.clap": ("the text ranker CLAP", "laion_clap"),
    "sam_audio.ranking.imagebind": ("the visual ranker ImageBind", "imagebind"),
}


def uses_video(settings: Any) -> bool:
    """Does this run give the model a (masked) video? (a setting the video prompt adds)"""
    return bool(getattr(settings, "video", False))


def overrides(settings: Any) -> dict[str, None]:
    """``from_pretrained`` overrides that keep the rankers this run cannot use unbuilt."""
    if settings.rerank <= 1:  # rankers only serve reranking_candidates > 1
        return {TEXT: None, VISUAL: None}
    if not uses_video(settings):
        return {VISUAL: None}
    return {}


def usable_ranker(model: Any, settings: Any) -> str | None:
    """The ranker ``separate`` will rank with (its attribute name), or None."""
    if uses_video(settings) and getattr(model, VISUAL, None) is not None:
        return VISUAL
    return TEXT if getattr(model, TEXT, None) is not None else None


def no_ranker_warning(model_id: str, candidates: int) -> str:
    return (f"--rerank {candidates}: {model_id} has no text ranker in its config.json, so "
            f"the model would return its first candidate anyway and reranking would only "
            f"cost {candidates}x the time; running with 1 candidate")


@contextlib.contextmanager
def kept_fp32(model: Any, device: str) -> Iterator[None]:
    """Around the model's cast: its rankers are taken out (so their weights are never
    rounded to bf16), then put back in fp32 on ``device``, wrapped to score fp32 audio."""
    import torch

    held = {}
    for name in (TEXT, VISUAL):
        ranker = getattr(model, name, None)
        if ranker is not None:
            held[name] = ranker
            setattr(model, name, None)
    try:
        yield
    finally:
        for name, ranker in held.items():
            setattr(model, name, ranker.to(device=device, dtype=torch.float32))
        keep_fp32(model)


def cast(model: Any, device: str, dtype: Any) -> Any:
    """``model.to(device, dtype)`` with its rankers kept in fp32 (``kept_fp32``)."""
    with kept_fp32(model, device):
        model = model.to(device=device, dtype=dtype)
    return model


def keep_fp32(model: Any) -> None:
    """Wrap the model's rankers so they score in fp32 (what ``cast`` does after the cast;
    alone, after a whole-model cast, the ranker computes in fp32 on rounded weights)."""
    for name in (TEXT, VISUAL):
        ranker = getattr(model, name, None)
        if ranker is not None and not getattr(ranker, "is_fp32_wrapper", False):
            setattr(model, name, _wrapper_class()(ranker))


def take_scores(model: Any) -> tuple[str, Any] | None:
    """(ranker name, (B, N) fp32 scores) of the last ``separate``, then forgotten."""
    for name in (VISUAL, TEXT):
        ranker = getattr(model, name, None)
        scores = getattr(ranker, "last_scores", None)
        if scores is not None:
            ranker.last_scores = None
            return name.split("_")[0], scores
    return None


def forget_scores(model: Any) -> None:
    for name in (VISUAL, TEXT):
        ranker = getattr(model, name, None)
        if getattr(ranker, "is_fp32_wrapper", False):
            ranker.last_scores = None


_WRAPPER: Any = None


def _wrapper_class():
    """Built on first use: torch is only imported on the GPU box."""
    global _WRAPPER
    if _WRAPPER is None:
        import torch

        def to_fp32(value: Any) -> Any:
            if torch.is_tensor(value):
                return value.float() if value.is_floating_point() else value
            if isinstance(value, list | tuple):
                return type(value)(to_fp32(v) for v in value)
            return value

        class Fp32Ranker(torch.nn.Module):
            """A ranker in fp32 fed fp32 audio; keeps the scores it returned last."""

            is_fp32_wrapper = True

            def __init__(self, inner: torch.nn.Module):
                super().__init__()
                self.inner = inner.float()
                self.last_scores = None

            def forward(self, **kwargs: Any) -> torch.Tensor:
                scores = self.inner(**{k: to_fp32(v) for k, v in kwargs.items()})
                self.last_scores = scores.detach().float().reshape(scores.shape[0], -1).cpu()
                return scores

        _WRAPPER = Fp32Ranker
    return _WRAPPER


def picks(scores: Any) -> list[dict[str, Any]]:
    """Per batch row: the candidate argmax chose and every candidate's score."""
    rows = scores.tolist()
    return [{"picked": max(range(len(row)), key=lambda k: (row[k], -k)),
             "scores": [float(s) for s in row]} for row in rows]


# -- load failures ------------------------------------------------------------------------
def load_failure(exc: BaseException, model_id: str) -> tuple[str, str] | None:
    """A ranker that could not be built, named with how to get it; None: not a ranker's."""
    found = _failing_component(exc)
    if found is None:
        return None
    module, where_id = found
    component, package = COMPONENTS[module]
    if module == "sam_audio.ranking.judge":
        component = f"{component} {where_id or JUDGE_DEFAULT}"
    missing = _missing_package(exc)
    if missing or (package == "imagebind" and isinstance(exc, AssertionError)):
        name = missing or package
        return "not_provisioned", (
            f"--rerank with {model_id} builds {component}, which needs the Python package "
            f"{name}, not installed on this host (a sam-audio dependency from git): run "
            f"`remote-sep bootstrap HOST` to install it, or run without --rerank")
    first = _first_line(exc)
    if _is(exc, "GatedRepoError"):
        repo = where_id or JUDGE_DEFAULT
        return "gated", (f"--rerank with {model_id} builds {component}, whose weights are "
                         f"gated: request access on https://huggingface.co/{repo} with the "
                         "Hugging Face account whose token this host uses")
    if _is(exc, "LocalEntryNotFoundError") or _is(exc, "URLError") or _is(exc, "OSError"):
        return "not_provisioned", (
            f"--rerank with {model_id} builds {component}, whose weights are not in this "
            f"host's cache and could not be downloaded ({first}); download them first: "
            f"{PREFETCH}, or run without --rerank")
    return None


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _failing_component(exc: BaseException) -> tuple[str, str | None] | None:
    """The innermost sam_audio ranker module on the failure's stack, and the judge id the
    frame was building (JudgeRanker's ``config.checkpoint_or_model_id``)."""
    hit = None
    for link in _chain(exc):
        tb = link.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            module = frame.f_globals.get("__name__", "")
            if module in COMPONENTS:
                config = frame.f_locals.get("config") or frame.f_locals.get("cfg")
                hit = (module, getattr(config, "checkpoint_or_model_id", None))
            tb = tb.tb_next
        if hit is not None:
            return hit
    return None


def _missing_package(exc: BaseException) -> str | None:
    for link in _chain(exc):
        if isinstance(link, ModuleNotFoundError) and link.name:
            return link.name.split(".")[0]
    return None


def _is(exc: BaseException, class_name: str) -> bool:
    return any(class_name in {k.__name__ for k in type(link).__mro__} for link in _chain(exc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
