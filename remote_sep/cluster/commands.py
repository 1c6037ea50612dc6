"""The pure parts of `cluster up/status/down`: the remote scripts (every value quoted through
hosts/shell.py), what their answers mean, the version check. No I/O.

Every script exports the host's profile environment (profile.env, path_prepend, HF_HOME and
the payload on PYTHONPATH: Ray's actors inherit the raylet's environment) plus
RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH=P/ray/auth_token: a path, never the token.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass

from remote_sep.cluster.node_script import NODE_SNIPPET
from remote_sep.errors import ClusterError
from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.shell import export_lines, quote, quote_argv
from remote_sep.jobs.layout import payload_env, ray_token_path

DEFAULT_PORT = 6379  # Ray's own default GCS port
START_TIMEOUT_S = 120.0  # a `ray start` that has not returned by then is a failure
TAIL_CHARS = 1500  # of `ray start`'s output, in a failure's message
GPU_QUERY = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]


@dataclass(frozen=True)
class Where:
    """One host of the cluster as its scripts need it: resolved base, interpreter, payload."""

    profile: HostProfile
    base: str
    python: str
    payload_dir: str

    @property
    def token(self) -> str:
        return ray_token_path(self.base)

    @property
    def ray_dir(self) -> str:
        return f"{self.base}/ray"


def environment(where: Where) -> list[str]:
    """The export lines every Ray command on this host runs under."""
    env = payload_env(where.profile, where.payload_dir)
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": where.token})
    return export_lines(where.profile.path_prepend, env)


def ray_argv(where: Where, *args: str) -> list[str]:
    """`ray …` run by the profile's interpreter (the one whose Ray was checked)."""
    return [where.python, "-m", "ray.scripts.scripts", *args]


def node_ip(profile: HostProfile) -> str | None:
    """The profile's host when it is an IP literal (Ray binds to it); else Ray chooses."""
    try:
        return str(ipaddress.ip_address(profile.address))
    except ValueError:
        return None


def start_argv(where: Where, *, head_address: str | None, port: int, gpus: int) -> list[str]:
    """`ray start --head …` (head_address None) or `ray start --address HEAD:PORT …`."""
    if head_address is None:
        args = ["start", "--head", "--port", str(port), "--num-gpus", str(gpus),
                "--disable-usage-stats", "--include-dashboard=false"]
    else:
        args = ["start", "--address", f"{head_address}:{port}", "--num-gpus", str(gpus),
                "--disable-usage-stats"]
    ip = node_ip(where.profile)
    if ip:
        args += ["--node-ip-address", ip]
    return ray_argv(where, *args)


def start_script(where: Where, argv: list[str]) -> str:
    """Run `ray start` with its output in P/ray/start.log (the daemons it leaves keep no
    handle on the SSH channel); on failure print the log's tail and exit with its status."""
    log = quote(f"{where.ray_dir}/start.log")
    return "\n".join([
        *environment(where),
        f"mkdir -p {quote(where.ray_dir)}",
        f"setsid -w {quote_argv(argv)} > {log} 2>&1 < /dev/null",
        "rc=$?",
        f'[ "$rc" = 0 ] || tail -c {TAIL_CHARS} {log}',
        'exit "$rc"',
    ]) + "\n"


def probe_script(where: Where) -> str:
    """One round trip: Python and Ray versions, this host's node running, the token there,
    one `gpu=` line per GPU nvidia-smi lists."""
    py = quote(where.python)
    version = quote("import sys; print('%d.%d' % sys.version_info[:2])")
    ray = quote("import ray; print(ray.__version__)")
    node = quote_argv([where.python, "-c", NODE_SNIPPET, "probe", where.token])
    return "\n".join([
        *environment(where),
        f'printf "python=%s\\n" "$({py} -c {version} 2>/dev/null | tail -n 1)"',
        f'printf "ray=%s\\n" "$({py} -c {ray} 2>/dev/null | tail -n 1)"',
        f'printf "node=%s\\n" "$({node} 2>/dev/null | tail -n 1)"',
        f"[ -s {quote(where.token)} ] && echo token=1",
        f"{quote_argv(GPU_QUERY)} 2>/dev/null | sed 's/^/gpu=/'",
        "exit 0",
    ]) + "\n"


@dataclass(frozen=True)
class Probe:
    python_version: str | None
    ray_version: str | None
    running: bool  # this host's Ray node (started with its token file) is up
    token_present: bool
    gpus: int
    gcs: str | None = None  # the GCS address that node belongs to (HOST:PORT)

    def joined(self, port: int) -> bool:
        """Its node runs and belongs to a cluster on PORT."""
        return self.running and (self.gcs or "").rpartition(":")[2] == str(port)


def parse_probe(text: str) -> Probe:
    values: dict[str, str] = {}
    gpus = 0
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "gpu":
            gpus += bool(value.strip())
        else:
            values[key] = value.strip()
    try:
        node = json.loads(values.get("node") or "{}")
    except json.JSONDecodeError:
        node = {}
    return Probe(values.get("python") or None, values.get("ray") or None,
                 bool(node.get("running")), values.get("token") == "1", gpus,
                 node.get("gcs") or None)


def check_versions(probes: Mapping[str, Probe]) -> str:
    """The one Ray version every host has, else ClusterError naming hosts and versions
    (nodes of different Ray or Python minor versions fail silently in Ray)."""
    missing = [name for name, probe in probes.items() if not probe.ray_version]
    if missing:
        raise ClusterError(
            f"ray does not import on {', '.join(missing)}",
            hint="drop `python:` from the profile so bootstrap installs the pinned ray, or "
                 "install ray[default] (the version of the other hosts) into that python")
    pairs = {name: (probe.ray_version, probe.python_version) for name, probe in probes.items()}
    if len(set(pairs.values())) > 1:
        listed = ", ".join(f"{name}: ray {ray} on Python {py}"
                           for name, (ray, py) in pairs.items())
        raise ClusterError(f"the hosts' Ray or Python versions differ ({listed})",
                           hint="every node needs the same ray and the same Python minor "
                                "version; bootstrap installs the same pinned ray everywhere")
    return next(iter(pairs.values()))[0] or ""


def stop_script(where: Where) -> str:
    """Stop this host's node of the cluster (node_script.py: only its own processes) and
    remove the token."""
    node = quote_argv([where.python, "-c", NODE_SNIPPET, "stop", where.token])
    return "\n".join([
        *environment(where),
        f"{node} || exit $?",
        f"rm -f {quote(where.token)}",
        "exit 0",
    ]) + "\n"


def admin_argv(where: Where, action: str) -> list[str]:
    """`python -m remote_payload ray ACTION --address auto` on the head (the payload synced)."""
    return [where.python, "-m", "remote_payload", "ray", action, "--address", "auto",
            "--ray-token-file", where.token]


def admin_script(where: Where, action: str) -> str:
    return "\n".join([*environment(where), quote_argv(admin_argv(where, action))]) + "\n"


def parse_admin(text: str) -> dict:
    """The admin's last JSON line; a cluster it could not reach -> ClusterError."""
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if not lines:
        raise ClusterError("the head answered no status (is the payload's Ray mode there?)",
                           hint=text.strip()[-TAIL_CHARS:] or None)
    answer = json.loads(lines[-1])
    if answer.get("error"):
        raise ClusterError(str(answer.get("message") or "the Ray cluster cannot be reached"),
                           hint="is it up? `remote-sep cluster up NAME --head … --workers …`")
    return answer
