"""SAM Audio adapter: one load per process, dtype, a batch of mono chunks -> separated chunks.

Facts this relies on (facebookresearch/sam-audio, see ../shared/DESIGN.md §5): the model
loads in fp32 and in training mode (we call ``.eval()`` and cast); audio tensors must be
2-D ``(C, T)`` in the model's dtype at 48 kHz; ``Batch.to(device)`` is needed on CUDA;
outputs are lists of 1-D tensors up to 1919 samples longer than the input (we trim); the
noise and the codec's watermark both draw from the global RNG, so we seed it right before
every ``separate``. Limits (``_fit_to_model``): a pass of at most half a latent frame
crashes the codec's reflect padding, so such a chunk gets silence up to one frame; past
2**24 samples the processor's float32 frame count can come out one frame short, so such a
chunk is reflect-padded to whole frames here (what the codec does anyway). Outputs are
trimmed back to the chunk. The 400 s cap on one pass is kept by ``Settings.validate``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from . import rankers, video
from .manifest import HOP_LENGTH, Settings, resolve_model

# The memory one call needs beyond the weights comes from vram_fit (fitted by
# bench/bench_gpu.py); the OOM back-off corrects it on the first batch that does not fit.
MAX_BATCH = 32
VRAM_HEADROOM = 0.8
MODEL_FILES = ("config.json", "checkpoint.pt")  # what from_pretrained reads from a folder


class EngineError(Exception):
    """A failure that stops the whole job (the model cannot be used at all)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class OutOfMemory(Exception):
    """CUDA ran out of memory in one separate call; caches are already freed."""


def batch_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from the job seed and the batch's identity (item, first chunk…)."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


class Engine:
    """Loads SAM Audio lazily (once) and separates batches of equal-length mono chunks."""

    def __init__(self, settings: Settings, warn: Callable[..., None] | None = None):
        import torch  # heavy: imported only on the GPU box

        self.torch = torch
        self.settings = settings
        self.model_id = resolve_model(settings.model)
        self.warn = warn or (lambda message, **_: None)  # runner.warning(message, code=…)
        self.device = self._pick_device()
        self.dtype = self._pick_dtype()
        self.model: Any = None
        self.processor: Any = None
        self.candidates = settings.rerank  # 1 once the model turns out to have no ranker
        self.last_ranks: list[dict[str, Any]] | None = None  # rankers.picks of the last call

    # -- device and dtype -------------------------------------------------------------
    def _pick_device(self) -> str:
        torch = self.torch
        wanted = self.settings.device
        has_cuda = torch.cuda.is_available()
        if wanted.startswith("cuda") or self.settings.require_gpu:
            if not has_cuda:
                raise EngineError("no_gpu", "no CUDA GPU is visible to torch on this host "
                                  f"(torch {torch.__version__}, built for CUDA "
                                  f"{torch.version.cuda}); check nvidia-smi and the torch wheel")
            return wanted if wanted.startswith("cuda") else "cuda"
        if wanted == "cpu":
            return "cpu"
        return "cuda" if has_cuda else "cpu"

    def _pick_dtype(self):
        torch = self.torch
        names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
        if self.settings.dtype != "auto":
            return names[self.settings.dtype]
        if self.device == "cpu":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    @property
    def dtype_name(self) -> str:
        return {"torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(str(self.dtype), "fp32")

    def describe(self) -> dict[str, Any]:
        """Fields for the ``hello`` event."""
        torch = self.torch
        info: dict[str, Any] = {"device": self.device, "torch": torch.__version__,
                                "cuda": torch.version.cuda, "gpu_name": None, "vram_free_mb": None}
        if self.device.startswith("cuda"):
            info["gpu_name"] = torch.cuda.get_device_name(self.device)
            info["vram_free_mb"] = self.free_vram() // 2**20
        return info

    def free_vram(self) -> int:
        free, _total = self.torch.cuda.mem_get_info(self.device)
        return int(free)

    # -- load ---------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self) -> dict[str, Any]:
        """Load model + processor once; returns the ``load`` event fields."""
        started = time.monotonic()
        settings = self.settings
        overrides: dict[str, Any] = rankers.overrides(settings)  # never an unusable ranker
        if not settings.predict_spans:
            overrides["span_predictor"] = None
        try:
            from sam_audio import SAMAudio, SAMAudioProcessor
        except ImportError as exc:
            raise EngineError("not_provisioned", f"cannot import sam_audio ({exc}); run "
                              "`remote-sep bootstrap` for this host") from exc
        from .loading import load_model  # lean: mapped weights, only what the run uses

        try:
            with contextlib.redirect_stdout(sys.stderr):  # library chatter stays out of stdout
                model, loaded = load_model(SAMAudio, self.model_id, overrides, self.dtype,
                                           self.device, self.warn)
                processor = SAMAudioProcessor.from_pretrained(self.model_id)
        except Exception as exc:
            mapped = rankers.load_failure(exc, self.model_id) or self._hub_error(exc)
            if mapped is None:
                raise
            raise EngineError(*mapped) from exc
        self.model = model  # in its dtype, its rankers in fp32 (rankers.kept_fp32)
        self.processor = processor
        if settings.video:
            video.fit_vision_encoder(self.model, self.dtype, self.device)
        extra: dict[str, Any] = {}
        if self.candidates > 1:
            extra["ranker"] = rankers.usable_ranker(self.model, settings)
            if extra["ranker"] is None:
                self.warn(rankers.no_ranker_warning(self.model_id, self.candidates),
                          code="rerank_no_ranker")
                self.candidates = 1
        return {"model": self.model_id, "dtype": self.dtype_name, "device": self.device,
                "seconds": round(time.monotonic() - started, 3), **loaded,
                "candidates": self.candidates, **extra}

    def _hub_error(self, exc: Exception) -> tuple[str, str] | None:
        from .hub_cache import describe_missing, package_problem

        if isinstance(exc, ModuleNotFoundError) and package_problem(exc.name):
            return "not_provisioned", package_problem(exc.name)
        try:
            from huggingface_hub.utils import (
                GatedRepoError,
                HfHubHTTPError,
                HFValidationError,
                LocalEntryNotFoundError,
                RepositoryNotFoundError,
            )
        except ImportError:
            return None
        page = f"https://huggingface.co/{self.model_id}"
        if os.path.isdir(self.model_id) and isinstance(exc, FileNotFoundError):
            missing = [name for name in MODEL_FILES
                       if not os.path.isfile(os.path.join(self.model_id, name))]
            if missing:  # else something inside the model failed: keep its traceback
                return "unknown_model", (f"model folder {self.model_id!r} lacks "
                                         f"{' and '.join(missing)} (a local model is a folder "
                                         "with config.json + checkpoint.pt)")
            return None
        # checked before FileNotFoundError, its base: not cached here and no Hub reachable
        # (no network, HF_HUB_OFFLINE) says nothing about the model id. transformers wraps it
        # in an OSError when the model's T5 text encoder (its own Hub repo) is what is missing
        cause = exc if isinstance(exc, LocalEntryNotFoundError) else exc.__cause__
        if isinstance(cause, LocalEntryNotFoundError):
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            missing = describe_missing(self.settings)  # named from the cache, not guessed
            if missing:
                return "not_provisioned", (f"the Hub could not be reached ({first}) and this "
                                           f"host's Hugging Face cache lacks {missing}")
            return "not_provisioned", (f"{self.model_id} needs files that are not in this "
                                       "host's Hugging Face cache (its weights, or the text "
                                       "encoder they load from the Hub) and the Hub could not "
                                       f"be reached ({first}); check the host's network, or "
                                       "download them first (`remote-sep bootstrap --prefetch`)")
        if isinstance(exc, GatedRepoError):
            return "gated", (f"no access to the gated weights of {self.model_id}: request access "
                             f"on {page} with the Hugging Face account whose token this host uses")
        if isinstance(exc, RepositoryNotFoundError):
            return "unknown_model", (f"model {self.model_id!r} not found on the Hub ({page}); "
                                     "use small, base, large[-tv], a facebook/sam-audio-* id or "
                                     "a folder with config.json + checkpoint.pt")
        if isinstance(exc, HFValidationError | FileNotFoundError):
            return "unknown_model", f"model {self.model_id!r} is neither a Hub id nor a folder"
        response = getattr(exc, "response", None)
        if isinstance(exc, HfHubHTTPError) and getattr(response, "status_code", None) == 401:
            return "auth", (f"the Hugging Face token was refused (401) for {page}; log in again "
                            "(`remote-sep bootstrap` sends the token)")
        return None

    # -- separate -----------------------------------------------------------------------
    def batch_size_for(self, chunk_samples: int) -> int:
        """Chunks per call: the setting, else what free VRAM holds (1 on CPU)."""
        if self.settings.batch_size:
            return self.settings.batch_size
        if not self.device.startswith("cuda"):
            return 1
        from .vram_fit import batch_that_fits

        seconds = chunk_samples / self.processor.audio_sampling_rate
        return batch_that_fits(self.free_vram() * VRAM_HEADROOM, self.model_id, self.dtype_name,
                               seconds * self.candidates, MAX_BATCH)

    @property
    def sample_rate(self) -> int:
        return int(self.processor.audio_sampling_rate)

    @property
    def hop_length(self) -> int:
        return int(getattr(self.processor, "audio_hop_length", HOP_LENGTH))

    def _audios(self, signals: list[np.ndarray]) -> list[Any]:
        # (1, T) in the model's dtype: the processor wants 2-D and does no cast
        return [self.torch.from_numpy(_fit_to_model(np.ascontiguousarray(sig, dtype=np.float32),
                                                    self.hop_length)).to(self.dtype).unsqueeze(0)
                for sig in signals]

    def separate(self, signals: list[np.ndarray], descriptions: list[str], seed: int,
                 anchors: list[list] | None = None,
                 videos: list[tuple[np.ndarray, np.ndarray]] | None = None,
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Separate equal-length 1-D model-rate signals; each output trimmed to its input.
        ``anchors``: per signal, its span prompts (the processor's ``anchors``; spans.py).
        ``videos``: per signal, its chunk's (frames, masks) (video.VideoSource.for_chunk)."""
        torch = self.torch
        settings = self.settings
        audios = self._audios(signals)
        ode_opt = {"method": settings.ode_method, "options": {"step_size": settings.ode_step_size}}
        try:
            with contextlib.redirect_stdout(sys.stderr):
                prompts = {} if videos is None else {
                    "masked_videos": video.masked_videos(self.processor, videos)}
                batch = self.processor(descriptions=descriptions, audios=audios,
                                       anchors=anchors, **prompts).to(self.device)
                torch.manual_seed(seed)  # noise and the codec watermark both draw from it
                rankers.forget_scores(self.model)
                with torch.inference_mode():
                    # predict_spans=True is a no-op at the pin (upstream #98): the spans are
                    # predicted by predict_spans() below and passed in as anchors instead
                    result = self.model.separate(batch, ode_opt=ode_opt,
                                                 reranking_candidates=self.candidates)
                ranked = rankers.take_scores(self.model)
                self.last_ranks = None if ranked is None else [
                    {"ranker": ranked[0], **row} for row in rankers.picks(ranked[1])]
                out = []
                for sig, target, residual in zip(signals, result.target, result.residual,
                                                 strict=True):
                    size = len(sig)
                    out.append((target[:size].float().cpu().numpy(),
                                residual[:size].float().cpu().numpy()))
                return out
        except Exception as exc:
            if self._is_oom(exc):
                self.release_memory()
                raise OutOfMemory(str(exc).splitlines()[0] if str(exc) else "CUDA OOM") from None
            raise

    window = 1  # batches in flight (ItemSeparation): this process runs one at a time

    def submit(self, signals: list[np.ndarray], descriptions: list[str], seed: int,
               anchors: list[list] | None = None,
               videos: list[tuple[np.ndarray, np.ndarray]] | None = None) -> Future:
        """``separate`` now, as a finished future of ``(pairs, ranks)`` (the interface
        remote_engine.RemoteEngine serves from a Ray cluster)."""
        done: Future = Future()
        try:
            pairs = self.separate(signals, descriptions, seed, anchors=anchors, videos=videos)
        except Exception as exc:  # noqa: BLE001 - raised again by result(), as separate would
            done.set_exception(exc)
        else:
            done.set_result((pairs, self.last_ranks))
        return done

    def predict_spans(self, signals: list[np.ndarray],
                      descriptions: list[str]) -> list[list[list[float]]]:
        """The model's span predictor on each signal with its description: per signal
        ``[[start_s, end_s], …]`` where the described sound is (seconds of the signal).

        What ``separate(predict_spans=True)`` does after upstream PR #100 (our pin predicts
        but never uses the result, issue #98): the codec features of the batch, then the
        model's own ``predict_spans``, which writes ``["+", start, end]`` anchors into the
        batch. The caller passes them to ``separate`` (one more codec encode per batch)."""
        torch = self.torch
        if not hasattr(self.model, "span_predictor"):
            raise EngineError("bad_config", f"{self.model_id} has no span predictor "
                              "(its config.json sets span_predictor to null): run without "
                              "--predict-spans, or give the spans with --span")
        try:
            with contextlib.redirect_stdout(sys.stderr):
                batch = self.processor(descriptions=descriptions,
                                       audios=self._audios(signals)).to(self.device)
                with torch.inference_mode():
                    features = self.model._get_audio_features(batch.audios)
                    batch = self.model.predict_spans(batch=batch, audio_features=features,
                                                     audio_pad_mask=batch.audio_pad_mask)
        except Exception as exc:
            if self._is_oom(exc):
                self.release_memory()
                raise OutOfMemory(str(exc).splitlines()[0] if str(exc) else "CUDA OOM") from None
            raise
        return [[[float(start), float(end)] for _sign, start, end in item]
                for item in batch.anchors]

    def _is_oom(self, exc: Exception) -> bool:
        oom_type = getattr(self.torch.cuda, "OutOfMemoryError", ())
        return isinstance(exc, oom_type) or (
            isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())

    def release_memory(self) -> None:
        gc.collect()
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()


# Lengths up to this are exact in float32, the processor's dtype for ceil(samples / hop).
FLOAT32_EXACT = 2**24


def _fit_to_model(signal: np.ndarray, frame: int) -> np.ndarray:
    """``signal`` as the model can take it (the caller trims the outputs back):

    - at most half a frame: the codec's reflect padding would need more samples than there
      are (a crash in the real code), so silence is added up to one whole frame;
    - over 2**24 samples and not whole frames: ``ceil(samples / hop)`` in float32 may be one
      frame short, and the output with it; reflect-padding to whole frames, as the codec
      would, makes the count exact;
    - else unchanged (the model pads it itself, exactly as a direct call would).
    """
    size = len(signal)
    if size <= frame // 2:
        return np.concatenate([signal, np.zeros(frame - size, dtype=signal.dtype)])
    if size > FLOAT32_EXACT and size % frame:
        return np.pad(signal, (0, frame - size % frame), mode="reflect")
    return signal
