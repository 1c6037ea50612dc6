"""The Ray lab itself (tests/ray_lab.py): a real two-node cluster in a network namespace,
token auth enforced, a killed node seen dead, nothing left running afterwards."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from payload_util import standin_env
from ray_lab import ray_cluster

NODE_DEAD_S = 60  # Ray declares a lost node dead after ~15-30 s
REFUSAL_S = 120  # a client without the token gives up after ~20 s

NODES_ALIVE = """
import json, ray
ray.init(address=ADDRESS, logging_level="ERROR", log_to_driver=False)
print("NODES=" + json.dumps(sorted(n["Alive"] for n in ray.nodes())))
"""

REFUSED = """
import ray
try:
    ray.init(address=ADDRESS, logging_level="ERROR", log_to_driver=False)
except ConnectionError as exc:
    print("REFUSED:", exc)
else:
    print("CONNECTED")
"""


def _nodes_alive(lab) -> list[bool]:
    done = lab.python(NODES_ALIVE.replace("ADDRESS", repr(lab.address)))
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("NODES=")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[0][len("NODES="):])


def test_lab_cluster_token_node_death_and_teardown(tmp_path: Path):
    with ray_cluster(gpus=[1, 1], env=standin_env(), tmp=tmp_path) as lab:
        assert lab.address.startswith("127.0.0.1:")
        assert os.stat(lab.token_file).st_mode & 0o777 == 0o600
        assert len(lab.nodes) == 2 and all(n.pids for n in lab.nodes)
        assert not set(lab.nodes[0].pids) & set(lab.nodes[1].pids)

        # a client with the token sees both nodes' fake GPUs
        assert lab.cluster_resources().get("GPU") == 2.0

        # without the token (none in the env, no ~/.ray/auth_token): refused
        refused = lab.python(REFUSED.replace("ADDRESS", repr(lab.address)),
                             env=lab.env(token=False), timeout=REFUSAL_S)
        assert "REFUSED: Failed to connect to Ray cluster" in refused.stdout, refused.stderr
        # and with a wrong token
        wrong = tmp_path / "wrong_token"
        wrong.write_text("0" * 64)
        refused = lab.python(REFUSED.replace("ADDRESS", repr(lab.address)),
                             env=lab.env(RAY_AUTH_TOKEN_PATH=str(wrong)), timeout=REFUSAL_S)
        assert "REFUSED: Failed to connect to Ray cluster" in refused.stdout, refused.stderr

        # the worker node dies like a machine: Ray marks it dead, the head lives on
        killed = lab.kill_node(1)
        assert lab.nodes[1].raylet_pid in killed
        assert not lab.node_pids(1) and lab.node_pids(0)
        deadline = time.monotonic() + NODE_DEAD_S
        while (alive := _nodes_alive(lab)) != [False, True]:
            assert time.monotonic() < deadline, f"nodes alive: {alive}"
            time.sleep(2)
        every_pid = set(lab.pids()) | {p for n in lab.nodes for p in n.pids}

    # teardown killed all of it, by pid
    left = [pid for pid in every_pid if Path(f"/proc/{pid}").exists()
            and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]]
    assert not left, f"left running: {left}"


def test_actor_pids_names_our_actors(tmp_path: Path):
    code = """
import os, ray, time
ray.init(address=ADDRESS, namespace="remote-sep", logging_level="ERROR", log_to_driver=False)
@ray.remote(num_gpus=1, num_cpus=0)
class LabProbe:
    def pid(self):
        return os.getpid()
probe = LabProbe.options(name="lab-probe", lifetime="detached").remote()
print("PID=%d" % ray.get(probe.pid.remote()), flush=True)
"""
    with ray_cluster(gpus=[1], env=standin_env()) as lab:
        done = lab.python(code.replace("ADDRESS", repr(lab.address)))
        pids = [int(ln[4:]) for ln in done.stdout.splitlines() if ln.startswith("PID=")]
        assert pids, done.stderr[-3000:]
        assert lab.actor_pids("LabProbe") == pids
        assert lab.actor_pids() == pids  # Ray's own agents and idle workers are not actors
        assert lab.actor_pids(node=0) == pids
