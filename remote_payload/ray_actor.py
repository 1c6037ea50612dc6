"""The GPU side of Ray mode: one named, detached actor per GPU holding a warm ``Engine``.

The actor does the model's work only (a batch of chunks in, separated chunks out); reading
the input, the chunk plan, overlap-add and writing the outputs stay with the driver on the
head (ray_runner.py), so outputs land where a plain run puts them, verified the same way.

Every method answers a tagged tuple instead of raising: ``("ok", value…)``, ``("oom",
message)``, ``("engine", kind, message)`` (job-fatal: gated, no_gpu, not_provisioned…) or
``("error", type, message)``: exceptions with their own constructor arguments do not survive
Ray's pickling, and the driver must tell an out-of-memory from a dead actor.

The engine is kept across runs (warm) while the settings that shape the load stay the same
(``LOAD_FIELDS``); the per-call ones (ODE steps, batch size…) are swapped in on each call.
A model nobody called for ``idle_unload_s`` is unloaded (its GPU memory freed; the actor
stays and loads again on the next call): a warm GPU must not stay busy for nothing.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import asdict, fields
from typing import Any

from .manifest import Settings

# What Engine.load builds from; any other setting is read at call time.
LOAD_FIELDS = ("model", "dtype", "device", "require_gpu", "rerank", "predict_spans", "video")


def settings_from(data: dict[str, Any]) -> Settings:
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in data.items() if k in known})


def load_key(settings: Settings) -> tuple:
    return tuple(getattr(settings, name) for name in LOAD_FIELDS)


class SeparationActor:
    """Wrapped by ``ray.remote`` in ray_pool.py (this module does not import ray)."""

    def __init__(self, version: str, idle_unload_s: float = 0.0):
        self.version = version
        self.idle_unload_s = idle_unload_s  # 0: never
        self.lock = threading.Lock()  # a call and the idle unload never overlap
        self.last_call = time.monotonic()
        self.engine: Any = None
        self.key: tuple | None = None
        self.calls = 0
        self.loads = 0
        self.load_fields: dict[str, Any] = {}
        self.started = time.time()
        self.warnings: list[tuple[str, str | None]] = []  # relayed by the driver
        if idle_unload_s > 0:
            threading.Thread(target=self._unload_when_idle, daemon=True,
                             name="idle-unload").start()

    # -- what the driver asks -----------------------------------------------------------
    def info(self) -> dict[str, Any]:  # never waits for the lock: it is the liveness ping
        import ray

        context = ray.get_runtime_context()
        engine = self.engine
        return {"version": self.version, "pid": os.getpid(), "node_id": context.get_node_id(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "model": None if engine is None else engine.model_id,
                "loaded": bool(engine is not None and engine.loaded),
                "device": None if engine is None else engine.device,
                "calls": self.calls, "loads": self.loads,
                "idle_s": round(time.monotonic() - self.last_call, 1),
                "idle_unload_s": self.idle_unload_s,
                "up_s": round(time.time() - self.started, 1)}

    def load(self, settings: dict[str, Any]) -> tuple:
        """("ok", the load fields, whether this call loaded the model: False when warm)."""
        def work() -> tuple:
            _, fresh = self._engine(settings)
            return "ok", dict(self.load_fields), fresh is not None

        return self._guard(work)

    def batch_size_for(self, settings: dict[str, Any], samples: int) -> tuple:
        return self._guard(lambda: ("ok", self._engine(settings)[0].batch_size_for(samples)))

    def hop_length(self, settings: dict[str, Any]) -> tuple:
        return self._guard(lambda: ("ok", self._engine(settings)[0].hop_length))

    def separate(self, settings: dict[str, Any], signals: list, descriptions: list[str],
                 seed: int, anchors: list | None = None, videos: list | None = None) -> tuple:
        def work() -> tuple:
            engine, loaded = self._engine(settings)
            self.calls += 1
            prompts = {} if videos is None else {"videos": videos}
            pairs = engine.separate(signals, descriptions, seed, anchors=anchors, **prompts)
            return "ok", pairs, engine.last_ranks, loaded, self._take_warnings()

        return self._guard(work)

    def predict_spans(self, settings: dict[str, Any], signals: list,
                      descriptions: list[str]) -> tuple:
        return self._guard(lambda: ("ok", self._engine(settings)[0].predict_spans(
            signals, descriptions)))

    # -- inside -------------------------------------------------------------------------
    def _engine(self, data: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        """The warm engine for these settings (built and loaded on first need); the
        ``load`` fields when this call loaded it, else None."""
        from .engine import Engine, EngineError
        from .hub_cache import preflight

        settings = settings_from(data)
        key = load_key(settings)
        if self.engine is not None and self.key == key:
            self.engine.settings = settings  # call-time fields: steps, batch size, seed
            return self.engine, None
        if self.engine is not None:  # another model or dtype: the old one goes first
            self._unload()
        engine = Engine(settings, warn=lambda message, code=None, **_: self.warnings.append(
            (message, code)))
        problem = preflight(settings, cwd=os.getcwd())
        if problem:
            raise EngineError(*problem)
        fields_ = engine.load()
        self.engine, self.key, self.load_fields = engine, key, fields_
        self.loads += 1
        return engine, fields_

    def _unload(self) -> None:
        engine, self.engine, self.key = self.engine, None, None
        engine.model = engine.processor = None
        engine.release_memory()

    def _unload_when_idle(self) -> None:
        while True:
            time.sleep(min(5.0, self.idle_unload_s))
            with self.lock:
                idle = time.monotonic() - self.last_call
                if self.engine is not None and idle > self.idle_unload_s:
                    self._unload()

    def _take_warnings(self) -> list[tuple[str, str | None]]:
        taken, self.warnings = self.warnings, []
        return taken

    def _guard(self, work) -> tuple:
        from .engine import EngineError, OutOfMemory

        try:
            with self.lock:
                self.last_call = time.monotonic()
                return work()
        except OutOfMemory as exc:
            return "oom", str(exc)
        except EngineError as exc:
            return "engine", exc.kind, exc.message
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which decides
            tail = traceback.format_exc(limit=3).strip().splitlines()[-1]
            return "error", type(exc).__name__, f"{exc} ({tail})"


def settings_payload(settings: Settings) -> dict[str, Any]:
    return asdict(settings)
