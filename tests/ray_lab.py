"""A real Ray cluster for tests and benches: a head and worker nodes started with `ray start`
on this machine, inside a network namespace with only `lo` (so Ray binds 127.0.0.1 only and
nothing reaches another machine), token auth on, fake GPUs (`--num-gpus N`).

    with ray_cluster(gpus=[1, 1], env=standin_env()) as lab:   # head + 1 worker node
        lab.address                  # "127.0.0.1:PORT"
        lab.token_file               # the token, mode 0600 (never on argv)
        lab.env()                    # env for a client/driver: the env given + token auth
        lab.run([python, "-c", ...]) # subprocess.run inside the namespace with lab.env()
        lab.popen([...])
        lab.ns                       # the Netns (start sshd inside with lab.ns.run_inside)
        lab.nodes                    # [Node(index, raylet_pid, sid, pids)]: 0 is the head
        lab.kill_node(1)             # SIGKILL every process of node 1: a machine that died
        lab.actor_pids("SepActor")   # processes running actors (their `ray::` titles)

The env given is the env of `ray start`, so every worker and actor inherits it (PYTHONPATH
with the repo and tests/standins, SAM_STANDIN_* knobs).

Each `ray start` runs in a session of its own (setsid): every process it leaves (gcs_server,
raylet, agents) and every worker its raylet forks later carries that session id, which is how
a node's processes are told apart on one machine. Teardown kills everything in the namespace
by pid (never `ray stop`: other engineers run clusters on this machine) and fails if anything
of the lab is left.

Skips (pytest.skip, with the reason) without root, `ip`/`nft` or an importable ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from faults.netns import Netns, network_namespace

# A node's `ray start` measured 4-7 s alone; the 2 shared cores can make it much slower.
START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 180
KILL_TIMEOUT_S = 10
# AF_UNIX paths are limited to 107 bytes and Ray puts its sockets at
# TEMP/session_<date>_<time>_<us>_<pid>/sockets/plasma_store (~70 bytes past TEMP).
MAX_RAY_TEMP_LEN = 36
# Titles of Ray's own processes that are not actors of ours.
RAY_INTERNAL_TITLES = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent",
                       "ray::JobSupervisor", "ray::_StatsActor")
RAY_ENV_PREFIXES = ("RAY_AUTH_", "RAY_ADDRESS")


@dataclass
class Node:
    index: int  # 0: the head
    raylet_pid: int
    sid: int  # the session id every process of this node carries
    pids: list[int] = field(default_factory=list)  # what its `ray start` left


def _session_id(pid: int) -> int | None:
    """The session id of live process PID (None: gone, or a zombie, which holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after "(comm)": state ppid pgrp session ...
    state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
    return None if state in ("Z", "X") else int(session)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _write_secret(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def _free_port_inside(ns: Netns) -> int:
    """A port free in the namespace, outside Ray's worker-port range (10002-19999)."""
    def pick() -> int:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port >= 20000:
                return port
    return ns.run_inside(pick)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class RayLab:
    """A running lab cluster (see the module doc)."""

    def __init__(self, ns: Netns, work: Path, ray_temp: Path, base_env: dict[str, str]):
        self.ns = ns
        self.work = work
        self.ray_temp = ray_temp
        self.token_file = _write_secret(work / "auth_token", secrets.token_hex(32))
        self._base_env = base_env
        self.port = _free_port_inside(ns)
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[Node] = []
        self._seen: set[int] = set()  # every pid of the lab ever seen (teardown checks them)

    # -- environment and processes inside the namespace -------------------------------
    def env(self, token: bool = True, **extra: str) -> dict[str, str]:
        """The env given to the lab plus token auth (token=False: a client without it)."""
        env = dict(self._base_env)
        if token:
            env["RAY_AUTH_MODE"] = "token"
            env["RAY_AUTH_TOKEN_PATH"] = str(self.token_file)
        else:  # nor the default ~/.ray/auth_token of whoever runs the tests
            env["HOME"] = str(self.work / "no-token-home")
        env.update(extra)
        return env

    def run(self, argv: Sequence[str], env: dict[str, str] | None = None,
            timeout: float = RUN_TIMEOUT_S, **kw) -> subprocess.CompletedProcess:
        """subprocess.run of ARGV inside the namespace (env: lab.env() unless given)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.ns.argv(argv), env=self.env() if env is None else env,
                              timeout=timeout, **kw)

    def popen(self, argv: Sequence[str], env: dict[str, str] | None = None,
              **kw) -> subprocess.Popen:
        """subprocess.Popen of ARGV inside the namespace; teardown kills it if still running."""
        return subprocess.Popen(self.ns.argv(argv), env=self.env() if env is None else env,
                                **kw)

    def python(self, code: str, env: dict[str, str] | None = None,
               timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
        """`python -c CODE` inside the namespace, this interpreter, lab.env()."""
        return self.run([sys.executable, "-c", code], env=env, timeout=timeout)

    def cluster_resources(self) -> dict[str, float]:
        """ray.cluster_resources() as a client with the token sees it."""
        done = self.python(
            "import json, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            "print('RESOURCES=' + json.dumps(ray.cluster_resources()))\n")
        for line in done.stdout.splitlines():
            if line.startswith("RESOURCES="):
                return json.loads(line[len("RESOURCES="):])
        raise RuntimeError(f"cluster_resources failed (rc {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")

    def pids(self) -> list[int]:
        """Every process in the namespace now (the lab's nodes and what ran inside)."""
        pids = self.ns.pids()
        self._seen.update(pids)
        return pids

    def node_pids(self, index: int) -> list[int]:
        """The processes of node INDEX now (its session: raylet, agents, workers, actors)."""
        sid = self.nodes[index].sid
        return [pid for pid in self.pids() if _session_id(pid) == sid]

    def actor_pids(self, name: str | None = None, node: int | None = None) -> list[int]:
        """Pids of processes running actors, by their `ray::Class[.method]` titles: those of
        class NAME (any of ours when None), on node NODE (any when None)."""
        pids = self.node_pids(node) if node is not None else self.pids()
        found = []
        for pid in pids:
            argv = _cmdline(pid)
            title = argv[0] if argv else ""
            if not title.startswith("ray::") or title.startswith(RAY_INTERNAL_TITLES):
                continue
            if name is None or title.split()[0].split(".")[0] == f"ray::{name}":
                found.append(pid)
        return found

    def kill_node(self, index: int) -> list[int]:
        """SIGKILL every process of node INDEX (a machine that died); returns their pids."""
        killed: set[int] = set()
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while pids := self.node_pids(index):
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {index} still has processes {pids}")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.05)
        return sorted(killed)

    # -- starting and stopping -----------------------------------------------------------
    def start_node(self, gpus: int, cpus: int, object_store_mb: int) -> Node:
        index = len(self.nodes)
        head = index == 0
        argv = [sys.executable, "-m", "ray.scripts.scripts", "start",
                "--num-gpus", str(gpus), "--num-cpus", str(cpus),
                "--object-store-memory", str(object_store_mb * 2**20),
                "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
                "--temp-dir", str(self.ray_temp / f"n{index}")]
        if head:
            argv += ["--head", "--port", str(self.port), "--include-dashboard=false"]
        else:
            argv += ["--address", self.address]
        log = self.work / f"node-{index}.log"
        with open(log, "wb") as out:
            # a session of its own: its id marks every process of this node
            starter = subprocess.Popen(self.ns.argv(argv), env=self.env(), stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        try:
            rc = starter.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            starter.kill()
            starter.wait()
            raise RuntimeError(f"`ray start` of node {index} did not finish in "
                               f"{START_TIMEOUT_S} s:\n{_tail(log)}") from None
        if rc != 0:
            raise RuntimeError(f"`ray start` of node {index} failed (rc {rc}):\n{_tail(log)}")
        pids = [pid for pid in self.pids() if _session_id(pid) == starter.pid]
        raylets = [pid for pid in pids if Path((_cmdline(pid) or [""])[0]).name == "raylet"]
        if len(raylets) != 1:
            raise RuntimeError(f"node {index}: expected one raylet among {pids}:\n{_tail(log)}")
        node = Node(index, raylets[0], starter.pid, pids)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        """Kill every process in the namespace by pid; fail if any of the lab survives."""
        self.pids()  # note the last ones
        self.ns.destroy()
        left = [pid for pid in sorted(self._seen) if _session_id(pid) is not None
                and (any(_session_id(pid) == n.sid for n in self.nodes)
                     or any(str(self.ray_temp) in arg for arg in _cmdline(pid)))]
        if left:
            raise RuntimeError(f"ray lab left processes running: {left}")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "a Ray lab needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) not found"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install 'ray[default]')"
    return None


@contextlib.contextmanager
def ray_cluster(gpus: Sequence[int] = (1,), env: dict[str, str] | None = None,
                tmp: Path | None = None, cpus: int = 1,
                object_store_mb: int = 200) -> Iterator[RayLab]:
    """A head (gpus[0] fake GPUs) and one worker node per further entry, in a fresh network
    namespace, each node with CPUS CPUs. TMP (a fresh folder under /tmp when None, removed
    afterwards) holds the token and the nodes' logs. Everything is killed on exit."""
    if reason := _skip_reason():
        pytest.skip(reason)
    base = {k: v for k, v in (os.environ if env is None else env).items()
            if not k.startswith(RAY_ENV_PREFIXES)}
    base["RAY_USAGE_STATS_ENABLED"] = "0"
    made: list[Path] = []
    if tmp is None:
        made.append(Path(tempfile.mkdtemp(prefix="raylab-", dir="/tmp")))
        tmp = made[-1]
    work = Path(tmp)
    work.mkdir(parents=True, exist_ok=True)
    # Ray's sockets live under its temp dir: keep that path short (see MAX_RAY_TEMP_LEN)
    ray_temp = work / "ray"
    if len(str(ray_temp)) > MAX_RAY_TEMP_LEN:
        made.append(Path(tempfile.mkdtemp(prefix="raylab-", dir="/tmp")))
        ray_temp = made[-1]
    ray_temp.mkdir(exist_ok=True)
    try:
        with network_namespace("rlab") as ns:
            lab = RayLab(ns, work, ray_temp, base)
            try:
                for count in gpus:
                    lab.start_node(count, cpus, object_store_mb)
                yield lab
            finally:
                lab.stop()
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
