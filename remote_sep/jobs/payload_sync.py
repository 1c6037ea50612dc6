"""The payload code on the remote, synced by content hash: see provision/payload_code.py
(bootstrap --prefetch runs the payload's prefetch too, so the code lives below jobs/)."""

from remote_sep.provision.payload_code import (
    PAYLOAD_DIR,
    payload_dir,
    payload_files,
    payload_hash,
    payload_tarball,
    sync_payload,
    sync_script,
)

__all__ = ["PAYLOAD_DIR", "payload_dir", "payload_files", "payload_hash", "payload_tarball",
           "sync_payload", "sync_script"]
