"""``python -m remote_payload ray status|down --address ADDR [--ray-token-file PATH]``: what a
Ray cluster holds, and stopping remote-sep's actors on it. One JSON line on stdout each.

A minimal implementation of the contract `remote-sep cluster status/down` codes against
(docs/ray.md); the Ray driver's own module (the payload's Ray mode) supersedes it.

status: {"ray_version", "nodes": [{"node_id", "address", "alive", "gpus", "cpus"}], "gpus",
         "actors": [{"name", "state", "node_id", "model", "loaded", "items"}]}
down:   {"killed": [names]}
cannot connect: {"error": "cluster", "message": …}, exit 21.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from typing import Any

from .protocol import EXIT_CODES

NAMESPACE = "remote-sep"  # the namespace remote-sep's named actors live in
DESCRIBE_TIMEOUT_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("status", "down"))
    parser.add_argument("--address", default="auto", help="the cluster (auto or HOST:PORT)")
    parser.add_argument("--ray-token-file", help="the cluster's auth token file")


def use_token_file(path: str | None) -> None:
    """Token auth from PATH, unless the environment names a token of its own."""
    if not path or not os.path.exists(path):
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = path


def _say(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    use_token_file(args.ray_token_file)
    try:
        import ray
    except ImportError as exc:
        _say({"error": "cluster", "message": f"ray is not installed here: {exc}"})
        return EXIT_CODES["cluster"]
    noise = io.StringIO()
    try:
        with contextlib.redirect_stderr(noise):
            ray.init(address=args.address, namespace=NAMESPACE, logging_level="ERROR",
                     log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - every way of not connecting is one answer
        _say({"error": "cluster",
              "message": f"cannot connect to the Ray cluster at {args.address}: {exc}"})
        return EXIT_CODES["cluster"]
    try:
        _say(_status(ray) if args.action == "status" else _down(ray))
    finally:
        ray.shutdown()
    return 0


def _named_actors(ray: Any) -> list[str]:
    from ray.util import list_named_actors

    return sorted({entry["name"] for entry in list_named_actors(all_namespaces=True)
                   if entry.get("namespace") == NAMESPACE})


def _status(ray: Any) -> dict[str, Any]:
    nodes = [{"node_id": node["NodeID"], "address": node.get("NodeManagerAddress"),
              "alive": bool(node.get("Alive")),
              "gpus": float(node.get("Resources", {}).get("GPU", 0.0)),
              "cpus": float(node.get("Resources", {}).get("CPU", 0.0))}
             for node in ray.nodes()]
    table = {}
    with contextlib.suppress(Exception):  # the GCS actor table: state and node per actor
        from ray._private.state import actors

        table = {info.get("Name"): info for info in actors().values() if info.get("Name")}
    listed = []
    for name in _named_actors(ray):
        info = table.get(name, {})
        entry = {"name": name, "state": info.get("State", "UNKNOWN"),
                 "node_id": (info.get("Address") or {}).get("NodeID"),
                 "model": None, "loaded": False, "items": 0}
        with contextlib.suppress(Exception):  # an actor that answers says what it holds
            handle = ray.get_actor(name, namespace=NAMESPACE)
            said = ray.get(handle.describe.remote(), timeout=DESCRIBE_TIMEOUT_S)
            entry.update({k: said[k] for k in ("model", "loaded", "items") if k in said})
        listed.append(entry)
    return {"ray_version": ray.__version__, "nodes": nodes,
            "gpus": sum(n["gpus"] for n in nodes if n["alive"]), "actors": listed}


def _down(ray: Any) -> dict[str, Any]:
    killed = []
    for name in _named_actors(ray):
        with contextlib.suppress(ValueError):  # gone meanwhile
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            killed.append(name)
    return {"killed": killed}
