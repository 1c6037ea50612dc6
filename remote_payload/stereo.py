"""Stereo from a mono model (pure numpy): which mono signals the model sees, and how its mono
answers become a target and a residual of the input's channel count.

Modes (``settings.stereo``, see docs/stereo.md):

- ``image`` (default): ONE pass on the mid signal (mean of the channels). The model's mono
  target ``T`` and residual ``R`` give a time-frequency ratio mask on an STFT,
  ``M = |T|^2 / (|T|^2 + |R|^2)`` (Wiener-like); every channel's STFT is multiplied by it
  and turned back into sound: ``target_c = istft(M * stft(x_c))``. A source panned left
  is masked out of the left channel's content, so it stays on the left. The residual of
  each channel is ``x_c - target_c``, so ``target + residual == input`` exactly (before
  the file's own rounding), whatever the model returned.
- ``mid``: one pass on the mid signal; the mono target on every channel (a panned source
  comes back centred); the residual is the model's residual plus the side signal
  ``x_c - mid`` (what the model never saw).
- ``channels``: one pass per channel, each channel separated on its own.

A mono input is the model's own answer in every mode (nothing to keep an image of).

Chunks: the mask is made and applied per chunk, before the overlap-add (see docs/stereo.md:
the chunk's target is then an ordinary chunk output, crossfaded like every other one, and no
STFT state has to cross a chunk boundary). The STFT frames sit on the FILE's grid (a chunk
passes its start), so inside a chunk the mask is the whole file's mask; only the frames
that reach past a chunk's ends differ, and the crossfade all but hides them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# 2048-sample frames (43 ms at 48 kHz) with hop 512: the usual music-separation STFT.
N_FFT = 2048
HOP = N_FFT // 4
# 2: Wiener-like |T|^2 / (|T|^2 + |R|^2), which bench/bench_stereo.py measured better than
# the plain ratio (power 1) on a panned and on a centred source (docs/stereo.md)
MASK_POWER = 2.0
_TINY = 1e-12  # below this (in magnitude^power) a bin holds nothing: it stays in the residual

Pair = tuple[np.ndarray, np.ndarray]  # (target, residual), 1-D, one mono pass


def _window() -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann


def _lead(offset: int) -> int:
    """Zeros before the signal: one frame, plus what puts the frame grid on absolute
    multiples of HOP (a chunk starting at ``offset`` gets the whole file's frames)."""
    return N_FFT + offset % HOP


def _padded(signal: np.ndarray, offset: int) -> np.ndarray:
    """Zero padding so that every sample is inside ``N_FFT / HOP`` whole frames."""
    lead = _lead(offset)
    tail = N_FFT + (-(len(signal) + lead + N_FFT) % HOP)
    return np.pad(np.asarray(signal, dtype=np.float64), (lead, tail))


def stft(signal: np.ndarray, offset: int = 0) -> np.ndarray:
    """(frames, N_FFT // 2 + 1) complex spectrum of a 1-D signal (Hann, hop N_FFT / 4) that
    starts at sample ``offset`` of its file (the frames sit on the file's grid)."""
    frames = np.lib.stride_tricks.sliding_window_view(_padded(signal, offset), N_FFT)[::HOP]
    return np.fft.rfft(frames * _window(), axis=1)


def istft(spectrum: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """The inverse of ``stft`` (weighted overlap-add): ``istft(stft(x, o), len(x), o) == x``
    to float64 rounding."""
    window = _window()
    frames = np.fft.irfft(spectrum, n=N_FFT, axis=1) * window
    count, parts = len(frames), N_FFT // HOP
    out = np.zeros((count + parts - 1, HOP))
    weight = np.zeros((count + parts - 1, HOP))
    for part in range(parts):  # overlap-add, one hop-sized quarter of every frame at once
        out[part:part + count] += frames[:, part * HOP:(part + 1) * HOP]
        weight[part:part + count] += (window[part * HOP:(part + 1) * HOP] ** 2)[None, :]
    out, weight = out.reshape(-1), weight.reshape(-1)
    lead = _lead(offset)
    inside = slice(lead, lead + length)  # every sample here has weight 1.5 (Hann, 75 %)
    return out[inside] / weight[inside]


def ratio_mask(target: np.ndarray, residual: np.ndarray, power: float = MASK_POWER,
               offset: int = 0) -> np.ndarray:
    """``|T|^p / (|T|^p + |R|^p)`` per time-frequency bin, in [0, 1]; 0 where both are empty."""
    t = np.abs(stft(target, offset)) ** power
    r = np.abs(stft(residual, offset)) ** power
    total = t + r
    return np.where(total > _TINY, t / np.maximum(total, _TINY), 0.0)


def image_split(data: np.ndarray, target: np.ndarray, residual: np.ndarray,
                power: float = MASK_POWER, offset: int = 0) -> Pair:
    """(T, C) input (starting at sample ``offset`` of its file) and the model's mono answer
    on its mid -> (T, C) target and residual, ``target + residual == data`` exactly in
    float64."""
    mask = ratio_mask(target, residual, power, offset)
    length = len(data)
    stereo_target = np.stack([istft(mask * stft(data[:, c], offset), length, offset)
                              for c in range(data.shape[1])], axis=1)
    return stereo_target, data.astype(np.float64) - stereo_target


def lanes(mode: str, channels: int) -> int:
    """Model passes per chunk."""
    return channels if mode == "channels" else 1


def lane_signal(mode: str, data: np.ndarray, lane: int) -> np.ndarray:
    """The mono signal the model separates for ``lane`` of a (T, C) chunk."""
    return data[:, lane] if mode == "channels" else data.mean(axis=1)


def combine(mode: str, data: np.ndarray, answers: list[Pair], offset: int = 0) -> Pair:
    """The model's mono answers for a (T, C) chunk starting at sample ``offset`` of the file
    (one answer per lane) -> (T, C) target and residual."""
    if mode == "channels":
        return (np.stack([answers[c][0] for c in range(len(answers))], axis=1),
                np.stack([answers[c][1] for c in range(len(answers))], axis=1))
    mono_target, mono_residual = answers[0]
    if mode == "image" and data.shape[1] > 1:
        return image_split(data, mono_target, mono_residual, offset=offset)
    side = data - data.mean(axis=1, keepdims=True)  # zero for mono input
    return (np.repeat(mono_target[:, None], data.shape[1], axis=1),
            mono_residual[:, None] + side)


def separate_stereo(mode: str, data: np.ndarray,
                    model: Callable[[list[np.ndarray]], list[Pair]]) -> Pair:
    """One whole (T, C) signal through a mono ``model`` (list of signals -> list of pairs)."""
    count = lanes(mode, data.shape[1])
    return combine(mode, data, model([lane_signal(mode, data, k) for k in range(count)]))
