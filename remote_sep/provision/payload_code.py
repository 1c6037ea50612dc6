"""The payload code on the remote (P/payload/<hash>/remote_payload/), synced by content hash.

The hash covers every remote_payload/*.py file (name and bytes), so a changed payload gets a
fresh folder and a job never runs half-old code. The upload is one round trip: a tar.gz on
the stdin of a shell script that unpacks into a temp folder and renames it into place.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from functools import lru_cache
from pathlib import Path

import remote_payload
from remote_sep.hosts.shell import quote
from remote_sep.hosts.space import disk_full_on_failure

PAYLOAD_DIR = Path(remote_payload.__file__).resolve().parent


def payload_files() -> list[Path]:
    return sorted(PAYLOAD_DIR.glob("*.py"))


@lru_cache(maxsize=1)
def payload_hash() -> str:
    """sha256 over the payload's file names and contents (first 16 hex digits)."""
    digest = hashlib.sha256()
    for path in payload_files():
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def payload_tarball() -> bytes:
    """The payload package as a tar.gz holding ``remote_payload/*.py``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in payload_files():
            info = tarfile.TarInfo(f"remote_payload/{path.name}")
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def payload_dir(base: str) -> str:
    """The folder to put on PYTHONPATH on the remote (holds ``remote_payload/``)."""
    return f"{base}/payload/{payload_hash()}"


def sync_script(base: str) -> str:
    """Shell script: unpack the tar.gz from stdin into P/payload/<hash> unless it is there."""
    dest = quote(payload_dir(base))
    parent = quote(f"{base}/payload")
    # A concurrent sync may win the rename: then the temp copy is simply dropped.
    return (
        f"set -e; mkdir -p {parent}; T=$(mktemp -d {parent}/.tmp.XXXXXX); "
        "trap 'rm -rf \"$T\"' EXIT; "  # a tar cut short (full disk) leaves nothing behind
        f'tar -xzf - -C "$T"; '
        f'if [ -d {dest}/remote_payload ]; then rm -rf "$T"; '
        f'else mv -T "$T" {dest} 2>/dev/null || rm -rf "$T"; fi'
    )


def sync_payload(host, base: str) -> str:
    """Upload the payload (one round trip); returns its folder on the remote."""
    tarball = payload_tarball()
    with disk_full_on_failure(host, f"{base}/payload", "the payload code", 4 * len(tarball)):
        host.run(sync_script(base), stdin=tarball)
    return payload_dir(base)
