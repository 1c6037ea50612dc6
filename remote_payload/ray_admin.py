"""``python -m remote_payload ray status|down``: what `remote-sep cluster status/down` runs
on the head. One JSON line on stdout each (the laptop parses it):

- status: ``{"ray_version", "nodes": [{"node_id", "address", "alive", "gpus", "cpus"}],
  "gpus": <GPUs of the alive nodes>, "actors": [{"name", "state", "node_id", "model",
  "loaded", "items", "version"}]}``; an actor that does not answer in a few seconds is
  listed with ``state: "unreachable"`` (pending on a lost node, or restarting).
- down: ``{"killed": [names]}``: remote-sep's GPU actors killed for good (their GPUs free).

A cluster that cannot be joined: ``{"error": "cluster", "message": …}`` and exit 21.
"""

from __future__ import annotations

import json
from typing import Any

from .engine import EngineError
from .protocol import exit_code_for
from .ray_pool import NAMESPACE, connect, our_actor_names

ANSWER_SECONDS = 5.0


def main(args: Any) -> int:
    try:
        ray = connect(args.address, args.ray_token_file)
        answer = status(ray) if args.action == "status" else down(ray)
    except EngineError as exc:
        print(json.dumps({"error": exc.kind, "message": exc.message}), flush=True)
        return exit_code_for(exc.kind)
    print(json.dumps(answer), flush=True)
    return 0


def status(ray: Any) -> dict[str, Any]:
    nodes = [{"node_id": n["NodeID"], "address": n.get("NodeManagerAddress"),
              "alive": bool(n.get("Alive")), "gpus": n.get("Resources", {}).get("GPU", 0.0),
              "cpus": n.get("Resources", {}).get("CPU", 0.0)} for n in ray.nodes()]
    actors = []
    for name in our_actor_names(ray):
        handle = ray.get_actor(name, namespace=NAMESPACE)
        row: dict[str, Any] = {"name": name, "state": "unreachable", "node_id": None,
                               "model": None, "loaded": False, "calls": 0, "version": None}
        try:
            ref = handle.info.remote()
            ready, _ = ray.wait([ref], timeout=ANSWER_SECONDS)
            if ready:
                info = ray.get(ref)
                row.update(state="alive", node_id=info["node_id"], model=info["model"],
                           loaded=info["loaded"], calls=info["calls"],
                           version=info["version"])
        except Exception:  # noqa: BLE001 - an old class or a dead actor: listed as is
            row["state"] = "stale"
        actors.append(row)
    return {"ray_version": ray.__version__, "nodes": nodes,
            "gpus": sum(n["gpus"] for n in nodes if n["alive"]), "actors": actors}


def down(ray: Any) -> dict[str, Any]:
    killed = []
    for name in our_actor_names(ray):
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            killed.append(name)
        except ValueError:  # gone meanwhile
            pass
    return {"killed": killed}

