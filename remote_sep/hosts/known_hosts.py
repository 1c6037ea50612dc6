"""known_hosts files: which ones a profile uses, fingerprints, and adding a trusted key.

Used by ssh/dial.py (which files to load) and by ssh/trust.py (`remote-sep hosts trust`),
which fetches the server's key and calls `add_known_host(None, profile, key)` (None: the
profile's first file). Parsing and matching (hashed entries too) is done by paramiko inside
ssh/dial.py; this module only writes, so it needs no SSH library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from remote_sep.atomic import write_text_atomic
from remote_sep.hosts.profile import HostProfile

ENV_KNOWN_HOSTS = "REMOTE_SEP_KNOWN_HOSTS"
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


# (host label, key type, SHA256 fingerprint, known_hosts file) -> the user trusts it?
FirstUsePrompt = Callable[[str, str, str, str], bool]
_first_use_prompt: FirstUsePrompt | None = None


def set_first_use_prompt(prompt: FirstUsePrompt | None) -> None:
    """Trust on first use, like OpenSSH: the CLI installs a terminal question here (ssh/dial.py
    asks it for an unknown key); with none (no terminal) an unknown key is refused. A CHANGED
    key never reaches it."""
    global _first_use_prompt
    _first_use_prompt = prompt


def first_use_prompt() -> FirstUsePrompt | None:
    return _first_use_prompt


class HostKey(NamedTuple):
    keytype: str  # e.g. "ssh-ed25519"
    key: str  # base64 of the public key blob, as in a known_hosts line
    fingerprint: str  # "SHA256:<base64, no padding>"


def known_hosts_files(profile: HostProfile) -> list[Path]:
    """The profile's files; else $REMOTE_SEP_KNOWN_HOSTS (os.pathsep-separated); else the
    OpenSSH defaults. The first one is where `hosts trust` writes."""
    names = list(profile.known_hosts) or default_known_hosts()
    return [Path(os.path.expanduser(n)) for n in names]


def default_known_hosts() -> list[str]:
    """$REMOTE_SEP_KNOWN_HOSTS (os.pathsep-separated), else the OpenSSH defaults."""
    env = os.environ.get(ENV_KNOWN_HOSTS)
    files = env.split(os.pathsep) if env else list(DEFAULT_KNOWN_HOSTS)
    return [os.path.expanduser(f) for f in files if f]


def host_key_name(host: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key_b64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _line_names_host(line: str, name: str) -> bool:
    fields = line.split()
    if not fields or line.lstrip().startswith("#"):
        return False
    hosts = fields[1] if fields[0].startswith("@") and len(fields) > 1 else fields[0]
    for entry in hosts.split(","):
        if entry.startswith("|1|"):
            try:
                salt_b64, hash_b64 = entry[3:].split("|", 1)
                salt = base64.b64decode(salt_b64)
                want = base64.b64decode(hash_b64)
            except ValueError:
                continue
            if hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), want):
                return True
        elif entry == name:
            return True
    return False


def add_known_host(file: Path | str | None, profile: HostProfile, key: HostKey,
                   *, replace: bool = True) -> Path:
    """Append `name keytype key` for the profile's host to a known_hosts file (atomically).

    `file` None: the profile's first known_hosts file. The parent directory is created 0700
    (like ~/.ssh). With `replace`, older lines for the same host in that file (plain or
    hashed) are dropped first, as `ssh-keygen -R` does, so a re-trusted host has one key.
    Returns the file written.
    """
    path = Path(os.path.expanduser(str(file))) if file else known_hosts_files(profile)[0]
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    name = host_key_name(profile.address, profile.port)
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    if replace:
        lines = [ln for ln in lines if not _line_names_host(ln, name)]
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.append(f"{name} {key.keytype} {key.key}\n")
    return write_text_atomic(path, "".join(lines), new_mode=0o600)
