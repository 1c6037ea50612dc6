"""`remote-sep hosts …`: add, list, show, check and trust host profiles (thin commands)."""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Annotated, Any

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
from remote_sep.errors import HostKeyError
from remote_sep.hosts.profile import HostProfile

if TYPE_CHECKING:  # the SSH stack loads only when a command needs it
    from remote_sep.ssh.trust import TrustQuestion

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
    name: NameArg, hosts: HostsOption = None, yes: YesOption = False,
    replace: Annotated[bool, typer.Option("--replace", help=(
        "Replace a key that CHANGED (only with this flag; shown next to the old one)."))
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Fetch NAME's host key, show its fingerprint, and add it to known_hosts once confirmed.
    A key that CHANGED is shown next to the old one and replaced only with --replace."""
    from remote_sep.ssh.trust import trust_host

    def action() -> dict[str, Any]:
        profile = profiles.get_profile(name, hosts)

        def confirm(question: TrustQuestion) -> bool:
            key = question.key
            if question.changed:
                _warn_changed(profile, question)
                if not replace:
                    raise HostKeyError(
                        f"not trusted: the host key of {profile.name} CHANGED; nothing written",
                        hint=f"once the new fingerprint is verified out of band: remote-sep "
                             f"hosts trust {name} --replace")
            else:
                err_console.print(f"{profile.describe()} presents a {key.keytype} key\n"
                                  f"  fingerprint {key.fingerprint}", markup=False)
            if yes:
                return True
            verb = "Replace the old key with it in" if question.changed else "Add it to"
            return _ask(f"{verb} {question.known_hosts}?", name)

        result = trust_host(profile, confirm)
        if not as_json:
            if result["already_trusted"]:
                err_console.print(f"{profile.describe()}: its {result['key_type']} key "
                                  f"{result['fingerprint']} is already trusted; nothing "
                                  "written", markup=False)
            elif result["added"]:
                err_console.print(f"added to {result['known_hosts']}", markup=False)
            else:
                err_console.print("not trusted: nothing written", markup=False)
        return result

    run_command("hosts trust", as_json, action)


def _warn_changed(profile: HostProfile, question: TrustQuestion) -> None:
    """Loud, on stderr, before any question: the host presents another key than before."""
    err_console.print(f"WARNING: the host key of {profile.name} ({profile.describe()}) "
                      "has CHANGED", style="bold red", markup=False)
    for old in question.replaced:
        err_console.print(f"  known_hosts has:  {old.keytype} {old.fingerprint}", markup=False)
    err_console.print(f"  it now presents:  {question.key.keytype} {question.key.fingerprint}\n"
                      "Someone may be intercepting the connection (man-in-the-middle), or the "
                      "host was reinstalled. Check the new fingerprint with its admin (or on "
                      "its console: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) before trusting "
                      "it.", markup=False, soft_wrap=True)


def _ask(question: str, name: str) -> bool:
    """A yes/no on the terminal; with none to ask on, a clear error instead of 'Aborted.'."""
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:
        if sys.stdin.isatty():
            raise KeyboardInterrupt from None  # Ctrl-C at the question
        raise HostKeyError("not trusted: there is no terminal to confirm the key on; "
                           "nothing written",
                           hint=f"check the fingerprint above, then run: remote-sep hosts "
                                f"trust {name} --yes") from None
