"""`remote-sep hosts …`: add, list, show, check and trust host profiles (thin commands)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from remote_sep import profiles
from remote_sep.cli.common import (
    HostArg,
    HostsOption,
    JsonOption,
    YesOption,
    err_console,
    offer_to_save,
    out_console,
    run_command,
)
from remote_sep.hosts.profile import HostProfile

hosts_app = typer.Typer(
    name="hosts",
    help="Manage host profiles (hosts.yaml): add, list, show, check, trust.",
    no_args_is_help=True,
)

NameArg = HostArg


def register(app: typer.Typer) -> None:
    app.add_typer(hosts_app, name="hosts")


def profile_dict(profile: HostProfile) -> dict[str, Any]:
    data = dataclasses.asdict(profile)
    data["target"] = profile.describe()
    return data


@hosts_app.command("add")
def add(
    name: NameArg,
    target: Annotated[
        str, typer.Argument(help="user@host[:port] (host may be an ssh_config alias).")
    ],
    key: Annotated[str | None, typer.Option("--key", help="Private key file.")] = None,
    path: Annotated[
        str | None, typer.Option("--path", help="Remote base dir (default ~/remote-sep).")
    ] = None,
    python: Annotated[
        str | None, typer.Option("--python", help="Existing remote interpreter to use.")
    ] = None,
    proxy_jump: Annotated[
        str | None, typer.Option("--proxy-jump", help="Jump host: [user@]host[:port].")
    ] = None,
    hosts: HostsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write host NAME to hosts.yaml (updates it if it exists; other entries are kept)."""

    def action() -> dict[str, Any]:
        profile = profiles.add_host(name, target, key=key, path=path, python=python,
                                    proxy_jump=proxy_jump, hosts_file=hosts)
        if not as_json:
            where = escape(str(profile.source_file))
            err_console.print(f"saved host [bold]{escape(name)}[/] "
                              f"({escape(profile.describe())}) in {where}")
            err_console.print(f"next: remote-sep hosts trust {name}; remote-sep hosts check {name}",
                              markup=False)
        return {"host": profile_dict(profile)}

    run_command("hosts add", as_json, action)


@hosts_app.command("list")
def list_hosts(hosts: HostsOption = None, as_json: JsonOption = False) -> None:
    """List every host profile (hosts.yaml plus the built-in `local`)."""

    def action() -> dict[str, Any]:
        found = profiles.load_hosts(hosts)
        if not as_json:
            table = Table(title=f"hosts ({profiles.hosts_path(hosts)})", title_justify="left")
            for column in ("name", "target", "path", "python"):
                table.add_column(column)
            for profile in found.values():
                table.add_row(profile.name, profile.describe(), profile.path,
                              profile.python or "(bootstrap venv)")
            out_console.print(table)
        return {"hosts_file": str(profiles.hosts_path(hosts)),
                "hosts": [profile_dict(p) for p in found.values()]}

    run_command("hosts list", as_json, action)


@hosts_app.command("show")
def show(name: NameArg, hosts: HostsOption = None, as_json: JsonOption = False) -> None:
    """Show host NAME as resolved (hosts.yaml merged with ssh_config)."""

    def action() -> dict[str, Any]:
        profile = profiles.get_profile(name, hosts)
        data = profile_dict(profile)
        if not as_json:
            for field, value in data.items():
                if value not in (None, [], {}):
                    out_console.print(f"{field:16} {value}", markup=False, soft_wrap=True)
        return {"host": data}

    run_command("hosts show", as_json, action)


@hosts_app.command("check")
def check(name: NameArg, hosts: HostsOption = None, as_json: JsonOption = False) -> None:
    """Connect to NAME and report Python, GPU, free disk and whether it is provisioned."""
    from remote_sep.provision.check import check_host, describe

    def action() -> dict[str, Any]:
        profile = profiles.get_profile(name, hosts)
        report = check_host(profile)
        if not as_json:
            for line in describe(report):
                out_console.print(line, markup=False, soft_wrap=True)
            offer_to_save(profile, hosts)
        return report

    run_command("hosts check", as_json, action)


@hosts_app.command("trust")
def trust(
    name: NameArg, hosts: HostsOption = None, yes: YesOption = False, as_json: JsonOption = False
) -> None:
    """Fetch NAME's host key, show its fingerprint, and add it to known_hosts once confirmed."""
    from remote_sep.ssh.trust import trust_host

    def action() -> dict[str, Any]:
        profile = profiles.get_profile(name, hosts)

        def confirm(key_type: str, fingerprint: str, known_hosts: str) -> bool:
            err_console.print(f"{profile.describe()} presents a {key_type} key\n"
                              f"  fingerprint {fingerprint}", markup=False)
            if yes:
                return True
            return typer.confirm(f"Add it to {known_hosts}?", default=False, err=True)

        result = trust_host(profile, confirm)
        if not as_json:
            if result["added"]:
                err_console.print(f"added to {result['known_hosts']}", markup=False)
            else:
                err_console.print("not trusted: nothing written", markup=False)
        return result

    run_command("hosts trust", as_json, action)
