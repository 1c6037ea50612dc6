"""remote_payload/spans.py: span checks, chunk-time anchors, predicted spans merged back."""

from __future__ import annotations

import math
import random

import pytest

from remote_payload.chunking import plan_chunks
from remote_payload.spans import (
    SpanError,
    as_seconds,
    check_spans,
    check_within,
    chunk_anchors,
    frame_of,
    merge,
    predicted_anchors,
    seconds_at,
    to_samples,
)

RATE, HOP = 48_000, 1920


def processor_frames(anchor: list, rate: int = RATE, hop: int = HOP) -> range:
    """The frames the real processor (Batch.process_anchors at 68b48d4) gives one anchor."""
    _sign, start, end = anchor
    return range(math.ceil(start * rate / hop), math.ceil(end * rate / hop))


def test_valid_spans_come_back_as_floats():
    assert check_spans([["+", 1, 2.5], ("-", 0, 0.25)]) == [["+", 1.0, 2.5], ["-", 0.0, 0.25]]
    assert check_spans([]) == []


@pytest.mark.parametrize(("raw", "words"), [
    ("+1:2", "must be a list"),
    ([["+", 1]], "is not [sign, start_s, end_s]"),
    ([["*", 1, 2]], "sign '*'"),
    ([["+", "1", 2]], "'1' is not a number"),
    ([["+", True, 2]], "True is not a number"),
    ([["+", 1, float("nan")]], "nan is not a number"),
    ([["+", 1, float("inf")]], "inf is not a number"),
    ([["+", -0.5, 2]], "starts before the file"),
    ([["+", 2, 2]], "+2:2 is empty"),
    ([["+", 0, 1], ["-", 3, 1]], "spans[1]: -3:1 is reversed"),
])
def test_malformed_spans_are_named(raw, words):
    with pytest.raises(SpanError, match=None) as caught:
        check_spans(raw)
    assert words in str(caught.value)


def test_spans_must_lie_inside_the_file():
    check_within([["+", 0.0, 10.0], ["-", 9.0, 10.0005]], 10.0)  # within the 1 ms tolerance
    for span in (["+", 9.0, 10.01], ["+", 10.0, 11.0], ["-", 12.0, 13.0]):
        with pytest.raises(SpanError, match="lies outside the file"):
            check_within([span], 10.0)


def test_seconds_at_gives_the_processors_frame_exactly_where_plain_division_does_not():
    # the real processor: ceil(t * rate / hop); 13440 / 48000 s lands one frame late
    assert math.ceil(13440 / RATE * RATE / HOP) == 8 != frame_of(13440, HOP) == 7
    samples = [*range(0, 3 * HOP), *range(0, 20_000_000, 9973),
               *(k * HOP + d for k in range(0, 12_000, 7) for d in (-1, 0, 1))]
    for sample in samples:
        if sample < 0:
            continue
        assert math.ceil(seconds_at(sample, RATE, HOP) * RATE / HOP) == frame_of(sample, HOP)


def test_a_chunk_gets_the_spans_that_touch_it_in_its_own_time_and_clipped():
    spans = to_samples([["+", 0.5, 1.5], ["-", 2.0, 2.5], ["+", 4.0, 6.0]], RATE)
    # chunk [1.0 s, 3.0 s): the first span's tail, all of the second, nothing of the third
    anchors = chunk_anchors(spans, RATE, 2 * RATE, RATE, HOP)
    assert [a[0] for a in anchors] == ["+", "-"]
    assert [[round(a[1], 9), round(a[2], 9)] for a in anchors] == [[0.0, 0.5], [1.0, 1.5]]
    assert chunk_anchors(spans, round(6.5 * RATE), RATE, RATE, HOP) == []  # untouched
    assert chunk_anchors(spans, round(1.5 * RATE), round(0.5 * RATE), RATE, HOP) == []  # edges
    whole = chunk_anchors(spans, 0, 10 * RATE, RATE, HOP)
    assert [[s, round(a, 9), round(b, 9)] for s, a, b in whole] == \
        [["+", 0.5, 1.5], ["-", 2.0, 2.5], ["+", 4.0, 6.0]]
    inside = chunk_anchors(spans, round(4.5 * RATE), RATE, RATE, HOP)  # a span over the chunk
    assert inside == [["+", 0.0, 1.0]]


def test_chunk_anchors_mark_exactly_the_frames_of_the_clipped_samples():
    """Every chunk of many plans and random spans: the frames the processor marks are those
    of the span's samples inside the chunk, in chunk time (integer arithmetic), and no
    anchor starts before the chunk or ends after it."""
    rng = random.Random(7)
    for _ in range(300):
        total = rng.randrange(1, 40 * RATE)
        chunk = rng.randrange(HOP // 2, 12 * RATE)
        plan = plan_chunks(total, chunk, rng.randrange(0, chunk // 2 + 1))
        spans = []
        for _ in range(rng.randrange(1, 6)):
            first = rng.randrange(0, total)
            spans.append((rng.choice("+-"), first, rng.randrange(first + 1, total + 1)))
        for c in plan:
            anchors = chunk_anchors(spans, c.start, c.length, RATE, HOP)
            touching = [s for s in spans if s[1] < c.end and s[2] > c.start]
            assert len(anchors) == len(touching)
            for anchor, (sign, first, end) in zip(anchors, touching, strict=True):
                lo, hi = max(first - c.start, 0), min(end - c.start, c.length)
                assert anchor[0] == sign
                assert 0 <= anchor[1] < anchor[2] <= c.length / RATE + 1e-12
                assert processor_frames(anchor) == range(frame_of(lo, HOP), frame_of(hi, HOP))


def test_predicted_spans_become_plus_anchors_clipped_to_the_chunk():
    # the predictor reports whole frames; its last frame may reach past a chunk's end
    found = [[0.0, 0.12], [0.28, 0.44], [0.96, 1.04]]
    anchors, samples = predicted_anchors(found, RATE, RATE, HOP)
    assert samples == [(0, 5760), (13440, 21120), (46080, 48000)]
    assert [a[0] for a in anchors] == ["+", "+", "+"]
    assert [processor_frames(a) for a in anchors] == [range(0, 3), range(7, 11),
                                                      range(24, 25)]
    assert predicted_anchors([[1.2, 1.5]], RATE, RATE, HOP) == ([], [])  # past the chunk


def test_merge_joins_overlapping_and_touching_intervals():
    assert merge([]) == []
    assert merge([(5, 9), (0, 2), (2, 3), (8, 12), (20, 30), (21, 22)]) == \
        [(0, 3), (5, 12), (20, 30)]
    assert as_seconds([(0, 24000), (48000, 50400)], RATE) == [[0.0, 0.5], [1.0, 1.05]]


def test_predicted_spans_of_every_chunk_merge_back_into_the_input_time():
    """A sound present on known frames, 'predicted' by each chunk on the frames it sees:
    moved back by the chunk's start and merged, the chunks give the sound's own spans."""
    frames = 500
    truth = [(40, 95), (130, 131), (200, 420)]
    present = {k for lo, hi in truth for k in range(lo, hi)}
    plan = plan_chunks(frames * HOP, 60 * HOP, 20 * HOP)
    assert all(c.start % HOP == 0 for c in plan)
    found = []
    for c in plan:
        first = c.start // HOP
        seen = [k - first for k in range(first, first + c.length // HOP) if k in present]
        runs = merge((k, k + 1) for k in seen)
        spans = [[lo * HOP / RATE, hi * HOP / RATE] for lo, hi in runs]
        _anchors, samples = predicted_anchors(spans, c.length, RATE, HOP)
        found.extend((c.start + lo, c.start + hi) for lo, hi in samples)
    assert merge(found) == [(lo * HOP, hi * HOP) for lo, hi in truth]
