"""`separate` and `batch` on a Ray cluster profile, end to end: the laptop side as its own
process, a real sshd and a real Ray cluster (fake GPUs, token auth) in one network namespace
with only lo. The profile is the head's SSH entry plus `ray: ADDRESS`; the token is where
`cluster up` puts it (P/ray/auth_token, 0600).

The laptop never speaks Ray: it uploads, starts the driver and follows its events over SSH
as with any host; the checks are the usual ones (every output the remote copy's bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray_lab
import yaml
from batch_helpers import make_songs
from faults.link_lab import (
    SLOW_S,
    check_batch,
    check_separate,
    events,
    start_lab,
    wait_for,
)
from payload_util import standin_env, write_audio

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = standin_env(SAM_STANDIN_SECONDS_PER_SECOND="0.1")
    with ray_lab.ray_cluster(gpus=[1, 1], env=env) as lab:
        yield lab


def _laptop(cluster, root: Path):
    """A link_lab Lab whose `gpu` profile is the cluster's head (`ray: ADDRESS`)."""
    lab = start_lab(root, cluster.ns)
    entry = yaml.safe_load(lab.hosts.read_text())
    entry["hosts"]["gpu"]["ray"] = cluster.address
    lab.hosts.write_text(yaml.safe_dump(entry, sort_keys=False))
    token = lab.remote / "ray" / "auth_token"  # where `cluster up` writes it
    token.parent.mkdir(parents=True)
    token.write_bytes(Path(cluster.token_file).read_bytes())
    token.chmod(0o600)
    return lab


def _hellos(lab) -> list[dict]:
    return [e for job in lab.jobs() for e in events(job) if e.get("event") == "hello"]


def test_separate_on_a_cluster_profile_runs_on_the_gpu_actors(cluster, tmp_path):
    lab = _laptop(cluster, tmp_path / "sep")
    try:
        audio = write_audio(tmp_path / "long.wav", seconds=40, rate=44100, channels=2)
        outcome = lab.separate(audio, tmp_path / "out" / "long").wait(SLOW_S)
        check_separate(lab, outcome, audio)
        (hello,) = _hellos(lab)
        assert hello["device"] == "ray" and hello["slots"] == 2 and hello["ray"]["gpus"] == 2
    finally:
        lab.close()


def test_batch_on_a_cluster_resumes_after_the_laptop_is_killed(cluster, tmp_path):
    lab = _laptop(cluster, tmp_path / "batch")
    try:
        make_songs(lab.root / "in", 8, seconds=6.0)
        out = lab.root / "out"
        first = lab.batch(lab.root / "in", out)
        wait_for(lambda: any(e.get("event") == "item_done" for job in lab.jobs()
                             for e in events(job)), SLOW_S, "the first unit done")
        first.process.kill()  # the laptop dies mid-batch (SIGKILL: no goodbye)
        first.process.wait(timeout=30)
        done_before = len([p for p in out.glob("*.wav")])
        assert done_before < 16, "the batch finished before the laptop was killed"
        outcome = lab.batch(lab.root / "in", out).wait(SLOW_S * 2)
        check_batch(lab, outcome, out, 8)
        # the driver ran units side by side on the two GPU actors
        assert {h["slots"] for h in _hellos(lab)} == {2}
        starts = [(e["t"], e["item"]) for job in lab.jobs() for e in events(job)
                  if e.get("event") == "item_start"]
        dones = {e["item"]: e["t"] for job in lab.jobs() for e in events(job)
                 if e.get("event") == "item_done"}
        starts.sort()
        assert any(t2 < dones.get(i1, 0) for (_, i1), (t2, _) in zip(starts, starts[1:],
                                                                    strict=False)), \
            "no two units overlapped: the inbox was never deep enough for both GPUs"
    finally:
        lab.close()
