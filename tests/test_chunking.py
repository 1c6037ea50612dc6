"""The numeric core: plan, crossfade weights, streaming overlap-add."""

from __future__ import annotations

import numpy as np
import pytest

from remote_payload.chunking import OverlapAdd, chunk_weights, overlap_add, plan_chunks


@pytest.mark.parametrize("total", [1, 999, 1000, 1001, 1799, 1800, 5000, 12345, 100_003])
@pytest.mark.parametrize("chunk,overlap", [(1000, 200), (1000, 0), (1000, 600), (7, 3)])
def test_plan_covers_exactly_with_equal_chunks(total, chunk, overlap):
    plan = plan_chunks(total, chunk, overlap)
    assert plan[0].start == 0 and plan[-1].end == total
    if total <= chunk:
        assert len(plan) == 1 and plan[0].length == total
        return
    assert {c.length for c in plan} == {chunk}  # a batch never needs padding
    for a, b in zip(plan, plan[1:], strict=False):
        assert a.start < b.start <= a.end  # no gap, no duplicate chunk
        assert a.end - b.start >= overlap - 1  # at least the asked overlap (rounding: 1)


def test_plan_rejects_nonsense():
    with pytest.raises(ValueError):
        plan_chunks(0, 10, 2)
    with pytest.raises(ValueError):
        plan_chunks(100, 10, 10)


@pytest.mark.parametrize("fade", ["raised_cosine", "linear"])
def test_weights_sum_to_one_and_no_fade_at_file_edges(fade):
    total = 10_000
    plan = plan_chunks(total, 3000, 800)
    wsum = np.zeros(total)
    for k, c in enumerate(plan):
        w = chunk_weights(plan, k, fade)
        assert np.all(w > 0)
        wsum[c.start:c.end] += w
    assert np.allclose(wsum, 1.0, atol=1e-12)
    assert chunk_weights(plan, 0, fade)[0] == 1.0
    assert chunk_weights(plan, len(plan) - 1, fade)[-1] == 1.0


@pytest.mark.parametrize("total,chunk,overlap", [(10_000, 3000, 800), (3100, 3000, 200),
                                                 (20, 7, 3), (500, 1000, 100), (9000, 4000, 1999)])
def test_overlap_add_of_unchanged_chunks_is_the_input(total, chunk, overlap):
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((total, 2))
    plan = plan_chunks(total, chunk, overlap)
    out = overlap_add(plan, (signal[c.start:c.end] for c in plan), channels=2)
    assert out.shape == signal.shape  # length preserved to the sample
    assert np.allclose(out, signal, atol=1e-12)


def test_crossfade_blends_two_different_chunk_outputs():
    plan = plan_chunks(2000, 1200, 400)
    acc = OverlapAdd(plan)
    first = acc.add(0, np.zeros(1200))
    second = acc.add(1, np.ones(1200))
    out = np.concatenate([first, second])[:, 0]
    assert np.all(out[: plan[1].start] == 0) and np.all(out[plan[0].end:] == 1)
    fade = out[plan[1].start: plan[0].end]
    assert np.all(np.diff(fade) > 0) and 0 < fade[0] < 0.01 and 0.99 < fade[-1] < 1


def test_streaming_releases_early_and_stays_bounded():
    total, chunk, overlap = 1_000_000, 10_000, 2_000
    plan = plan_chunks(total, chunk, overlap)
    acc = OverlapAdd(plan)
    released = 0
    for k, c in enumerate(plan):
        released += len(acc.add(k, np.ones(c.length)))
        assert released == acc.released
        if k + 1 < len(plan):
            assert released == plan[k + 1].start  # everything no later chunk touches
        assert acc.buffered <= chunk and acc._acc.shape[0] == chunk  # one chunk, not the file
    assert released == total and acc.finished


def test_chunks_must_come_in_order():
    plan = plan_chunks(5000, 2000, 500)
    acc = OverlapAdd(plan)
    with pytest.raises(ValueError):
        acc.add(1, np.zeros(2000))
