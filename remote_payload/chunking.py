"""The numeric core: chunk plan, crossfade weights, streaming overlap-add (numpy only, no I/O).

Chunks all have the same length ``L`` (a batch of chunks never needs padding, which would
change the model's output), the first starts at 0 and the last ends at the file's end.
Between them, starts are spread evenly, so every overlap is at least the requested one and
no tiny tail chunk exists. A file shorter than ``L`` is one chunk of its own length.

Each chunk's output is weighted by a window: ones, with a fade-in over the region it shares
with the previous chunk and a fade-out over the region it shares with the next (none at the
file's own start and end). Complementary fades sum to one; where more than two chunks
overlap (very short hops) the accumulator divides by the weight sum, so the result is
always a proper weighted mean and the output length equals the input length to the sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

FADES = ("raised_cosine", "linear")


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def plan_chunks(total: int, chunk: int, overlap: int) -> list[Chunk]:
    """Equal-length chunks covering ``[0, total)`` with at least ``overlap`` samples shared."""
    if total <= 0:
        raise ValueError("total must be > 0")
    if chunk <= 0 or not 0 <= overlap < chunk:
        raise ValueError("need chunk > 0 and 0 <= overlap < chunk")
    if total <= chunk:
        return [Chunk(0, 0, total)]
    hop = chunk - overlap
    count = math.ceil((total - overlap) / hop)  # enough chunks for overlaps >= overlap
    count = max(count, 2)
    span = total - chunk
    starts = [round(k * span / (count - 1)) for k in range(count)]
    return [Chunk(k, s, s + chunk) for k, s in enumerate(starts)]


def _fade_in(length: int, fade: str) -> np.ndarray:
    """Ramp of ``length`` samples strictly inside (0, 1); ``1 - ramp`` is its mirror fade-out."""
    pos = (np.arange(length, dtype=np.float64) + 0.5) / length
    if fade == "linear":
        return pos
    if fade == "raised_cosine":
        return 0.5 - 0.5 * np.cos(np.pi * pos)
    raise ValueError(f"fade must be one of {FADES}")


def chunk_weights(plan: list[Chunk], index: int, fade: str = "raised_cosine") -> np.ndarray:
    """The raw window of chunk ``index``: fades only where it overlaps its neighbours."""
    chunk = plan[index]
    weights = np.ones(chunk.length, dtype=np.float64)
    if index > 0:
        shared = plan[index - 1].end - chunk.start
        if shared > 0:
            weights[:shared] = _fade_in(shared, fade)
    if index + 1 < len(plan):
        shared = chunk.end - plan[index + 1].start
        if shared > 0:
            weights[chunk.length - shared:] *= 1.0 - _fade_in(shared, fade)
    return weights


class OverlapAdd:
    """Accumulates weighted chunk outputs, releasing each region once no later chunk touches it.

    Chunks must be added in plan order. Memory is bounded by about one chunk (plus the
    overlap), whatever the total length.
    """

    def __init__(self, plan: list[Chunk], channels: int = 1, fade: str = "raised_cosine"):
        self.plan = plan
        self.channels = channels
        self.fade = fade
        self.total = plan[-1].end
        self._next = 0  # index of the next chunk expected
        self._origin = 0  # absolute sample index of _acc[0]; everything before is released
        self._live = 0  # samples of _acc in use
        # The live span never exceeds one chunk: preallocate it once, shift in place.
        capacity = max(c.length for c in plan)
        self._acc = np.zeros((capacity, channels), dtype=np.float64)
        self._wsum = np.zeros(capacity, dtype=np.float64)

    @property
    def released(self) -> int:
        return self._origin

    @property
    def buffered(self) -> int:
        """Samples held (added but not yet released)."""
        return self._live

    def add(self, index: int, output: np.ndarray) -> np.ndarray:
        """Add chunk ``index``'s output ((T,) or (T, C)); return the newly finished samples."""
        if index != self._next:
            raise ValueError(f"chunk {index} added out of order (expected {self._next})")
        chunk = self.plan[index]
        data = output.reshape(chunk.length, -1) if output.ndim == 1 else output
        if data.shape != (chunk.length, self.channels):
            wanted = (chunk.length, self.channels)
            raise ValueError(f"chunk {index}: shape {data.shape} != {wanted}")
        lo, hi = chunk.start - self._origin, chunk.end - self._origin
        weights = chunk_weights(self.plan, index, self.fade)
        self._acc[lo:hi] += data * weights[:, None]
        self._wsum[lo:hi] += weights
        self._live = max(self._live, hi)
        self._next += 1
        done_until = self.plan[self._next].start if self._next < len(self.plan) else self.total
        return self._release(done_until)

    def _release(self, until: int) -> np.ndarray:
        count = until - self._origin
        if count <= 0:
            return np.zeros((0, self.channels), dtype=np.float64)
        done = self._acc[:count] / self._wsum[:count, None]
        keep = self._live - count
        self._acc[:keep] = self._acc[count:self._live]  # numpy handles the overlap
        self._wsum[:keep] = self._wsum[count:self._live]
        self._acc[keep:self._live] = 0.0
        self._wsum[keep:self._live] = 0.0
        self._live = keep
        self._origin = until
        return done

    @property
    def finished(self) -> bool:
        return self._origin == self.total


def overlap_add(plan: list[Chunk], outputs: Iterator[np.ndarray], channels: int = 1,
                fade: str = "raised_cosine") -> np.ndarray:
    """Whole-signal helper (tests, benchmarks): join all chunk outputs into one array."""
    acc = OverlapAdd(plan, channels, fade)
    parts = [acc.add(k, out) for k, out in enumerate(outputs)]
    return np.concatenate(parts)
