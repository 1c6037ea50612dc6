"""`cluster up / status / down`: a Ray cluster made of hosts.yaml profiles, over SSH only
(the laptop never speaks Ray). No printing: `say(line)` carries progress to the CLI.

up: every host made ready and probed (same Ray and Python minor version everywhere), the
token generated here (secrets.token_hex) and written to each host as P/ray/auth_token
(0600, SFTP), `ray start --head` then `ray start --address` per worker, profile NAME written
(the head's SSH fields + `ray: auto` + `ray_workers:`). Idempotent: a node already up is left
alone and the head's token kept; a new head restarts the workers (their old token is void).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from remote_sep import profiles
from remote_sep.cluster import commands, nodes
from remote_sep.cluster.nodes import Connect, Node
from remote_sep.errors import ClusterError, ConfigError, RemoteSepError
from remote_sep.hosts.profile import HostProfile
from remote_sep.profiles.load import hosts_path, read_hosts_file
from remote_sep.provision.auto import ReadyOptions

Say = Callable[[str], None]
HostsFile = str | os.PathLike[str] | None


def _quiet(line: str) -> None:
    pass


def _member_profiles(head: str, workers: list[str], hosts_file: HostsFile
                     ) -> list[HostProfile]:
    names = [head, *workers]
    if len(set(names)) != len(names):
        raise ConfigError(f"a host is named twice in --head/--workers: {', '.join(names)}")
    entries = read_hosts_file(hosts_path(hosts_file)).entries
    missing = [n for n in names if n not in entries]
    if missing:
        raise ConfigError(f"not a hosts.yaml profile: {', '.join(missing)}",
                          hint="add each host first: remote-sep hosts add NAME user@host")
    return [profiles.get_profile(n, hosts_file) for n in names]


def _open_all(members: list[HostProfile], connect: Connect,
              options: ReadyOptions | None) -> list[Node]:
    """Every host at once (each costs a few round trips and a Ray import)."""
    with ThreadPoolExecutor(max_workers=min(8, len(members))) as pool:
        futures = [pool.submit(nodes.open_node, p, connect, options) for p in members]
    opened, problem = [], None
    for future in futures:
        try:
            opened.append(future.result())
        except RemoteSepError as exc:
            problem = problem or exc
    if problem:
        close_all(opened)
        raise problem
    return opened


def close_all(opened: list[Node]) -> None:
    for node in opened:
        node.host.close()


def up(name: str, head: str, workers: list[str], *, connect: Connect,
       port: int = commands.DEFAULT_PORT, head_address: str | None = None,
       options: ReadyOptions | None = None, hosts_file: HostsFile = None,
       say: Say = _quiet) -> dict[str, Any]:
    if name in (head, *workers):
        raise ConfigError(f"the cluster's name {name!r} is one of its hosts; pick another "
                          "(the cluster profile is written under it)")
    members = _member_profiles(head, workers, hosts_file)
    opened = _open_all(members, connect, options)
    try:
        ray_version = commands.check_versions({n.name: n.probe for n in opened})
        kept: set[str] = set()
        head_node, worker_nodes = opened[0], opened[1:]
        for node in opened:
            if node.probe.gpus == 0:
                say(f"{node.name}: no GPU found (nvidia-smi lists none): it joins with 0 GPUs")
        address = head_address or head_node.where.profile.address
        started = _up_head(head_node, port, say)
        if not started:
            kept.add(head_node.name)
        token = nodes.read_token(head_node)
        _each(worker_nodes, lambda node: _up_worker(node, token, address, port,
                                                   restart=started, say=say))
        kept.update(n.name for n in worker_nodes if n.probe.joined(port) and not started)
        cluster = _write_profile(name, head, workers, hosts_file)
        status = nodes.admin(head_node, "status")
    finally:
        close_all(opened)
    return {"cluster": name, "head": head, "workers": workers, "address": f"{address}:{port}",
            "ray_version": ray_version, "hosts_file": cluster.source_file,
            "hosts": {n.name: {"gpus": n.probe.gpus, "kept": n.name in kept} for n in opened},
            "status": status}


def _each(opened: list[Node], act: Callable[[Node], None]) -> None:
    """ACT on every node at once (a worker's `ray start` takes seconds); the first failure
    is raised once all have finished."""
    if not opened:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(opened))) as pool:
        futures = [pool.submit(act, node) for node in opened]
    for future in futures:
        future.result()


def _up_head(node: Node, port: int, say: Say) -> bool:
    """True when the head was (re)started; False when it already ran with its token."""
    if node.probe.joined(port) and node.probe.token_present:
        say(f"{node.name}: head already running: left alone, its token kept")
        return False
    if node.probe.running:  # without its token file, or on another port: start anew
        say(f"{node.name}: stopping its Ray node (it runs for {node.probe.gcs}, or lost its "
            "token)")
        nodes.stop(node.host, node.where)
    nodes.write_token(node, secrets.token_hex(32))
    say(f"{node.name}: starting the head ({node.probe.gpus} GPU(s), port {port})")
    nodes.start(node, head_address=None, port=port)
    return True


def _up_worker(node: Node, token: str, address: str, port: int, *, restart: bool,
               say: Say) -> None:
    if node.probe.joined(port) and not restart:
        say(f"{node.name}: already in the cluster: left alone")
        return
    if node.probe.running:  # the head's previous run (its token is void), or another port
        nodes.stop(node.host, node.where)
    nodes.write_token(node, token)
    say(f"{node.name}: joining {address}:{port} ({node.probe.gpus} GPU(s))")
    nodes.start(node, head_address=address, port=port)


def _write_profile(name: str, head: str, workers: list[str], hosts_file: HostsFile
                   ) -> HostProfile:
    """Profile NAME: the head's hosts.yaml fields as written, `ray: auto`, `ray_workers`."""
    entry = read_hosts_file(hosts_path(hosts_file)).entries[head]
    values = {k: v for k, v in entry.values.items() if k not in ("ray", "ray_workers")}
    values.update({"ray": "auto", "ray_workers": list(workers)})
    return profiles.write_entry(name, values, hosts_file)


def _cluster_profile(name: str, hosts_file: HostsFile) -> HostProfile:
    profile = profiles.get_profile(name, hosts_file)
    if not profile.ray:
        raise ConfigError(f"{name} is not a cluster profile (it has no `ray:` field)",
                          hint=f"make one: remote-sep cluster up {name} --head HOST "
                               "--workers HOST,…")
    return profile


def status(name: str, *, connect: Connect, hosts_file: HostsFile = None) -> dict[str, Any]:
    """The payload's `ray status` on the head: nodes, GPUs, actors."""
    profile = _cluster_profile(name, hosts_file)
    node = nodes.open_node(profile, connect)
    try:
        answer = nodes.admin(node, "status")
    finally:
        node.host.close()
    return {"cluster": name, **answer}


def down(name: str, *, connect: Connect, hosts_file: HostsFile = None,
         say: Say = _quiet) -> dict[str, Any]:
    """Actors killed (the payload's `ray down`), then each worker's node stopped, then the
    head's, and the token removed. A host that cannot be reached is reported; the others
    are still stopped; the first failure's kind is the exit code."""
    profile = _cluster_profile(name, hosts_file)
    members = [profile] + [profiles.get_profile(w, hosts_file) for w in profile.ray_workers]
    failed: dict[str, RemoteSepError] = {}
    opened: dict[str, Node] = {}
    for member in members:
        try:
            opened[member.name] = nodes.open_node(member, connect)
        except RemoteSepError as exc:
            failed[member.name] = exc
            say(f"{member.name}: cannot be reached: {exc.message}")
    killed: list[str] = []
    try:
        if profile.name in opened:
            try:
                killed = nodes.admin(opened[profile.name], "down").get("killed", [])
            except ClusterError as exc:  # the cluster is down already: stop what is left
                say(f"{profile.name}: no actors stopped ({exc.message})")
        for member in [*members[1:], members[0]]:  # the head last
            node = opened.get(member.name)
            if node is None:
                continue
            try:
                nodes.stop(node.host, node.where)
                say(f"{member.name}: Ray stopped")
            except RemoteSepError as exc:
                failed[member.name] = exc
                say(f"{member.name}: could not stop Ray: {exc.message}")
    finally:
        close_all(list(opened.values()))
    result = {"cluster": name, "killed": killed,
              "stopped": [m.name for m in members if m.name not in failed],
              "failed": {n: e.message for n, e in failed.items()}}
    if failed:
        first = next(iter(failed.values()))
        error = RemoteSepError(
            f"cluster {name}: not stopped on {', '.join(failed)} "
            f"({'; '.join(f'{n}: {e.message}' for n, e in failed.items())})",
            hint="run `remote-sep cluster down` again once the host is reachable",
            kind=first.kind)
        error.details = result  # type: ignore[attr-defined]
        raise error
    return result
