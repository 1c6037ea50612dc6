"""ssh_config (`~/.ssh/config`, or `$REMOTE_SEP_SSH_CONFIG`) read with paramiko's parser.

Part of the SSH seam (the modules that import paramiko; see ARCHITECTURE.md). Kept on
paramiko's `SSHConfig` rather than a parser of our own: it already follows OpenSSH's
first-match-wins rules, wildcards, negations and `%h`-style tokens, and it is pure parsing
(no network). It lives here, not in profiles/, so that profiles/load.py (hosts.yaml merge) and
ssh/dial.py (ProxyJump aliases) share one reader and neither names paramiko.
"""

from __future__ import annotations

import os
from pathlib import Path

import paramiko

from remote_sep.errors import ConfigError

SSH_CONFIG_ENV = "REMOTE_SEP_SSH_CONFIG"
DEFAULT_SSH_CONFIG = "~/.ssh/config"

SSHConfig = paramiko.SSHConfig  # `.lookup(host)` -> dict of lower-cased option names


def load_ssh_config() -> SSHConfig:
    """The user's ssh_config; an empty one when the file does not exist."""
    path = Path(os.path.expanduser(os.environ.get(SSH_CONFIG_ENV) or DEFAULT_SSH_CONFIG))
    if not path.is_file():
        return SSHConfig()
    try:
        return SSHConfig.from_path(str(path))
    except Exception as exc:  # paramiko raises assorted errors for bad lines
        raise ConfigError(f"{path}: cannot parse ssh_config: {exc}") from None


def ssh_config_aliases(config: SSHConfig) -> set[str]:
    """Host names written literally in ssh_config (no wildcards, no negations)."""
    return {h for h in config.get_hostnames() if not any(c in h for c in "*?!")}
