"""Stand-in processor: same call shape and Batch attributes as sam_audio/processor.py."""

from __future__ import annotations

import math

import torch
from torch.nn.utils.rnn import pad_sequence

from . import _video
from . import anchors as span_prompts
from ._hub import resolve_config


def _load_path(path: str) -> torch.Tensor:
    import numpy as np
    import soundfile as sf  # only for file inputs; the payload passes tensors

    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T))


class Batch:
    def __init__(self, audios, sizes, wav_sizes, descriptions, hop_length,
                 audio_sampling_rate, audio_pad_mask=None, anchors=None, masked_video=None):
        self.audios = audios
        self.sizes = sizes
        self.wav_sizes = wav_sizes
        self.descriptions = descriptions
        self.hop_length = hop_length
        self.audio_sampling_rate = audio_sampling_rate
        self.audio_pad_mask = audio_pad_mask
        self.anchors = anchors
        self.masked_video = masked_video
        self.process_anchors(anchors)
        assert self.audios.size(0) == len(self.descriptions)

    def process_anchors(self, anchors) -> None:
        span_prompts.process_anchors(self, anchors)

    def to(self, device):
        self.audios = self.audios.to(device)
        self.anchor_ids = self.anchor_ids.to(device)
        self.anchor_alignment = self.anchor_alignment.to(device)
        self.sizes = self.sizes.to(device)
        self.wav_sizes = self.wav_sizes.to(device)
        if self.audio_pad_mask is not None:
            self.audio_pad_mask = self.audio_pad_mask.to(device)
        if self.masked_video is not None:
            self.masked_video = [v.to(device) for v in self.masked_video]
        return self


class SAMAudioProcessor:
    def __init__(self, audio_hop_length: int, audio_sampling_rate: int):
        self.audio_hop_length = audio_hop_length
        self.audio_sampling_rate = audio_sampling_rate

    @classmethod
    def from_pretrained(cls, model_name_or_path: str) -> SAMAudioProcessor:
        codec = resolve_config(model_name_or_path)["audio_codec"]
        return cls(audio_hop_length=codec["hop_length"], audio_sampling_rate=codec["sample_rate"])

    def wav_to_feature_idx(self, wav_idx):
        if torch.is_tensor(wav_idx):
            return torch.ceil(wav_idx / self.audio_hop_length).long()
        return math.ceil(wav_idx / self.audio_hop_length)

    def mask_videos(self, videos, masks) -> list[torch.Tensor]:
        return _video.mask_videos(videos, masks)

    def __call__(self, descriptions, audios, anchors=None, masked_videos=None) -> Batch:
        assert len(descriptions) == len(audios)
        assert anchors is None or len(descriptions) == len(anchors)
        assert masked_videos is None or len(descriptions) == len(masked_videos)
        wavs = []
        for audio in audios:
            wav = _load_path(audio) if isinstance(audio, str) else audio
            wavs.append(wav.mean(0))  # a 1-D input fails below, as in the real processor
        wav_sizes = torch.tensor([wav.size(-1) for wav in wavs])
        padded = pad_sequence(wavs, batch_first=True).unsqueeze(1)
        sizes = self.wav_to_feature_idx(wav_sizes)
        mask = torch.arange(int(sizes.max())).expand(len(sizes), -1) < sizes.unsqueeze(1)
        masked_video = None if masked_videos is None else _video.load_video(sizes, masked_videos)
        return Batch(audios=padded, sizes=sizes, wav_sizes=wav_sizes,
                     descriptions=list(descriptions), hop_length=self.audio_hop_length,
                     audio_sampling_rate=self.audio_sampling_rate, audio_pad_mask=mask,
                     anchors=anchors, masked_video=masked_video)


class _Features(dict):
    """transformers' BatchFeature as the judge uses it: a dict with ``.to(device)``."""

    def to(self, device):
        return _Features({k: v.to(device) for k, v in self.items()})


class SAMAudioJudgeProcessor:
    """Same call shape as the real one (processor.py ``SAMAudioJudgeProcessor``): reflect
    pad to whole frames (torch's own error at <= half a frame), 48 kHz only (the real
    ValueError), (B, 1, T) ``input_values`` / ``separated_values``, a ``padding_mask``.
    The tokenizer is one id per word (the stand-in judge counts them)."""

    def __init__(self, audio_hop_length: int, audio_sampling_rate: int):
        self.audio_hop_length = audio_hop_length
        self.audio_sampling_rate = audio_sampling_rate

    @classmethod
    def from_pretrained(cls, model_name_or_path: str) -> SAMAudioJudgeProcessor:
        from ._hub import judge_config

        codec = judge_config(model_name_or_path).get("audio_codec", {})
        return cls(audio_hop_length=int(codec.get("hop_length", 1920)),
                   audio_sampling_rate=int(codec.get("sample_rate", 48_000)))

    def _reflect_pad(self, wav):
        if wav.ndim == 1:
            wav = wav.unsqueeze(0)
        rest = wav.size(-1) % self.audio_hop_length
        if rest == 0:
            return wav
        return torch.nn.functional.pad(wav, (0, self.audio_hop_length - rest), mode="reflect")

    def _process_audio(self, raw_audio, sampling_rate=None):
        if sampling_rate is not None and sampling_rate != self.audio_sampling_rate:
            raise ValueError(f"The model corresponding to this feature extractor: {self} was "
                             f"trained using a sampling rate of {self.audio_sampling_rate}. "
                             "Please make sure that the provided audio input was sampled with "
                             f"{self.audio_sampling_rate} and not {sampling_rate}.")
        if not isinstance(raw_audio, list | tuple):
            raw_audio = [raw_audio]
        padded = [self._reflect_pad(x).T for x in raw_audio]
        lengths = torch.tensor([x.size(0) for x in padded])
        values = pad_sequence(padded, batch_first=True).transpose(1, 2)
        mask = torch.arange(int(lengths.max()))[None] < lengths[:, None]
        return _Features({"input_values": values, "padding_mask": mask})

    def __call__(self, text=None, input_audio=None, separated_audio=None, sampling_rate=None,
                 **kwargs):
        batch = _Features()
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            ids = [torch.tensor([1 + (hash(w) % 997) for w in t.split()] or [0]) for t in texts]
            input_ids = pad_sequence(ids, batch_first=True)
            batch.update(input_ids=input_ids, attention_mask=(input_ids != 0).long())
        if input_audio is not None:
            batch.update(self._process_audio(input_audio, sampling_rate))
        if separated_audio is not None:
            batch["separated_values"] = self._process_audio(separated_audio,
                                                            sampling_rate)["input_values"]
        return batch
