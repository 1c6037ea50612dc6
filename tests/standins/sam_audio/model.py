"""Stand-in SAMAudio: a conv1d FIR split in the model's dtype instead of the generative model."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from . import _video
from . import anchors as span_prompts
from ._hub import fetch_components, require_checkpoint, resolve_config
from .ranking import create_ranker

DFLT_ODE_OPT = {"method": "midpoint", "options": {"step_size": 2 / 32}}
TAPS = 255  # odd: a centred ("same") FIR
CUTOFF_HZ = 300.0
MAX_POSITIONS = 10_000  # the DiT's RoPE table (TransformerConfig.max_positions)


@dataclass
class SeparationResult:
    target: Any
    residual: Any
    noise: torch.Tensor


def _lowpass_kernel(sample_rate: int) -> torch.Tensor:
    n = torch.arange(TAPS, dtype=torch.float64) - (TAPS - 1) / 2
    fc = CUTOFF_HZ / sample_rate
    sinc = torch.where(n == 0, torch.tensor(2 * fc, dtype=torch.float64),
                       torch.sin(2 * math.pi * fc * n) / (math.pi * n))
    kernel = sinc * torch.hann_window(TAPS, periodic=False, dtype=torch.float64)
    return (kernel / kernel.sum()).float()


def _codec_pad(wavs: torch.Tensor, hop: int) -> torch.Tensor:
    """The real codec's ``_pad``: reflect up to a whole frame (torch's own error when the
    batch holds no more than half a frame: "Padding size should be less than ...")."""
    rest = wavs.size(-1) % hop
    return torch.nn.functional.pad(wavs, (0, hop - rest), "reflect") if rest else wavs


def _is_torch_file(path: str) -> bool:
    """A torch.save file, zip or legacy pickle (older stand-in folders hold placeholder bytes)."""
    try:
        with open(path, "rb") as fin:
            head = fin.read(4)
            return head == b"PK\x03\x04" or head[:1] == b"\x80"
    except OSError:
        return False


def _rope_positions(frames: int) -> None:
    """The real RoPE multiplies by ``freqs_cis[:, :seqlen]``: past its table that is torch's
    own "The size of tensor a (…) must match the size of tensor b (10000)" error."""
    table = torch.zeros(1, MAX_POSITIONS, 1)
    _ = torch.zeros(1, frames, 1) * table[:, :frames]


class T5TextEncoder(torch.nn.Module):
    """Loads from its own pretrained files in the real code (not the checkpoint): no weights."""

    def __init__(self, cfg: dict | None):
        super().__init__()
        self.name = (cfg or {}).get("name", "t5-base")


class PerceptionEncoderConfig:
    def __init__(self, dim: int = 8, batch_size: int = 300, ballast_mb: int = 0):
        self.dim, self.batch_size, self.ballast_mb = dim, batch_size, ballast_mb


class PerceptionEncoder(_video.VisionEncoder):
    """The vision encoder: in the checkpoint, built even for text-only runs, like the real one
    (``vision_encoder.dim`` is all a run without video reads). ``ballast_mb`` (config only)
    makes its weights that big, for the host-RAM tests of the lean load."""

    def __init__(self, cfg: PerceptionEncoderConfig):
        super().__init__()  # the video path: _video.VisionEncoder (encode, forward)
        # the real PE draws some parameters with torch.randn (not nn.init): building one
        # consumes the global RNG, like the real one
        self.class_embedding = torch.nn.Parameter(0.02 * torch.randn(4))
        self.dim = cfg.dim
        self.batch_size = cfg.batch_size
        ballast = cfg.ballast_mb * 2**20 // 4
        self.proj = torch.nn.Linear(3, self.dim)
        self.ballast = torch.nn.Parameter(torch.empty(ballast))
        if ballast:  # the real encoder's init touches its weights too
            torch.nn.init.normal_(self.ballast)


# The real load_state_dict skips these (they load from their own pretrained files).
NOT_IN_CHECKPOINT = ("text_encoder", "visual_ranker", "text_ranker", "span_predictor")


class SAMAudio(torch.nn.Module):
    config_cls = dict  # the real one: SAMAudioConfig(**config.json)
    revision = None

    def __init__(self, config: dict):
        super().__init__()
        codec = config["audio_codec"]
        self.sample_rate = codec["sample_rate"]
        self.hop_length = codec["hop_length"]
        # The codec's first conv: its bias makes a dtype mismatch fail with torch's own text.
        self.codec_in = torch.nn.Conv1d(1, 1, TAPS, padding=TAPS // 2, bias=True)
        with torch.no_grad():
            self.codec_in.weight.copy_(_lowpass_kernel(self.sample_rate).view(1, 1, TAPS))
            self.codec_in.bias.zero_()
        self.dropout = torch.nn.Dropout(0.1)  # perturbs outputs until .eval(), like the DiT
        # like the real DiT: most weights; ballast_mb (config) sizes it for the RAM tests
        self.transformer = torch.nn.Linear(max(1, int(config.get("ballast_mb", 0)) * 2**18), 1,
                                           bias=False)
        self.text_encoder = T5TextEncoder(config.get("text_encoder"))
        self.vision_encoder = PerceptionEncoder(
            PerceptionEncoderConfig(**(config.get("vision_encoder") or {})))
        # built at load like the real ones (ranking/): what config.json names, unless
        # from_pretrained overrode the key with None
        self.visual_ranker = create_ranker(config.get("visual_ranker"))
        self.text_ranker = create_ranker(config.get("text_ranker"))
        if config.get("span_predictor") is not None:
            self.span_predictor = span_prompts.SpanPredictor(self.hop_length, self.sample_rate)
            self.span_predictor_transform = span_prompts.SpanPredictorTransform()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, **overrides) -> SAMAudio:
        config = resolve_config(pretrained_model_name_or_path)
        require_checkpoint(pretrained_model_name_or_path)
        applied = {k: v for k, v in overrides.items() if k in config}
        config.update(applied)
        fetch_components(config)
        log = os.environ.get("SAM_STANDIN_LOAD_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as out:
                out.write(json.dumps({"model": pretrained_model_name_or_path,
                                      "overrides": applied, "pid": os.getpid()}) + "\n")
        model = cls(config)
        checkpoint = os.path.join(pretrained_model_name_or_path, "checkpoint.pt")
        if os.path.isdir(pretrained_model_name_or_path) and _is_torch_file(checkpoint):
            # a folder's weights, as the real base.py loads them (stand-in Hub ids have none)
            model.load_state_dict(torch.load(checkpoint, weights_only=True, map_location="cpu"))
        return model

    def load_state_dict(self, state_dict, strict=True):
        """The real override: strict, but the parts with their own pretrained weights may miss."""
        missing, unexpected = super().load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not k.startswith(NOT_IN_CHECKPOINT)]
        if strict and (missing or unexpected):
            raise RuntimeError(f"Missing keys: {missing}, unexpected_keys: {unexpected}")

    def _split(self, audios: torch.Tensor, descriptions: list[str]) -> torch.Tensor:
        """(B, 1, T) -> (B, T) target."""
        low = self.codec_in(audios)[:, 0]
        low = low + (self.dropout(torch.full_like(low, 1e-2)) - 1e-2)  # 0 once .eval()
        if os.environ.get("SAM_STANDIN_MODE", "dsp") == "lti":
            return low
        wants_low = torch.tensor(["bass" in d.lower() for d in descriptions], device=low.device)
        return torch.where(wants_low.view(-1, 1), low, audios[:, 0] - low)

    def _get_audio_features(self, audios: torch.Tensor) -> torch.Tensor:
        return span_prompts.audio_features(_codec_pad(audios, self.hop_length), self.hop_length)

    def predict_spans(self, batch, audio_features: torch.Tensor, audio_pad_mask: torch.Tensor):
        """The real method: predict, then write ``+`` anchors into the batch."""
        tokens = self.span_predictor_transform(text=batch.descriptions).to(audio_features.device)
        output = self.span_predictor(input_features=audio_features[:, :, :128],
                                     padding_mask=audio_pad_mask, return_spans=True, **tokens)
        batch.process_anchors([[["+", *span] for span in spans] for spans in output.spans])
        return batch

    @torch.inference_mode()
    def separate(self, batch, noise=None, ode_opt=DFLT_ODE_OPT, reranking_candidates: int = 1,
                 predict_spans: bool = False) -> SeparationResult:
        # The pin's order (upstream #98): the anchors used are read before the spans are
        # predicted, so predict_spans=True predicts and then changes nothing.
        tokens = span_prompts.frame_tokens(batch.anchor_ids, batch.anchor_alignment)
        if predict_spans and hasattr(self, "span_predictor") and batch.anchors is None:
            batch = self.predict_spans(batch, self._get_audio_features(batch.audios),
                                       batch.audio_pad_mask)
        audios = batch.audios
        bsz, _, length = audios.shape
        padded = _codec_pad(audios, self.hop_length)
        frames = padded.size(-1) // self.hop_length  # what the DiT sees (not batch.sizes)
        _rope_positions(frames)
        padded_len = padded.size(-1)
        limit = os.environ.get("SAM_STANDIN_OOM_ABOVE")
        if limit and bsz * padded_len * reranking_candidates > int(limit):
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (stand-in limit "
                f"{limit} samples per batch)")
        hold = os.environ.get("SAM_STANDIN_HOLD")
        while hold and os.path.exists(hold):  # a test lets it finish by removing the file
            time.sleep(0.02)
        pause = float(os.environ.get("SAM_STANDIN_SECONDS_PER_SECOND", "0") or 0)
        if pause:
            time.sleep(pause * bsz * length / self.sample_rate)
        video = None
        if batch.masked_video is not None:  # the visual prompt, see _video.py; like the real
            # separate(), its features come first (_get_forward_args), the noise after
            video = _video.video_term(self.vision_encoder, batch.masked_video, batch.sizes,
                                      self.hop_length, padded_len, audios[:, 0])
        if noise is None:
            noise = torch.randn(bsz * reranking_candidates, frames, 128,
                                device=audios.device, dtype=audios.dtype)
        cands = reranking_candidates
        # (B, N, T): candidate c of item b differs from the others by its own noise only
        target = self._split(padded, batch.descriptions)[:, None].repeat(1, cands, 1)
        if os.environ.get("SAM_STANDIN_MODE", "dsp") != "lti":
            level = float(os.environ.get("SAM_STANDIN_NOISE", "1e-3"))
            jitter = noise.reshape(bsz, cands, -1)[:, :, :1]
            ramp = torch.linspace(-1, 1, padded_len, device=audios.device, dtype=audios.dtype)
            target = target + level * jitter * ramp
        target = torch.stack([span_prompts.apply_anchors(target[:, c], padded[:, 0], tokens,
                                                         self.hop_length)
                              for c in range(cands)], dim=1)  # each candidate, (B, T)
        if video is not None:
            target = target + video[:, None]  # every candidate
        # Beyond each item's own samples the real decoder returns codec output, not silence.
        for rows, own in zip(target, batch.wav_sizes, strict=True):
            rows[:, int(own):] = 0.25
        residual = padded[:, 0][:, None] - target
        sizes = batch.sizes * self.hop_length
        target_wavs = [rows[:, : int(size)] for rows, size in zip(target, sizes, strict=True)]
        residual_wavs = [rows[:, : int(size)] for rows, size in zip(residual, sizes, strict=True)]
        idxs = self._rank(batch, target_wavs, sizes, cands)
        return SeparationResult(target=[w[i] for w, i in zip(target_wavs, idxs, strict=True)],
                                residual=[w[i] for w, i in zip(residual_wavs, idxs, strict=True)],
                                noise=noise)

    def _rank(self, batch, target_wavs, sizes, cands: int) -> torch.Tensor:
        """The real choice: the visual ranker with a masked video, else the text ranker,
        else candidate 0 (silently)."""
        if cands > 1 and batch.masked_video is not None and self.visual_ranker is not None:
            scores = self.visual_ranker(extracted_audio=target_wavs, videos=batch.masked_video,
                                        sample_rate=self.sample_rate)
            return scores.argmax(dim=1)
        if cands > 1 and self.text_ranker is not None:
            input_audio = [audio[:, : int(size)].expand(cands, -1)
                           for audio, size in zip(batch.audios, sizes, strict=False)]
            scores = self.text_ranker(extracted_audio=target_wavs, input_audio=input_audio,
                                      descriptions=batch.descriptions,
                                      sample_rate=self.sample_rate)
            return scores.argmax(dim=1)
        return torch.zeros(len(target_wavs), dtype=torch.long)
