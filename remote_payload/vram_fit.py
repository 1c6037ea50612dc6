"""How much GPU memory one ``separate`` call needs beyond the weights: the batch sizing model.

    bytes(size, dtype, x) = a + b * x,   x = chunk seconds * batch * reranking candidates

``FIT`` holds (a, b) per "size/dtype", as fitted by ``bench/bench_gpu.py --write-fit`` on a
CUDA GPU (peak allocated during the call minus what was allocated before it). Where the
table has no entry (or holds no measurement yet) the prior below is used: the guess the
engine always used (256 MiB per audio second per candidate, no fixed part), which the
engine's OOM back-off corrects on the first batch that does not fit.

Provenance: no CUDA GPU was available when this file was written (2026-12-02, issue 13), so
``FIT`` is empty and ``MEASURED_ON`` is None. Run ``python bench/bench_gpu.py --write-fit``
on a CUDA host and commit the result.
"""

from __future__ import annotations

import os

PRIOR = (0, 256 * 2**20)  # (a, b): the earlier guess, not a measurement
SIZES = ("small", "base", "large")

# -- fit start (written by bench/bench_gpu.py --write-fit)
MEASURED_ON = None
FIT: dict[str, tuple[int, int]] = {
}
# -- fit end


def model_size(model_id: str) -> str:
    """small / base / large from a Hub id or folder name; unknown ones count as large."""
    name = os.path.basename(model_id.rstrip("/")).lower()
    for size in SIZES:
        if size in name:
            return size
    return "large"  # the biggest: a batch too small is safe, one too big costs an OOM retry


def coefficients(model_id: str, dtype: str) -> tuple[int, int]:
    size = model_size(model_id)
    # fp32 activations are twice bf16/fp16's; a fit for the other half-precision type serves
    for key, scale in ((f"{size}/{dtype}", 1), (f"{size}/{'fp16' if dtype == 'bf16' else 'bf16'}",
                                                 2 if dtype == "fp32" else 1)):
        if key in FIT:
            a, b = FIT[key]
            return a * scale, b * scale
    return PRIOR


def batch_that_fits(free_bytes: float, model_id: str, dtype: str, seconds_per_item: float,
                    most: int) -> int:
    """The largest batch (1..most) whose a + b * seconds * batch fits in ``free_bytes``."""
    a, b = coefficients(model_id, dtype)
    per_item = max(b * seconds_per_item, 1.0)
    return max(1, min(most, int((free_bytes - a) // per_item)))
