"""The core of `hosts trust`: fetch the key a server presents and add it to known_hosts."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from remote_sep.hosts import known_hosts
from remote_sep.hosts.known_hosts import HostKey, fingerprint
from remote_sep.hosts.profile import HostProfile
from remote_sep.ssh.dial import known_host_keys, server_host_key


@dataclass(frozen=True)
class TrustQuestion:
    """What `hosts trust` asks the user about: the key the host presents now, the file it
    would go to, and the keys known_hosts already has for the host that differ from it
    (not empty: the host key CHANGED)."""

    key: HostKey
    known_hosts: str
    replaced: tuple[HostKey, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.replaced)


Confirm = Callable[[TrustQuestion], bool]  # yes: write the key


def fetch_host_key(profile: HostProfile) -> HostKey:
    """Connect without authenticating and return the key the server presents.

    Goes through the profile's ProxyJump when it has one (the jump hosts themselves must
    already be trusted). Raises Unreachable when nothing answers.
    """
    keytype, blob = server_host_key(profile)
    key_b64 = base64.b64encode(blob).decode()
    return HostKey(keytype, key_b64, fingerprint(key_b64))


def trust_host(profile: HostProfile, confirm: Confirm) -> dict[str, Any]:
    """Fetch the host key, let the user confirm its fingerprint (told loudly when it
    differs from the one known_hosts has), then add it to the profile's first known_hosts
    file, replacing the old one. Nothing is written when the answer is no, nor when the
    key is already trusted."""
    key = fetch_host_key(profile)
    file = known_hosts.known_hosts_files(profile)[0]
    known = [HostKey(kind, b64, fingerprint(b64)) for kind, b64 in known_host_keys(profile)]
    result = {"host": profile.name, "target": profile.describe(), "key_type": key.keytype,
              "fingerprint": key.fingerprint, "known_hosts": str(file), "added": False,
              "already_trusted": False, "changed": False, "old_fingerprints": []}
    if any(k.keytype == key.keytype and k.key == key.key for k in known):
        result["already_trusted"] = True
        return result
    # Another key of the same type is a changed key; keys of other types are replaced too
    # (add_known_host keeps one key per host), so they are shown as well.
    question = TrustQuestion(key, str(file), tuple(known))
    result["changed"] = question.changed
    result["old_fingerprints"] = [f"{k.keytype} {k.fingerprint}" for k in known]
    if confirm(question):
        result["known_hosts"] = str(known_hosts.add_known_host(file, profile, key))
        result["added"] = True
    return result
