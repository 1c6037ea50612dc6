"""Soak: 30 batches on two loopback hosts with links cut at random (seeded) moments.

Bounded: each run is 3 short files x 1 description; two cuts per run at random times within
the run's expected length. Every run must finish with correct outputs: present, sha256 as
reported by the remote, target + residual == input (the stand-in's invariant), the same
bytes as a run without cuts (seeded: reproducible), nothing extra.
"""

from __future__ import annotations

import os
import random
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from batch_helpers import check_outputs, fleet, make_songs

from remote_sep.batch.fleet import run_batch
from remote_sep.batch.host_worker import WorkerOptions
from remote_sep.batch.plan import plan_batch
from remote_sep.ssh.host import connect

RUNS = int(os.environ.get("SOAK_RUNS", "30"))
SEED = 20261125


def cut_links(servers: list, rng: random.Random, done: threading.Event, cuts: list) -> None:
    for _ in range(2):
        if done.wait(rng.uniform(0.0, 2.5)):
            return
        cuts.append(rng.choice(servers).drop_links())


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_30_batches_with_random_link_cuts(tmp_path, make_ssh_server):
    songs = make_songs(tmp_path / "in", 3, rate=48000)  # the model rate: no resampling
    servers = {"gpu1": make_ssh_server("a"), "gpu2": make_ssh_server("b")}
    _, profile_list = fleet(tmp_path, servers)
    rng = random.Random(SEED)
    options = WorkerOptions(backoff=(0.1, 0.3, 0.6), give_up_s=60)
    reference = run_batch(plan_batch([str(s) for s in songs], ["vocals"], tmp_path / "ref"),
                          profile_list, {}, connect=connect, options=options)
    expected = [item["outputs"] for item in reference.items]
    complete, cuts, seconds = 0, [], []
    for run in range(RUNS):
        out = tmp_path / f"out{run}"
        plan = plan_batch([str(s) for s in songs], ["vocals"], out)
        done = threading.Event()
        cutter = threading.Thread(target=cut_links,
                                  args=(list(servers.values()), rng, done, cuts))
        cutter.start()
        started = time.monotonic()
        report = run_batch(plan, profile_list, {}, connect=connect, options=options)
        seconds.append(time.monotonic() - started)
        done.set()
        cutter.join()
        check_outputs(out, report.items, 3)
        for unit in plan.units:
            mix, _ = sf.read(unit.input, dtype="float32")
            target, _ = sf.read(unit.outputs["target"], dtype="float32")
            residual, _ = sf.read(unit.outputs["residual"], dtype="float32")
            assert target.shape == mix.shape
            assert np.max(np.abs(target + residual - mix)) < 2e-3
        assert [item["outputs"] for item in report.items] != expected  # other paths...
        assert [{r: o["sha256"] for r, o in item["outputs"].items()} for item in report.items] \
            == [{r: o["sha256"] for r, o in outs.items()} for outs in expected]  # same bytes
        complete += report.ok
    print(f"soak: {complete}/{RUNS} runs complete, {sum(c > 0 for c in cuts)} link cuts hit, "
          f"{sum(seconds):.0f} s in all, slowest run {max(seconds):.1f} s")
    assert complete == RUNS
