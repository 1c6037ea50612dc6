"""The core of `hosts trust`: fetch the key a server presents and add it to known_hosts."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from remote_sep.hosts import known_hosts
from remote_sep.hosts.known_hosts import HostKey, fingerprint
from remote_sep.hosts.profile import HostProfile
from remote_sep.ssh.dial import server_host_key

Confirm = Callable[[str, str, str], bool]  # (key type, fingerprint, known_hosts file) -> yes?


def fetch_host_key(profile: HostProfile) -> HostKey:
    """Connect without authenticating and return the key the server presents.

    Goes through the profile's ProxyJump when it has one (the jump hosts themselves must
    already be trusted). Raises Unreachable when nothing answers.
    """
    keytype, blob = server_host_key(profile)
    key_b64 = base64.b64encode(blob).decode()
    return HostKey(keytype, key_b64, fingerprint(key_b64))


def trust_host(profile: HostProfile, confirm: Confirm) -> dict[str, Any]:
    """Fetch the host key, let the user confirm its fingerprint, then add it to the
    profile's first known_hosts file. Nothing is written when the answer is no."""
    key = fetch_host_key(profile)
    file = known_hosts.known_hosts_files(profile)[0]
    result = {"host": profile.name, "target": profile.describe(), "key_type": key.keytype,
              "fingerprint": key.fingerprint, "known_hosts": str(file), "added": False}
    if confirm(key.keytype, key.fingerprint, str(file)):
        result["known_hosts"] = str(known_hosts.add_known_host(file, profile, key))
        result["added"] = True
    return result
