"""provision.auto.ensure_ready on this machine (LocalHost, real shell, no SSH): who may
bootstrap, what is asked, what it costs on a ready host. The bootstrap itself runs in
tests/test_auto_bootstrap_e2e.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from remote_sep.errors import NotProvisioned
from remote_sep.hosts.local import LocalHost
from remote_sep.hosts.profile import HostProfile
from remote_sep.provision.auto import ReadyOptions, ensure_ready, prepare_ready
from remote_sep.provision.inspect import parse_facts
from remote_sep.provision.plan import FactsUsed, build_plan
from remote_sep.provision.stamp import stamp_bytes, stamp_record


def host_and_profile(tmp_path: Path, **extra) -> tuple[LocalHost, HostProfile]:
    profile = HostProfile(name="gpu7", path=str(tmp_path / "base"), **extra)
    return LocalHost(HostProfile(name="local", path=str(tmp_path / "base"))), profile


def write_matching_stamp(tmp_path: Path, profile: HostProfile) -> dict:
    facts = parse_facts(f"base={profile.path}\nhf_home=/h\npython={sys.executable} 3.11\n")
    plan = build_plan(facts, profile, cpu=True)
    assert FactsUsed.from_facts(facts, True).python == sys.executable
    record = stamp_record(plan, {}, True)
    stamp = Path(profile.path) / "venv" / "remote-sep-stamp.json"
    stamp.parent.mkdir(parents=True)
    stamp.write_bytes(stamp_bytes(record))
    return record


def test_a_profile_python_is_returned_without_a_round_trip_or_a_question(tmp_path):
    host, profile = host_and_profile(tmp_path, python="/opt/py/bin/python")
    asked = []
    assert ensure_ready(host, profile, ask=asked.append) == "/opt/py/bin/python"
    assert asked == []


def test_not_provisioned_without_yes_or_anyone_to_ask(tmp_path):
    host, profile = host_and_profile(tmp_path)
    with pytest.raises(NotProvisioned) as err:
        ensure_ready(host, profile)
    assert "remote-sep bootstrap gpu7" in err.value.hint and "--yes" in err.value.hint
    assert not Path(profile.path).exists()


def test_a_no_answer_is_asked_once_and_changes_nothing(tmp_path):
    host, profile = host_and_profile(tmp_path)
    questions: list[str] = []

    def ask(question: str) -> bool:
        questions.append(question)
        return False

    with pytest.raises(NotProvisioned, match="bootstrap declined"):
        ensure_ready(host, profile, ask=ask, stamp=None)
    assert questions == ["Host gpu7 is not provisioned. Bootstrap it now?"]
    assert not Path(profile.path).exists()


def test_a_matching_stamp_is_ready_and_a_changed_plan_is_not(tmp_path):
    host, profile = host_and_profile(tmp_path)
    record = write_matching_stamp(tmp_path, profile)
    assert ensure_ready(host, profile) == f"{profile.path}/venv/bin/python"
    assert ensure_ready(host, profile, stamp=json.loads(json.dumps(record))).endswith(
        "/venv/bin/python")
    profile.pins = ["numpy<2"]
    with pytest.raises(NotProvisioned, match="install plan for gpu7 changed"):
        ensure_ready(host, profile, ask=lambda question: False)


def test_prepare_ready_rethrows_a_missing_profile_python(tmp_path):
    host, profile = host_and_profile(tmp_path, python="/nope/python3")

    def prepare():
        raise NotProvisioned("gpu7: the profile's python '/nope/python3' was not found")

    with pytest.raises(NotProvisioned, match="/nope/python3"):
        prepare_ready(lambda: host, profile, ReadyOptions(assume_yes=True), prepare)
