"""One cluster host over the SSH seam: connected, made ready (bootstrap with the pinned Ray
when allowed, or the profile's own `python`), the payload synced, probed (versions, GPUs,
its node running), its token written, its Ray node started or stopped."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from remote_sep.cluster import commands
from remote_sep.cluster.commands import Probe, Where
from remote_sep.errors import ClusterError
from remote_sep.hosts.base import RemoteCommandError
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs import layout
from remote_sep.jobs.payload_sync import payload_dir, payload_hash, sync_payload
from remote_sep.provision.auto import ReadyOptions, prepare_ready

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # `ray start` colours its output even in a log
Connect = Callable[[HostProfile], Any]  # remote_sep.ssh.host.connect (the one SSH seam)


@dataclass
class Node:
    where: Where
    host: Any
    probe: Probe

    @property
    def name(self) -> str:
        return self.where.profile.name


def open_node(profile: HostProfile, connect: Connect,
              options: ReadyOptions | None = None) -> Node:
    """Connect, make ready, sync the payload, probe: three or four round trips on a ready
    host. The bootstrap (when the host needs one and `options` allow it) installs the
    pinned Ray: the profile is taken as a cluster's (`ray` set) for its plan."""
    as_member = dataclasses.replace(profile, ray=profile.ray or "auto")
    host = connect(as_member)
    try:
        ready = prepare_ready(lambda: host, as_member, options or ReadyOptions(),
                              lambda: layout.prepare(host, as_member, payload_hash(), None))
        if not ready.payload_present:
            sync_payload(host, ready.base)
        where = Where(profile, ready.base, ready.python, payload_dir(ready.base))
        probe = commands.parse_probe(_text(host.run(commands.probe_script(where)).stdout))
    except BaseException:
        host.close()
        raise
    return Node(where, host, probe)


def write_token(node: Node, token: str) -> None:
    """The cluster's token as P/ray/auth_token, mode 0600, over SFTP (never a command line)."""
    node.host.mkdirs(node.where.ray_dir, mode=0o700)
    node.host.write_bytes(node.where.token, token.encode(), mode=0o600)


def read_token(node: Node) -> str:
    return node.host.read_bytes(node.where.token).decode().strip()


def start(node: Node, *, head_address: str | None, port: int) -> None:
    """`ray start` on this host (head when head_address is None); its output's tail in
    the ClusterError when it fails or does not return within START_TIMEOUT_S."""
    argv = commands.start_argv(node.where, head_address=head_address, port=port,
                               gpus=node.probe.gpus)
    role = "head" if head_address is None else f"worker (joining {head_address}:{port})"
    try:
        result = node.host.run(commands.start_script(node.where, argv), check=False,
                               timeout=commands.START_TIMEOUT_S)
    except RemoteCommandError as exc:  # the timeout
        raise ClusterError(f"{node.name}: `ray start` as {role} did not finish within "
                           f"{commands.START_TIMEOUT_S:g} s",
                           hint=f"its log: {node.where.ray_dir}/start.log on {node.name}") \
            from exc
    if result.exit_code != 0:
        tail = ANSI.sub("", _text(result.stdout)).strip()[-commands.TAIL_CHARS:]
        raise ClusterError(f"{node.name}: `ray start` as {role} failed "
                           f"(exit {result.exit_code}): {tail}",
                           hint="is the port free, and the head reachable from this host?")


def stop(node_host: Any, where: Where) -> None:
    node_host.run(commands.stop_script(where), timeout=60)


def admin(node: Node, action: str) -> dict:
    """The payload's `ray status|down` on this (head) host: its JSON answer."""
    result = node.host.run(commands.admin_script(node.where, action), check=False,
                           timeout=120)
    return commands.parse_admin(_text(result.stdout) + "\n" + _text(result.stderr))


def _text(out: str | bytes) -> str:
    return out.decode("utf-8", errors="replace") if isinstance(out, bytes) else out
