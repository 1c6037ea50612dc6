"""``RemoteEngine``: the ``Engine`` surface the runner and ItemSeparation use, served by the
GPU actors of a Ray cluster (ray_pool.py) instead of a model in this process.

``submit`` hands a batch to the pool and returns at once, so one item keeps ``window``
batches in flight over all GPUs (a long file is N times faster on N GPUs); the answers are
taken in submission order, so the overlap-add sees exactly what a one-GPU run sees, and
with the same batches and seeds the outputs are identical.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .engine import EngineError, OutOfMemory
from .manifest import Settings
from .ray_actor import settings_payload
from .ray_pool import ActorPool


class RemoteEngine:
    def __init__(self, settings: Settings, pool: ActorPool, warn: Callable[..., None],
                 describe: dict[str, Any]):
        self.settings = settings
        self.pool = pool
        self.warn = warn
        self.model_id = settings.model
        self.model: Any = None  # the judge (Scorer) loads its own on the head
        self.device = "ray"
        self.last_ranks: list[dict[str, Any]] | None = None
        self._describe = describe
        self.active_items: Callable[[], int] = lambda: 1  # inbox.Concurrent sets it
        self._loaded = False
        self._sizes: dict[int, int] = {}
        self._hop: int | None = None
        self._lock = threading.Lock()
        self._calls = ThreadPoolExecutor(max_workers=4 * len(pool.actors) + 4,
                                         thread_name_prefix="ray-call")

    @property
    def data(self) -> dict[str, Any]:
        return settings_payload(self.settings)

    @property
    def window(self) -> int:
        """Batches one item keeps in flight: two per live GPU (one running, one queued)
        shared by the items running at once, so a lone long file fills every GPU while a
        batch of many keeps 2 x GPUs in flight in all (bounded memory on the head)."""
        return max(2, math.ceil(2 * self.pool.live / max(1, self.active_items())))

    def describe(self) -> dict[str, Any]:
        return dict(self._describe)

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> dict[str, Any]:
        """The model on every GPU actor at once (a warm actor answers at once)."""
        answers = self.pool.call_all("load", self.data)
        for answer in answers:
            if answer[0] != "ok":
                self._unwrap(answer)
        loads = [(a[1], a[2]) for a in answers]
        first = loads[0][0]
        self._loaded = True
        return {**first, "device": "ray",
                "seconds": max(f.get("seconds", 0) for f, _ in loads),
                "actors": len(loads), "loaded_now": sum(1 for _, fresh in loads if fresh),
                "warm": sum(1 for _, fresh in loads if not fresh)}

    def batch_size_for(self, chunk_samples: int) -> int:
        """The smallest any GPU takes (the same batches as a one-GPU run on that GPU)."""
        with self._lock:
            if chunk_samples not in self._sizes:
                sizes = [self._unwrap(a) for a in self.pool.call_all(
                    "batch_size_for", self.data, chunk_samples)]
                self._sizes[chunk_samples] = max(1, min(sizes))
            return self._sizes[chunk_samples]

    @property
    def hop_length(self) -> int:
        if self._hop is None:
            self._hop = int(self._unwrap(self.pool.call("hop_length", self.data)))
        return self._hop

    def submit(self, signals: list[np.ndarray], descriptions: list[str], seed: int,
               anchors: list[list] | None = None,
               videos: list | None = None) -> Future:
        """A future of ``(pairs, ranks)``; raises like ``Engine.separate`` on result()."""
        data = self.data
        args = (data, [np.ascontiguousarray(s, dtype=np.float32) for s in signals],
                list(descriptions), seed, anchors, videos)
        return self._calls.submit(self._separate, args)

    def separate(self, signals: list[np.ndarray], descriptions: list[str], seed: int,
                 anchors: list[list] | None = None,
                 videos: list | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        pairs, self.last_ranks = self.submit(signals, descriptions, seed, anchors=anchors,
                                             videos=videos).result()
        return pairs

    def predict_spans(self, signals: list[np.ndarray],
                      descriptions: list[str]) -> list[list[list[float]]]:
        return self._unwrap(self.pool.call("predict_spans", self.data, list(signals),
                                           list(descriptions)))

    def release_memory(self) -> None:
        """Nothing here: each actor frees its own GPU memory after an OOM."""

    def close(self) -> None:
        self.pool.stop.set()
        self._calls.shutdown(wait=False, cancel_futures=True)

    # -- answers --------------------------------------------------------------------------
    def _separate(self, args: tuple) -> tuple[list, list | None]:
        answer = self.pool.call("separate", *args)
        if answer[0] != "ok":
            self._unwrap(answer)
        _, pairs, ranks, loaded, warnings = answer
        for message, code in warnings:
            self.warn(message, code=code)
        if loaded is not None and self._loaded:
            self.warn("a GPU actor loaded the model again (it was restarted)",
                      code="ray_actor_reloaded")
        return pairs, ranks

    @staticmethod
    def _unwrap(answer: tuple) -> Any:
        tag = answer[0]
        if tag == "ok":
            return answer[1]
        if tag == "oom":
            raise OutOfMemory(answer[1])
        if tag == "engine":
            raise EngineError(answer[1], answer[2])
        raise RuntimeError(f"{answer[1]} on a GPU actor: {answer[2]}")
