"""`cluster up / status / down` end to end: two real sshd "hosts" and a real Ray cluster, all
inside one network namespace with only `lo` (Ray binds and talks on 127.0.0.1 only), fake
GPUs from the nvidia-smi stand-in (NVSMI_COUNT) and `ray start --num-gpus`.

One cluster start per test module (each costs ~10 s): up, status, the token's safety, a
client without the token refused, up again (idempotent), down (nothing left but sshd).
Everything started in the namespace is killed by pid at teardown, never by `ray stop`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TESTS, profile_for, write_hosts_file
from faults.netns import network_namespace
from payload_util import write_audio
from sshd import free_port, start_sshd

from remote_sep.profiles import load_hosts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

# The hosts' `python:`: this one (the `test` extra has ray[default]), else a venv beside.
RAY_PYTHON = "/work/main/.venv/bin/python"
CLI = [sys.executable, "-c", "from remote_sep.cli.main import main; main()"]
STANDINS = TESTS / "standins"


def _ray_python() -> str:
    for candidate in (sys.executable, RAY_PYTHON):
        done = subprocess.run([candidate, "-c", "import ray"], capture_output=True)
        if done.returncode == 0:
            return candidate
    pytest.skip("no interpreter with ray here (pip install 'ray[default]==2.60.0')")


class World:
    def __init__(self, root: Path, ns, servers, ray_tmp: dict[str, Path], python: str):
        self.root, self.ns, self.servers, self.ray_tmp = root, ns, servers, ray_tmp
        self.python = python
        self.port = free_port()
        self.hosts = write_hosts_file(root / "hosts.yaml", {
            name: profile_for(server, root / f"remote-{name}", python=python,
                              path_prepend=[str(STANDINS / "bin")],
                              env={"PYTHONPATH": str(STANDINS), "NVSMI_COUNT": "1",
                                   "RAY_TMPDIR": str(ray_tmp[name])})
            for name, server in servers.items()})
        self.env = {**os.environ, "REMOTE_SEP_HOSTS": str(self.hosts),
                    "REMOTE_SEP_STATE_DIR": str(root / "state"), "HOME": str(root / "home")}
        (root / "home").mkdir()
        self.outputs: list[str] = []
        self.timings: list[str] = []  # printed by the last test (figures, not asserted)

    def cli(self, *args: str, timeout: float = 240) -> tuple[int, dict]:
        started = time.monotonic()
        done = subprocess.run(self.ns.argv([*CLI, *args, "--json"]), env=self.env,
                              cwd=self.root, capture_output=True, text=True, timeout=timeout)
        self.outputs += [done.stdout, done.stderr]
        self.timings.append(f"{' '.join(args[:2])}: {time.monotonic() - started:.1f} s")
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        assert lines, f"exit {done.returncode}: {done.stdout}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, json.loads(lines[-1])

    def token_file(self, name: str) -> Path:
        return self.root / f"remote-{name}" / "ray" / "auth_token"

    def sshd_pids(self) -> set[int]:
        pids = set()
        for server in self.servers.values():
            pids.add(server.pid)
            pids.update(server.session_pids())
        return pids

    def others(self) -> dict[int, str]:
        """Every process in the namespace but the sshd servers: pid -> command line."""
        found = {}
        for pid in set(self.ns.pids()) - self.sshd_pids():
            try:
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") \
                    .decode(errors="replace")
            except OSError:
                continue
        return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    python = _ray_python()
    root = tmp_path_factory.mktemp("cluster")
    with network_namespace("rsc") as ns:
        servers = {name: ns.run_inside(lambda n=name: start_sshd(root / f"sshd-{n}"))
                   for name in ("gpu-a", "gpu-b")}
        # A short Ray temp dir per host (unix socket paths are limited to 107 bytes), apart
        # from every other Ray on this machine.
        ray_tmp = {}
        for name in servers:
            ray_tmp[name] = Path(f"/tmp/rsc-{os.getpid()}-{name[-1]}")
            ray_tmp[name].mkdir(exist_ok=True)
        try:
            yield World(root, ns, servers, ray_tmp, python)
        finally:
            for server in servers.values():
                server.stop()
    for folder in ray_tmp.values():  # after the namespace's processes are gone
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_up(world):
    rc, body = world.cli("cluster", "up", "lab", "--head", "gpu-a", "--workers", "gpu-b",
                         "--port", str(world.port), "--no-bootstrap")
    assert rc == 0, body
    return body


def test_up_starts_two_nodes_with_their_gpus_and_writes_the_profile(world, cluster_up):
    result = cluster_up["result"]
    assert result["hosts"] == {"gpu-a": {"gpus": 1, "kept": False},
                               "gpu-b": {"gpus": 1, "kept": False}}
    rc, body = world.cli("cluster", "status", "lab")
    assert rc == 0, body
    status = body["result"]
    alive = [n for n in status["nodes"] if n["alive"]]
    assert len(alive) == 2 and status["gpus"] == 2, status
    assert status["ray_version"] == result["ray_version"]
    # the profile: the head's SSH fields, ray: auto, the workers for `cluster down`
    loaded = load_hosts(world.hosts)
    lab, head = loaded["lab"], loaded["gpu-a"]
    assert (lab.ray, lab.ray_workers) == ("auto", ["gpu-b"])
    differ = {"name", "ray", "ray_workers", "source_line"}
    assert {k: v for k, v in vars(lab).items() if k not in differ} == \
        {k: v for k, v in vars(head).items() if k not in differ}


def test_the_token_is_0600_on_each_host_and_in_no_argv_or_log(world, cluster_up):
    tokens = {world.token_file(n).read_text().strip() for n in world.servers}
    assert len(tokens) == 1
    token = tokens.pop()
    assert len(token) == 64
    for name in world.servers:
        assert stat.S_IMODE(world.token_file(name).stat().st_mode) == 0o600
    assert any("raylet" in argv for argv in world.others().values())  # Ray runs in there
    assert_token_nowhere(world, token)


def assert_token_nowhere(world: World, token: str) -> None:
    """Not in the argv of any process in the namespace, any file but the token files (Ray's
    logs, start.log, job logs, sshd logs, remote-sep's state), any command's output."""
    assert not [argv for argv in world.others().values() if token in argv]
    logs = [p for folder in (world.root, *world.ray_tmp.values())
            for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink()
            and p.name != "auth_token" and p.stat().st_size < 50 << 20]
    assert any(p.name == "start.log" for p in logs)
    assert not [p for p in logs if token.encode() in p.read_bytes()]
    assert not [out for out in world.outputs if token in out]


def test_a_client_without_the_token_is_refused(world, cluster_up):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(world.root / "home")  # no ~/.ray/auth_token either
    probe = ("import ray, sys\n"
             f"try:\n    ray.init(address='127.0.0.1:{world.port}', logging_level='ERROR')\n"
             "except ConnectionError as exc:\n    print('refused:', exc); sys.exit(3)\n"
             "print('connected')\n")
    done = subprocess.run(world.ns.argv([world.python, "-c", probe]), env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "refused" in done.stdout, done.stdout + done.stderr[-2000:]
    # ... and with it, the same client gets in (the refusal was the token's doing)
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(world.token_file("gpu-a")))
    done = subprocess.run(world.ns.argv([world.python, "-c", probe]), env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "connected" in done.stdout, done.stderr[-2000:]


def test_up_again_leaves_every_node_alone(world, cluster_up):
    before = world.token_file("gpu-a").read_text()
    pids = set(world.others())
    rc, body = world.cli("cluster", "up", "lab", "--head", "gpu-a", "--workers", "gpu-b",
                         "--port", str(world.port), "--no-bootstrap")
    assert rc == 0, body
    assert body["result"]["hosts"] == {"gpu-a": {"gpus": 1, "kept": True},
                                       "gpu-b": {"gpus": 1, "kept": True}}
    assert world.token_file("gpu-a").read_text() == before
    raylets = {p for p, argv in world.others().items() if "raylet/raylet" in argv}
    assert len(raylets) == 2 and raylets <= pids  # the same two nodes, none restarted
    assert body["result"]["status"]["gpus"] == 2


def test_a_job_on_the_cluster_profile_runs_on_its_gpu_actors(world, cluster_up):
    """The profile `cluster up` wrote is usable as it is: `separate --host lab` runs the
    driver on the head with the token `cluster up` placed, on the cluster's GPU actors."""
    audio = write_audio(world.root / "mix.wav", seconds=4.0, rate=16000)
    rc, body = world.cli("separate", str(audio), "--desc", "whistle", "--host", "lab",
                         "--out", str(world.root / "out" / "mix"))
    assert rc == 0, body
    outputs = body["result"]["outputs"]
    assert len(outputs) == 1 and Path(outputs[0]["target"]).is_file()
    job = world.root / "remote-gpu-a" / "jobs" / body["result"]["job_id"]
    hello = next(json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()
                 if '"hello"' in line)
    assert hello["device"] == "ray" and hello["ray"]["gpus"] == 2, hello
    rc, body = world.cli("cluster", "status", "lab")
    assert rc == 0 and body["result"]["actors"], body  # the GPU actors, kept warm
    assert_token_nowhere(world, world.token_file("gpu-a").read_text().strip())


def test_down_stops_every_ray_process_and_removes_the_token(world, cluster_up):
    rc, body = world.cli("cluster", "down", "lab")
    assert rc == 0, body
    assert body["result"]["stopped"] == ["lab", "gpu-b"]
    deadline = time.monotonic() + 30
    while world.others() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert world.others() == {}
    assert not any(world.token_file(n).exists() for n in world.servers)
    rc, body = world.cli("cluster", "status", "lab")
    assert (rc, body["error"]["kind"]) == (21, "cluster"), body
    print("\ncluster commands, 2 nodes:", "; ".join(world.timings))


def test_down_reports_a_host_it_cannot_reach_and_stops_the_others(world, cluster_up):
    """After the cluster is down: a cluster profile whose head is gone (nothing listens)."""
    import yaml

    data = yaml.safe_load(world.hosts.read_text())
    gone = {**data["hosts"]["gpu-a"], "port": free_port(), "connect_timeout": 3,
            "ray": "auto", "ray_workers": ["gpu-b"]}
    data["hosts"]["gone-lab"] = gone
    world.hosts.write_text(yaml.safe_dump(data, sort_keys=False))
    rc, body = world.cli("cluster", "down", "gone-lab")
    assert (rc, body["error"]["kind"]) == (6, "unreachable"), body
    assert "gone-lab" in body["error"]["message"]
    assert body["error"]["stopped"] == ["gpu-b"] and list(body["error"]["failed"]) == ["gone-lab"]


def test_a_failing_ray_start_is_one_cluster_error_with_its_output(world, cluster_up):
    """After the cluster is down: a port inside Ray's worker port range (10002-19999) makes
    `ray start --head` fail at once; its own words are in the message."""
    rc, body = world.cli("cluster", "up", "bad", "--head", "gpu-a", "--port", "15000",
                         "--no-bootstrap")
    assert (rc, body["error"]["kind"]) == (21, "cluster"), body
    message = body["error"]["message"]
    assert message.startswith("gpu-a: `ray start` as head failed (exit 1):"), message
    assert "15000" in message and "\x1b[" not in message
    assert "bad" not in load_hosts(world.hosts)  # no profile for a cluster that did not start
