"""`remote-sep cluster up / status / down`: a Ray cluster on hosts.yaml profiles (thin
commands over remote_sep/cluster/ops.py; docs/ray.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from remote_sep.cli.common import (
    HostsOption,
    JsonOption,
    YesOption,
    err_console,
    out_console,
    run_command,
)
from remote_sep.errors import ConfigError

cluster_app = typer.Typer(
    name="cluster",
    help="A Ray cluster made of your SSH hosts: up, status, down.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The cluster profile's name in hosts.yaml.")]


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")


def _say(as_json: bool):
    def say(line: str) -> None:
        if not as_json:
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    return say


@cluster_app.command("up")
def up(
    name: NameArg,
    head: Annotated[str, typer.Option("--head", help="The head node's host profile.")],
    workers: Annotated[str, typer.Option(
        "--workers", help="Worker host profiles, comma-separated (may be empty: '').")] = "",
    port: Annotated[int, typer.Option("--port", help="The head's Ray (GCS) port.")] = 6379,
    head_address: Annotated[str | None, typer.Option(
        "--head-address", help="The address workers reach the head at (default: the head "
        "profile's host).")] = None,
    no_bootstrap: Annotated[bool, typer.Option(
        "--no-bootstrap", help="Never bootstrap a host; one that is not ready fails.")] = False,
    yes: YesOption = False,
    hosts: HostsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start Ray on HEAD and WORKERS (token auth on) and write profile NAME for them."""

    def action() -> dict[str, Any]:
        from remote_sep.cluster import ops
        from remote_sep.ssh.host import connect  # the SSH stack only when a command runs

        if not 1 <= port <= 65535:
            raise ConfigError(f"--port {port} is not a port number (1-65535)")
        names = [w.strip() for w in workers.split(",") if w.strip()]
        options = None
        if not no_bootstrap:
            from remote_sep.cli.ready import ready_options

            def say_host(host: str, line: str) -> None:
                _say(as_json)(f"{host}: {line}")

            options = ready_options(yes=yes, pause=_no_pause, say=say_host)
        result = ops.up(name, head, names, connect=connect, port=port,
                        head_address=head_address, options=options, hosts_file=hosts,
                        say=_say(as_json))
        if not as_json:
            _show_status(result["status"])
            err_console.print(f"cluster {escape(name)} is up at {escape(result['address'])}; "
                              f"profile written to {escape(str(result['hosts_file']))}")
            err_console.print(f"next: remote-sep batch … --hosts {name}", markup=False)
        return result

    run_command("cluster up", as_json, action)


def _no_pause():
    import contextlib

    return contextlib.nullcontext()


@cluster_app.command("status")
def status(name: NameArg, hosts: HostsOption = None, as_json: JsonOption = False) -> None:
    """Nodes (alive, GPUs) and remote-sep's GPU actors on cluster NAME."""

    def action() -> dict[str, Any]:
        from remote_sep.cluster import ops
        from remote_sep.ssh.host import connect

        result = ops.status(name, connect=connect, hosts_file=hosts)
        if not as_json:
            _show_status(result)
        return result

    run_command("cluster status", as_json, action)


@cluster_app.command("down")
def down(name: NameArg, hosts: HostsOption = None, as_json: JsonOption = False) -> None:
    """Stop remote-sep's actors, then this cluster's Ray processes on every host."""

    def action() -> dict[str, Any]:
        from remote_sep.cluster import ops
        from remote_sep.ssh.host import connect

        result = ops.down(name, connect=connect, hosts_file=hosts, say=_say(as_json))
        if not as_json:
            err_console.print(f"cluster {escape(name)} is down ({len(result['killed'])} "
                              f"actor(s) stopped)")
        return result

    run_command("cluster down", as_json, action)


def _show_status(status: dict[str, Any]) -> None:
    nodes = Table("node", "address", "alive", "GPUs", "CPUs", title="nodes")
    for node in status.get("nodes", []):
        nodes.add_row(str(node.get("node_id", ""))[:12], str(node.get("address")),
                      "yes" if node.get("alive") else "no", f"{node.get('gpus', 0):g}",
                      f"{node.get('cpus', 0):g}")
    out_console.print(nodes)
    out_console.print(f"Ray {status.get('ray_version')}: {status.get('gpus', 0):g} GPU(s) "
                      "on live nodes", markup=False)
    actors = status.get("actors", [])
    if not actors:
        out_console.print("no GPU actors (none started yet)", markup=False)
        return
    table = Table("actor", "node", "state", "model", "calls", title="GPU actors")
    for actor in actors:
        model = str(actor.get("model") or "-")
        if actor.get("model"):
            model += " (loaded)" if actor.get("loaded") else " (not loaded)"
        table.add_row(str(actor.get("name")), str(actor.get("node_id") or "")[:12],
                      str(actor.get("state")), model,
                      str(actor.get("calls", actor.get("items", 0))))
    out_console.print(table)
