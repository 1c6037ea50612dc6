"""The provisioning stamp `P/venv/remote-sep-stamp.json`: what was installed, by plan hash.

Written after every finished install step (`complete: false`) and once more at the end
(`complete: true`), so an interrupted bootstrap resumes where it stopped. Other commands
call `ensure_provisioned` (one round trip) before running the payload.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from remote_sep.errors import NotProvisioned
from remote_sep.hosts.base import Host
from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.shell import remote_path_expr
from remote_sep.provision.plan import (
    STAMP_VERSION,
    FactsUsed,
    Plan,
    digest,
    plan_inputs,
    stamp_path,
)


def stamp_record(plan: Plan, done: dict[str, str], complete: bool) -> dict:
    return {
        "v": STAMP_VERSION,
        "plan_hash": plan.plan_hash,
        "complete": complete,
        "steps": dict(done),
        "facts": plan.inputs["facts"],
        "index": plan.torch.index_url,
        "written": round(time.time(), 3),
    }


def stamp_bytes(record: dict) -> bytes:
    return (json.dumps(record, sort_keys=True) + "\n").encode()  # one line: read with `tr`


def stamp_matches(stamp: dict | None, plan: Plan) -> bool:
    return bool(stamp and stamp.get("v") == STAMP_VERSION and stamp.get("complete")
                and stamp.get("plan_hash") == plan.plan_hash)


def done_steps(stamp: dict | None) -> dict[str, str]:
    """Install steps a previous (maybe interrupted) run finished, by name -> key."""
    if not stamp or stamp.get("v") != STAMP_VERSION or not isinstance(stamp.get("steps"), dict):
        return {}
    return {str(k): str(v) for k, v in stamp["steps"].items()}


def check_stamp(profile: HostProfile, stamp: dict | None) -> None:
    """Raise NotProvisioned unless the stamp is complete and matches the profile's plan."""
    hint = f"remote-sep bootstrap {profile.name}"
    if not stamp or stamp.get("v") != STAMP_VERSION:
        raise NotProvisioned(f"host {profile.name} is not provisioned", hint=f"run: {hint}")
    if not stamp.get("complete"):
        raise NotProvisioned(f"the bootstrap of {profile.name} did not finish",
                             hint=f"run: {hint} (it resumes where it stopped)")
    try:
        inputs, _ = plan_inputs(FactsUsed.from_json(stamp["facts"]), profile)
    except (KeyError, TypeError, ValueError):
        raise NotProvisioned(f"host {profile.name} has an unreadable stamp",
                             hint=f"run: {hint}") from None
    if digest(inputs) != stamp.get("plan_hash") and not _with_ray_matches(profile, stamp):
        raise NotProvisioned(
            f"the install plan for {profile.name} changed since its bootstrap "
            "(torch, sam_audio, pins or pip settings in the profile)", hint=f"run: {hint}")


def _with_ray_matches(profile: HostProfile, stamp: dict) -> bool:
    """A venv `cluster up` bootstrapped (the same plan plus the pinned Ray) serves the host's
    plain profile too: joining a cluster never makes a host look unprovisioned."""
    if profile.ray:
        return False
    inputs, _ = plan_inputs(FactsUsed.from_json(stamp["facts"]), replace(profile, ray="auto"))
    return digest(inputs) == stamp.get("plan_hash")


def read_stamp_script(base: str) -> str:
    return f"cat {remote_path_expr(stamp_path(base))} 2>/dev/null; exit 0"


def parse_stamp(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def ensure_provisioned(host: Host, profile: HostProfile) -> None:
    """One round trip: raise NotProvisioned (hint: `remote-sep bootstrap NAME`) when the
    host's stamp is missing, unfinished, or stale for this profile."""
    result = host.run(read_stamp_script(profile.path), check=False)
    check_stamp(profile, parse_stamp(result.stdout.decode("utf-8", "replace")))
