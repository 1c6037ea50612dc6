"""`remote-sep doctor`: the laptop side in one table, each problem with its fix.

Nothing here touches the network: it reads what a command would read (Python, the SSH
library, ssh-agent, known_hosts, ssh_config, hosts.yaml, the Hugging Face token's source, the
folders remote-sep writes) and says what is wrong before a real command trips on it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from remote_sep.cli.common import HostsOption, JsonOption, out_console, run_command
from remote_sep.errors import ConfigError, RemoteSepError

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_PYTHON = (3, 11)
MIN_PARAMIKO = (3, 5)


@dataclass
class Row:
    check: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_python() -> Row:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MIN_PYTHON:
        return Row("python", FAIL, f"{version} ({sys.executable})",
                   "install Python 3.11 or newer and reinstall remote-sep with it")
    return Row("python", OK, f"{version} ({sys.executable})")


def check_ssh_library() -> Row:
    try:
        paramiko, crypto = metadata.version("paramiko"), metadata.version("cryptography")
    except metadata.PackageNotFoundError as exc:
        return Row("ssh library", FAIL, f"{exc.name} is not installed",
                   "reinstall remote-sep: pip install --force-reinstall .")
    detail = f"paramiko {paramiko}, cryptography {crypto}"
    if _version_tuple(paramiko) < MIN_PARAMIKO:
        return Row("ssh library", FAIL, detail, "pip install 'paramiko>=3.5' (AES-GCM, speed)")
    return Row("ssh library", OK, detail)


def check_agent() -> Row:
    from remote_sep.ssh.agent import agent_keys

    problem, keys = agent_keys()
    files = sorted(p.name for p in Path("~/.ssh").expanduser().glob("id_*")
                   if not p.name.endswith(".pub"))
    where = f"; key files: {', '.join(files)}" if files else "; no ~/.ssh/id_* key files"
    if problem:
        status = WARN if files else FAIL
        return Row("ssh keys", status, problem + where,
                   "eval $(ssh-agent) && ssh-add, or set `key:` per host in hosts.yaml")
    return Row("ssh keys", OK, f"ssh-agent: {len(keys)} key(s) ({', '.join(keys)}){where}")


def check_known_hosts() -> Row:
    from remote_sep.hosts.known_hosts import default_known_hosts

    files = default_known_hosts()
    present = []
    for name in files:
        path = Path(name)
        if not path.exists():
            continue
        try:
            lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
                     if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as exc:
            return Row("known_hosts", FAIL, f"{path}: {exc.strerror}",
                       f"make {path} readable (chmod 600 {path})")
        present.append(f"{path} ({len(lines)} keys)")
    if not present:
        return Row("known_hosts", WARN, f"none of {', '.join(files)} exists",
                   "`remote-sep hosts trust NAME` (or one `ssh HOST`) records a host's key")
    return Row("known_hosts", OK, ", ".join(present))


def check_ssh_config() -> Row:
    from remote_sep.ssh.config import DEFAULT_SSH_CONFIG, SSH_CONFIG_ENV, load_ssh_config

    path = os.path.expanduser(os.environ.get(SSH_CONFIG_ENV) or DEFAULT_SSH_CONFIG)
    try:
        config = load_ssh_config()
    except ConfigError as exc:
        return Row("ssh_config", FAIL, exc.message, f"fix the line in {path} (ssh -G HOST checks)")
    if not Path(path).is_file():
        return Row("ssh_config", OK, f"{path}: none (optional)")
    aliases = sorted(h for h in config.get_hostnames() if not any(c in h for c in "*?!"))
    return Row("ssh_config", OK, f"{path}: {len(aliases)} host alias(es)")


def check_hosts_file(hosts: Path | None) -> Row:
    from remote_sep import profiles

    path = profiles.hosts_path(hosts)
    if not path.exists():
        return Row("hosts.yaml", WARN if hosts is None else FAIL, f"{path}: not there yet",
                   "optional: `remote-sep hosts add NAME user@host` (user@host works as it is)")
    try:
        found = profiles.load_hosts(path)
    except RemoteSepError as exc:
        return Row("hosts.yaml", FAIL, exc.message, exc.hint or f"fix {path}")
    names = sorted(n for n in found if n != "local")
    return Row("hosts.yaml", OK, f"{path}: {len(names)} host(s) {', '.join(names)}".rstrip())


def check_token() -> Row:
    from remote_sep.provision.token import token_origin

    origin = token_origin(False)
    if origin.startswith("nowhere"):
        return Row("hf token", WARN, origin,
                   "bootstrap needs one unless the host has it: export HF_TOKEN=hf_… or "
                   "`hf auth login`")
    return Row("hf token", OK, f"from {origin}")


def check_folders() -> list[Row]:
    from remote_sep import profiles
    from remote_sep.jobs.records import state_dir

    rows = []
    for label, folder in (("config dir", profiles.default_hosts_path().parent),
                          ("state dir", state_dir())):
        probe = folder / f".doctor-{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            rows.append(Row(label, FAIL, f"{folder}: {exc.strerror}",
                            f"make {folder} writable, or point REMOTE_SEP_STATE_DIR elsewhere"))
            continue
        rows.append(Row(label, OK, f"{folder} (writable)"))
    return rows


def run_checks(hosts: Path | None = None) -> list[Row]:
    return [check_python(), check_ssh_library(), check_agent(), check_known_hosts(),
            check_ssh_config(), check_hosts_file(hosts), check_token(), *check_folders()]


def doctor(hosts: HostsOption = None, as_json: JsonOption = False) -> None:
    """Check this laptop's side: Python, SSH library, ssh-agent, known_hosts, ssh_config,
    hosts.yaml, the Hugging Face token's source and remote-sep's folders."""

    def action() -> dict[str, Any]:
        rows = run_checks(hosts)
        if not as_json:
            table = Table("check", "status", "detail", "fix", show_lines=False)
            style = {OK: "green", WARN: "yellow", FAIL: "bold red"}
            for row in rows:
                table.add_row(row.check, f"[{style[row.status]}]{row.status}[/]",
                              row.detail.replace("[", r"\["), row.fix.replace("[", r"\["))
            out_console.print(table)
        failed = [row for row in rows if row.status == FAIL]
        if failed:
            error = ConfigError(f"{len(failed)} check(s) failed: "
                                + ", ".join(row.check for row in failed),
                                hint=failed[0].fix or None)
            error.details = {"checks": [asdict(row) for row in rows]}
            raise error
        return {"checks": [asdict(row) for row in rows]}

    run_command("doctor", as_json, action)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)

