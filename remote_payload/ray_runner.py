"""Ray mode (``python -m remote_payload run … --ray ADDRESS``): the driver on the head node.

The same job, manifest, inbox and event stream as a plain run (the laptop side does not
change); what differs is where the model runs: ``RemoteEngine`` sends every batch of chunks
to the cluster's GPU actors (ray_pool.py), while reading, the chunk plan, overlap-add and the
verified atomic writes of the outputs stay here, in ``out/``. A batch worker runs as many
items at once as there are GPU actors (inbox.Concurrent); a single long file keeps two
batches per GPU in flight (separation.py), so it too is spread over the whole cluster.

``hello`` carries ``slots`` (items the driver takes at once: the laptop keeps its inbox
that much deeper) and ``ray`` (nodes, GPUs, actors). Quality scores (``--score``) are
computed by the judge on the head.
"""

from __future__ import annotations

from typing import Any

from .inbox import Concurrent, run_inbox
from .judge import Scorer
from .manifest import Settings
from .protocol import EventWriter
from .ray_pool import DEFAULT_CALL_TIMEOUT, ActorPool, connect, ensure_actors, payload_version
from .remote_engine import RemoteEngine
from .runner import Runner


class RayRunner(Runner):
    def __init__(self, settings: Settings, base: str, events: EventWriter, address: str,
                 token_file: str | None = None, call_timeout: float = DEFAULT_CALL_TIMEOUT):
        super().__init__(settings, base, events)
        self.address = address
        self.token_file = token_file
        self.call_timeout = call_timeout

    def start(self) -> None:
        """Join the cluster, make sure every GPU has its actor, say hello."""
        ray = connect(self.address, self.token_file)
        actors = ensure_actors(ray, payload_version(), self.warning)
        pool = ActorPool(ray, actors, self.call_timeout, warn=self.warning)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        gpus = int(ray.cluster_resources().get("GPU", 0))
        summary = {"address": self.address, "nodes": len(nodes), "gpus": gpus,
                   "actors": len(actors)}
        describe = {"device": "ray", "torch": None, "cuda": None, "vram_free_mb": None,
                    "gpu_name": f"Ray cluster: {len(actors)} GPU actor(s) on "
                                f"{len(nodes)} node(s)"}
        self.engine = RemoteEngine(self.settings, pool, self.warning, describe)  # type: ignore[assignment]
        self.scorer = Scorer(self.settings, _judge_device(self.settings))
        self.hello(slots=len(actors), ray=summary)

    def run_inbox(self, inbox: str) -> None:
        engine = self.engine
        assert isinstance(engine, RemoteEngine)
        dispatch = Concurrent(self, engine.pool.live)
        engine.active_items = dispatch.running  # the items share the GPUs' window
        run_inbox(self, inbox, dispatch)

    def close(self) -> None:
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()


def _judge_device(settings: Settings) -> str:
    """The judge runs in this process: the head's GPU when torch sees one."""
    if not settings.score:
        return "cpu"
    if settings.device != "auto":
        return settings.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def ray_options(args: Any) -> dict[str, Any] | None:
    """``run``'s Ray arguments as RayRunner keywords (None: a plain run)."""
    if not getattr(args, "ray", None):
        return None
    return {"address": args.ray, "token_file": args.ray_token_file,
            "call_timeout": args.ray_call_timeout}
