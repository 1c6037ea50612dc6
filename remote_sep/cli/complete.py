"""Shell completion values (Typer's): host names and, for `attach`, job ids.

Completers must never fail or be slow: a broken hosts.yaml just completes fewer names, and
nothing here connects anywhere.
"""

from __future__ import annotations

from pathlib import Path


def host_names(incomplete: str = "") -> list[str]:
    """hosts.yaml profiles (the file named by --hosts is not known yet: $REMOTE_SEP_HOSTS or
    the default), ssh_config aliases and `local`, those starting with INCOMPLETE."""
    names = {"local"}
    try:
        from remote_sep.profiles.load import hosts_path, read_hosts_file

        names.update(read_hosts_file(hosts_path()).entries)
    except Exception:  # noqa: BLE001 - a completer must never raise
        pass
    try:
        from remote_sep.ssh.config import load_ssh_config, ssh_config_aliases

        names.update(ssh_config_aliases(load_ssh_config()))
    except Exception:  # noqa: BLE001
        pass
    return sorted(n for n in names if n.startswith(incomplete))


def host_list(incomplete: str = "") -> list[str]:
    """For `batch --hosts a,b,…`: complete the name after the last comma."""
    done, _, last = incomplete.rpartition(",")
    prefix = f"{done}," if done else ""
    chosen = set(done.split(",")) if done else set()
    return [prefix + name for name in host_names(last) if name not in chosen]


def job_ids(incomplete: str = "") -> list[str]:
    """Job ids from this laptop's job records, newest first."""
    from remote_sep.jobs.records import state_dir

    folder = state_dir() / "jobs"
    try:
        files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    ids = [Path(f).stem.split("__")[-1] for f in files]
    return [i for i in dict.fromkeys(ids) if i.startswith(incomplete)]


