"""What a job's one `prepare` round trip learns about a host (jobs/layout.py fills it in;
provision/auto.py judges from it whether the host must be bootstrapped first)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RemoteReady:
    base: str  # resolved remote base
    python: str  # interpreter that runs the payload
    payload_present: bool
    cached_sha256: str | None  # sha256 of the cached upload, None when absent
    # The bootstrap stamp (parsed), read only when the profile names no python: lets
    # provision.auto.ensure_ready judge the venv without a round trip of its own.
    stamp: dict | None = None
