"""Span prompts (anchors): checked, moved into each chunk's time, and predicted spans merged
back into the input's time. Standard library only (pure; shared with the laptop's checks).

A span is ``[sign, start_s, end_s]``: ``+`` the described sound is there, ``-`` it is not,
in seconds of the item. The real processor (sam_audio 68b48d4 ``Batch.process_anchors``)
turns the anchors of one item into latent frames of ``hop`` samples: frame ``k`` gets the
span when ``ceil(start*rate/hop) <= k < ceil(end*rate/hop)``, i.e. a frame counts when the
span reaches into it at its end but not at its start; frames no span covers are ``<null>``;
where spans overlap the later one wins. Its edges are not guarded: a negative start
indexes from the end of the item (python slicing) and an end past the item marks padding
frames, so every chunk anchor is clipped to its chunk here; and ``ceil`` of a float product
lands one frame late for some exact frame boundaries (0.28 s -> frame 8, not 7), so the
seconds handed over are chosen (``seconds_at``) to give exactly the frame of the sample
meant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

SIGNS = ("+", "-")
# A span may end this far past the end of the file (a duration rounded up by the user or
# by `m:ss.s`): it is clipped to the file.
END_TOLERANCE_S = 0.001


class SpanError(ValueError):
    """A span is malformed; the message names it."""


def check_spans(raw: Any, where: str = "spans") -> list[list]:
    """``raw`` as a list of ``[sign, start_s, end_s]`` (floats), or SpanError."""
    if not isinstance(raw, list | tuple):
        raise SpanError(f"{where} must be a list of [sign, start_s, end_s]")
    spans: list[list] = []
    for index, span in enumerate(raw):
        name = f"{where}[{index}]"
        if not isinstance(span, list | tuple) or len(span) != 3:
            raise SpanError(f"{name}: {span!r} is not [sign, start_s, end_s]")
        sign, start, end = span
        if sign not in SIGNS:
            raise SpanError(f"{name}: sign {sign!r} is not '+' or '-'")
        for value in (start, end):
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise SpanError(f"{name}: {value!r} is not a number of seconds")
        if start < 0:
            raise SpanError(f"{name}: starts before the file ({start:g} s)")
        if end <= start:
            what = "empty" if end == start else "reversed"
            raise SpanError(f"{name}: {describe(sign, start, end)} is {what} "
                            "(the end must come after the start)")
        spans.append([sign, float(start), float(end)])
    return spans


def check_within(spans: Sequence[Sequence], duration_s: float, where: str = "spans") -> None:
    """Every span inside a file of ``duration_s`` seconds (SpanError names the first not)."""
    for index, (sign, start, end) in enumerate(spans):
        if start >= duration_s or end > duration_s + END_TOLERANCE_S:
            raise SpanError(f"{where}[{index}]: {describe(sign, start, end)} lies outside the "
                            f"file ({duration_s:.3f} s long)")


def describe(sign: str, start: float, end: float) -> str:
    return f"{sign}{start:g}:{end:g}"


def to_samples(spans: Iterable[Sequence], rate: int) -> list[tuple[str, int, int]]:
    """Spans in seconds -> (sign, first sample, end sample) at ``rate``."""
    return [(sign, round(start * rate), round(end * rate)) for sign, start, end in spans]


def frame_of(sample: int, hop: int) -> int:
    """The frame index the processor gives a span edge at ``sample``: ceil(sample / hop)."""
    return -(-sample // hop)


def seconds_at(sample: int, rate: int, hop: int) -> float:
    """Seconds for which the processor's ``ceil(t * rate / hop)`` is exactly
    ``frame_of(sample)`` (plain ``sample / rate`` is one frame late at some boundaries)."""
    want = frame_of(sample, hop)
    seconds = sample / rate
    for _ in range(8):  # a few ulps at most
        got = math.ceil(seconds * rate / hop)
        if got == want:
            return seconds
        seconds = math.nextafter(seconds, -math.inf if got > want else math.inf)
    raise AssertionError(f"no float seconds map sample {sample} to frame {want}")


def chunk_anchors(spans: Sequence[tuple[str, int, int]], start: int, length: int,
                  rate: int, hop: int) -> list[list]:
    """The anchors of one chunk ``[start, start + length)`` (model-rate samples): each span
    that overlaps it, moved to chunk time and clipped to it, in the processor's format
    ``[sign, start_s, end_s]``. A chunk no span touches gets ``[]``."""
    anchors: list[list] = []
    for sign, first, end in spans:
        lo, hi = max(first - start, 0), min(end - start, length)
        if hi > lo:
            anchors.append([sign, seconds_at(lo, rate, hop), seconds_at(hi, rate, hop)])
    return anchors


def predicted_anchors(spans: Iterable[Sequence[float]], length: int, rate: int,
                      hop: int) -> tuple[list[list], list[tuple[int, int]]]:
    """The span predictor's ``[[start_s, end_s], …]`` for one chunk of ``length`` samples ->
    (``+`` anchors for the processor, the spans as chunk samples clipped to the chunk)."""
    anchors: list[list] = []
    samples: list[tuple[int, int]] = []
    for start_s, end_s in spans:
        lo, hi = max(round(start_s * rate), 0), min(round(end_s * rate), length)
        if hi > lo:
            anchors.append(["+", seconds_at(lo, rate, hop), seconds_at(hi, rate, hop)])
            samples.append((lo, hi))
    return anchors, samples


def merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of ``(start, end)`` intervals, sorted; touching ones join."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def as_seconds(intervals: Iterable[tuple[int, int]], rate: int) -> list[list[float]]:
    """Sample intervals -> ``[[start_s, end_s], …]`` rounded to the millisecond (events)."""
    return [[round(lo / rate, 3), round(hi / rate, 3)] for lo, hi in intervals]
