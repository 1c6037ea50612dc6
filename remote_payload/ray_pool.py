"""The driver's side of Ray mode: connect, one actor per GPU, calls with failover.

- ``connect``: ``ray.init`` with token auth (``RAY_AUTH_MODE=token``; the token file the
  laptop names, else whatever the environment or ``~/.ray/auth_token`` gives). A cluster
  that cannot be reached or refuses the token is one ``cluster`` error, never a hang.
- ``ensure_actors``: one named detached actor per GPU of the cluster (``sam-gpu-<i>`` in
  namespace ``remote-sep``), ``num_gpus=1, num_cpus=0`` (a GPU actor that also took a CPU
  would leave GPUs idle on CPU-poor nodes), ``max_restarts=-1`` (a crashed actor comes back
  and reloads), ``max_task_retries=0`` (a dead actor's call fails at once: the driver sends it
  elsewhere). An actor left by another payload version is killed first: a detached actor
  keeps its code, and an old one holding a GPU would block its successor forever.
- ``ActorPool.call``: the live actor with the fewest calls in flight; a call whose actor
  died, or that got no answer within ``call_timeout`` (an actor on a lost node that no GPU
  is left to restart it on stays pending forever), is sent to another live actor. Calls
  are pure (same batch, same seed, same answer), so a retry cannot change an output.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from .engine import EngineError

NAMESPACE = "remote-sep"
ACTOR_PREFIX = "sam-gpu-"
PING_SECONDS = 10.0  # an actor that cannot say who it is in this long counts as down
READY_SECONDS = 120.0  # a new actor (a fresh worker process, imports) must answer by then
DEFAULT_CALL_TIMEOUT = 900.0
# A warm model nobody used this long is unloaded by its actor (REMOTE_SEP_RAY_IDLE_UNLOAD,
# seconds, 0: never): kept warm between runs, but never holding a GPU's memory for nothing.
DEFAULT_IDLE_UNLOAD = 900.0


def payload_version() -> str:
    """The payload code's content hash: actors of another version are replaced."""
    root = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            digest.update(name.encode())
            with open(os.path.join(root, name), "rb") as source:
                digest.update(source.read())
    return digest.hexdigest()[:16]


def connect(address: str, token_file: str | None = None) -> Any:
    """``ray.init`` on ADDRESS with token auth; returns the ray module."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # never an open cluster by default
    named = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    if token_file and not named and os.path.isfile(os.path.expanduser(token_file)):
        os.environ["RAY_AUTH_TOKEN_PATH"] = os.path.expanduser(token_file)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise EngineError("not_provisioned", f"cannot import ray ({exc}): this host's venv "
                          "has no Ray; `remote-sep cluster up` installs it") from exc
    if ray.is_initialized():
        return ray
    try:
        # The payload code travels with the job (uploaded once per version, by hash): the
        # actors on nodes without it import it from there.
        # ray.init puts its own SIGTERM handler (sys.exit) in place of the payload's, which
        # unwinds as an interruption (temp outputs removed, the stop said once): kept ours
        ours = signal.getsignal(signal.SIGTERM)
        ray.init(address=address, namespace=NAMESPACE, logging_level="ERROR",
                 log_to_driver=False, configure_logging=False,
                 runtime_env={"py_modules": [os.path.dirname(os.path.abspath(__file__))]})
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, ours)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError…
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineError("cluster", f"cannot join the Ray cluster at {address!r}: {first} "
                          "(is it running, and does this host have its token? "
                          "`remote-sep cluster status`)") from exc
    return ray


def cluster_gpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def actor_class(ray: Any) -> Any:
    from .ray_actor import SeparationActor

    return ray.remote(SeparationActor)


def our_actor_names(ray: Any) -> list[str]:
    """remote-sep's named actors, from the GCS (no dashboard needed), in index order."""
    found = ray.util.list_named_actors(all_namespaces=True)
    names = {a["name"] for a in found if a.get("namespace") == NAMESPACE
             and a.get("name", "").startswith(ACTOR_PREFIX)}
    return sorted(names, key=_index)


def _index(name: str) -> int:
    tail = name[len(ACTOR_PREFIX):]
    return int(tail) if tail.isdigit() else 1 << 30


def ensure_actors(ray: Any, version: str, warn: Callable[..., None]) -> list[tuple[str, Any]]:
    """(name, handle) of a ready actor per GPU of the cluster (fewer if some never
    answer: warned). Every actor of ours is asked, not only ``sam-gpu-0..N-1``: after a
    node was lost, the one stuck restarting may be ``sam-gpu-0`` while ``sam-gpu-2`` runs."""
    gpus = cluster_gpus(ray)
    if gpus < 1:
        raise EngineError("cluster", "the Ray cluster has no GPU: start its nodes with GPUs "
                          "(`ray start --num-gpus N`; `remote-sep cluster up` counts them with "
                          "nvidia-smi)")
    cls = actor_class(ray)
    # max_concurrency: info() (the liveness ping) answers while a batch runs; the batches
    # themselves take the actor's lock one at a time (ray_actor.py)
    options = {"namespace": NAMESPACE, "lifetime": "detached", "get_if_exists": True,
               "num_gpus": 1, "num_cpus": 0, "max_restarts": -1, "max_task_retries": 0,
               "max_concurrency": 4}
    idle = float(os.environ.get("REMOTE_SEP_RAY_IDLE_UNLOAD", DEFAULT_IDLE_UNLOAD))

    def make(name: str) -> Any:
        return cls.options(name=name, **options).remote(version, idle)

    names = sorted(set(our_actor_names(ray)) | {f"{ACTOR_PREFIX}{i}" for i in range(gpus)},
                   key=_index)
    handles = {name: make(name) for name in names}
    infos = _infos(ray, handles, PING_SECONDS, enough=gpus)
    stale = [n for n, info in infos.items() if info is not None and info["version"] != version]
    if stale:
        for name in stale:
            ray.kill(handles[name], no_restart=True)
        _wait_gone(ray, stale)
        handles.update({name: make(name) for name in stale})
    if stale or sum(info is not None for info in infos.values()) < gpus:
        infos = _infos(ray, handles, READY_SECONDS, enough=gpus)
    ready = [(n, handles[n]) for n in names
             if infos.get(n) is not None and infos[n]["version"] == version]
    if not ready:
        raise EngineError("cluster", f"none of the {gpus} GPU actor(s) answered within "
                          f"{READY_SECONDS:g} s (see the Ray logs on the head)")
    if len(ready) < gpus:
        warn(f"{gpus - len(ready)} of {gpus} GPU actor(s) did not answer; running on "
             f"{len(ready)}", code="ray_actors_missing")
    return ready


def _infos(ray: Any, handles: dict[str, Any], timeout: float,
           enough: int) -> dict[str, dict | None]:
    """Each actor's info() once ENOUGH answered (or TIMEOUT passed; then a short grace for
    the rest); None: no answer; ``{"version": None}``: an actor of an older class (its
    handle has no info())."""
    refs: dict[str, Any] = {}
    out: dict[str, dict | None] = {}
    for name, handle in handles.items():
        try:
            refs[name] = handle.info.remote()
        except AttributeError:
            out[name] = {"version": None}
    waiting = list(refs.values())
    if waiting:
        ray.wait(waiting, num_returns=min(len(waiting), max(1, enough - len(out))),
                 timeout=timeout)
        ray.wait(waiting, num_returns=len(waiting), timeout=1.0)
    for name, ref in refs.items():
        try:
            out[name] = ray.get(ref, timeout=0)
        except Exception:  # noqa: BLE001 - not ready or dead
            out[name] = None
    return out


def _wait_gone(ray: Any, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        while time.monotonic() < deadline:
            try:
                ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                break
            time.sleep(0.2)


class ActorPool:
    """Calls spread over live actors; a dead or silent actor's call goes to another."""

    def __init__(self, ray: Any, actors: list[tuple[str, Any]],
                 call_timeout: float = DEFAULT_CALL_TIMEOUT,
                 warn: Callable[..., None] | None = None):
        self.ray = ray
        self.names = [name for name, _ in actors]
        self.actors = [handle for _, handle in actors]
        self.call_timeout = call_timeout
        self.warn = warn or (lambda message, **_: None)
        self.lock = threading.Lock()
        self.busy = {i: 0 for i in range(len(actors))}
        self.down: set[int] = set()
        self.stop = threading.Event()  # set on interrupt: calls waiting give up

    @property
    def live(self) -> int:
        with self.lock:
            return len(self.actors) - len(self.down)

    def call(self, method: str, *args: Any) -> tuple:
        """The actor's tagged answer (``("ok", …)``, ``("oom", …)``…); raises EngineError
        ``cluster`` when no actor is left to answer."""
        tried = 0
        while True:
            index = self._pick()
            ref = getattr(self.actors[index], method).remote(*args)
            try:
                return self._await(ref, index)
            except _ActorLost as lost:
                tried += 1
                self._mark_down(index, str(lost))
                if tried > 2 * len(self.actors) + 2:
                    raise EngineError("cluster", f"gave up on a {method} call after {tried} "
                                      f"actor failures (last: {lost})") from None
            finally:
                with self.lock:
                    self.busy[index] -= 1

    def call_all(self, method: str, *args: Any) -> list[tuple]:
        """METHOD on every live actor at once (loading the model everywhere)."""
        with self.lock:
            indexes = [i for i in range(len(self.actors)) if i not in self.down]
        refs = {i: getattr(self.actors[i], method).remote(*args) for i in indexes}
        answers = []
        for i, ref in refs.items():
            try:
                answers.append(self._await(ref, i, count=False))
            except _ActorLost as lost:
                self._mark_down(i, str(lost))
        if not answers:
            raise EngineError("cluster", "no GPU actor of the Ray cluster answered")
        return answers

    def _pick(self) -> int:
        """The live actor with the fewest calls in flight; waits (bounded) for one to come
        back when all are down."""
        deadline = time.monotonic() + self.call_timeout
        while True:
            with self.lock:
                live = [i for i in self.busy if i not in self.down]
                if live:
                    index = min(live, key=lambda i: (self.busy[i], i))
                    self.busy[index] += 1
                    return index
            if self.stop.is_set() or time.monotonic() > deadline:
                raise EngineError("cluster", "every GPU actor of the Ray cluster is down (a "
                                  "node lost, or no free GPU to restart them on)")
            self._revive()
            time.sleep(1.0)

    def _await(self, ref: Any, index: int, count: bool = True) -> tuple:
        ray = self.ray
        deadline = time.monotonic() + self.call_timeout
        while True:
            ready, _ = ray.wait([ref], timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            if ready:
                break
            if self.stop.is_set():
                ray.cancel(ref, force=False)
                raise EngineError("interrupted", "the driver was stopped")
            if time.monotonic() > deadline:
                ray.cancel(ref, force=False)
                raise _ActorLost(f"no answer in {self.call_timeout:g} s")
        try:
            return ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError,
                ray.exceptions.ObjectLostError, ray.exceptions.WorkerCrashedError) as exc:
            raise _ActorLost(f"{type(exc).__name__}") from None

    def _mark_down(self, index: int, why: str) -> None:
        with self.lock:
            if index in self.down:
                return
            self.down.add(index)
            left = len(self.actors) - len(self.down)
        self.warn(f"GPU actor {self.names[index]} lost ({why}); its work goes to the "
                  f"{left} other(s)", code="ray_actor_lost")
        threading.Thread(target=self._watch, args=(index,), daemon=True,
                         name=f"revive-{index}").start()

    def _watch(self, index: int) -> None:
        """Back in the pool once it answers again (restarted on its node or another)."""
        while not self.stop.is_set():
            if self._answers(index):
                with self.lock:
                    self.down.discard(index)
                self.warn(f"GPU actor {self.names[index]} is back", code="ray_actor_back")
                return
            time.sleep(2.0)

    def _revive(self) -> None:
        with self.lock:
            down = list(self.down)
        for index in down:
            if self._answers(index):
                with self.lock:
                    self.down.discard(index)

    def _answers(self, index: int) -> bool:
        ref = self.actors[index].info.remote()
        ready, _ = self.ray.wait([ref], timeout=PING_SECONDS)
        if not ready:
            self.ray.cancel(ref, force=False)
            return False
        try:
            self.ray.get(ref)
            return True
        except Exception:  # noqa: BLE001 - still dead
            return False


class _ActorLost(Exception):
    pass
