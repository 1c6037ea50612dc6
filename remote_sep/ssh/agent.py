"""What ssh-agent offers this laptop (for `remote-sep doctor`); part of the SSH seam."""

from __future__ import annotations

import os

import paramiko

from remote_sep.hosts.known_hosts import fingerprint


def agent_keys() -> tuple[str | None, list[str]]:
    """(problem or None, ['ssh-ed25519 SHA256:…', …]) for the agent at $SSH_AUTH_SOCK."""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return "no ssh-agent (SSH_AUTH_SOCK is not set)", []
    agent = paramiko.Agent()
    try:
        keys = [f"{key.get_name()} {fingerprint(key.get_base64())}" for key in agent.get_keys()]
    except (paramiko.SSHException, OSError) as exc:
        return f"ssh-agent at $SSH_AUTH_SOCK does not answer ({exc})", []
    finally:
        agent.close()
    return (None if keys else "ssh-agent holds no keys"), keys
