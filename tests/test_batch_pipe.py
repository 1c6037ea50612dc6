"""The batch pipeline's pure parts and its bundled pull, on the real LocalHost."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from remote_sep.batch.pipe import EventFeed, queue_depth
from remote_sep.batch.plan import Unit
from remote_sep.batch.worker_job import WorkerJob
from remote_sep.errors import TransferError
from remote_sep.hosts.local import LocalHost
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs import layout


def test_depth_starts_at_base_and_grows_with_a_slow_link():
    assert queue_depth(base=2, max_ahead=16, item_s=None, link_s=None, fair_share=50) == 3
    assert queue_depth(base=2, max_ahead=16, item_s=10.0, link_s=0.3, fair_share=50) == 3
    # 0.3 s per upload, 0.06 s per unit: two uploads' worth (10) + 2 spare
    assert queue_depth(base=2, max_ahead=16, item_s=0.06, link_s=0.3, fair_share=50) == 12


def test_depth_is_bounded_by_max_ahead_and_a_fair_share():
    assert queue_depth(base=2, max_ahead=16, item_s=0.001, link_s=1.0, fair_share=50) == 16
    assert queue_depth(base=2, max_ahead=16, item_s=0.06, link_s=0.3, fair_share=5) == 5
    assert queue_depth(base=2, max_ahead=16, item_s=0.06, link_s=0.3, fair_share=0) == 3


def test_depth_of_a_worker_running_several_units_at_once():
    # A Ray driver with 4 GPU actors: 4 running + the 2 spare, before any timing
    assert queue_depth(base=2, max_ahead=16, item_s=None, link_s=None, fair_share=50,
                       slots=4) == 6
    # 0.24 s per unit on each of 4 GPUs = one unit per 0.06 s: as deep as one GPU at 0.06 s
    # plus the 3 units the other slots hold
    assert queue_depth(base=2, max_ahead=16, item_s=0.24, link_s=0.3, fair_share=50,
                       slots=4) == 15
    # the cap grows with the slots: 16 GPUs never starve on a max_ahead of 16
    assert queue_depth(base=2, max_ahead=16, item_s=10.0, link_s=0.3, fair_share=100,
                       slots=16) == 18


def _job(tmp_path: Path) -> tuple[WorkerJob, Path]:
    base = tmp_path / "remote"
    paths = layout.JobPaths(str(base), "j1")
    Path(paths.out).mkdir(parents=True)
    return WorkerJob(LocalHost(), HostProfile(name="local"), paths, 0, {}), Path(paths.dir)


def _unit(tmp_path: Path, n: int) -> Unit:
    out = tmp_path / "out"
    return Unit(key=f"k{n}", index=n, input=tmp_path / f"in{n}.wav", description="vocals",
                outputs={"target": out / f"{n}_target.wav", "residual": out / f"{n}_res.wav"})


def _outputs(job_dir: Path, n: int) -> dict:
    outputs = {}
    for role in ("target", "residual"):
        data = f"{role} of unit {n} ".encode() * (n + 1)
        (job_dir / "out" / f"u{n}_{role}.wav").write_bytes(data)
        outputs[role] = {"path": f"out/u{n}_{role}.wav", "bytes": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}
    return outputs


def test_one_bundle_pulls_many_units_each_verified(tmp_path):
    job, job_dir = _job(tmp_path)
    todo = [(_unit(tmp_path, n), _outputs(job_dir, n)) for n in range(3)]
    got = {}
    job.pull_many(todo, lambda unit, shas: got.setdefault(unit.key, shas))
    assert list(got) == ["k0", "k1", "k2"]
    for unit, outputs in todo:
        for role, path in unit.outputs.items():
            assert path.read_bytes() == (job_dir / outputs[role]["path"]).read_bytes()
            assert got[unit.key][role] == outputs[role]["sha256"]


def test_a_damaged_output_is_never_written(tmp_path):
    job, job_dir = _job(tmp_path)
    unit, outputs = _unit(tmp_path, 0), _outputs(job_dir, 0)
    outputs["residual"]["sha256"] = "0" * 64
    with pytest.raises(TransferError, match="sha256"):
        job.pull_many([(unit, outputs)], lambda *a: None)
    assert not unit.outputs["residual"].exists()
    assert not [p for p in (tmp_path / "out").iterdir() if ".part-" in p.name]


def test_event_feed_streams_a_growing_file_until_the_command_ends(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"seq":0,"event":"hello"}\n')
    got, wake = [], threading.Event()
    script = f"cat {events}; sleep 0.3; echo '{{\"seq\":1,\"event\":\"bye\"}}'"
    feed = EventFeed(LocalHost(), script, got.append, wake)
    for _ in range(100):
        if feed.ended:
            break
        wake.wait(0.1)
        wake.clear()
    feed.close()
    assert feed.ended and feed.error is None
    assert b"".join(got).count(b"\n") == 2


def _submitted(tmp_path: Path, count: int) -> tuple[WorkerJob, Path, list[Unit]]:
    """A job with ``count`` units really submitted into its inbox (no worker running)."""
    units = [_unit(tmp_path, n) for n in range(count)]
    for unit in units:
        unit.input.write_bytes(f"input {unit.index}".encode())
    job, job_dir = _job(tmp_path)
    job.input_shas = {u.input: hashlib.sha256(u.input.read_bytes()).hexdigest() for u in units}
    (job_dir / "inbox").mkdir()
    (job_dir / "taken").mkdir()
    (Path(job.paths.base) / "cache").mkdir()
    job.submit_many(units)
    return job, job_dir, units


def test_withdraw_takes_back_what_the_worker_has_not_taken_in_one_go(tmp_path):
    job, job_dir, units = _submitted(tmp_path, 4)
    first, *rest = sorted((job_dir / "inbox").glob("*.json"))
    first.rename(job_dir / "taken" / first.name)  # the worker took the first (atomic rename)
    rest[-1].unlink()  # withdrawn by an earlier try whose answer a link cut lost
    withdrawn = job.withdraw_untaken()
    assert [u.key for u in withdrawn] == ["k1", "k2", "k3"]
    assert [p.name for p in (job_dir / "inbox").iterdir()] == ["CLOSE"]  # the worker exits
    assert (job_dir / "taken" / first.name).exists()  # the running one is left alone
    assert set(job.inflight) == job.queued_remote == {"k0"}  # still to be pulled
    assert job.closed


class _HeldUpload(LocalHost):
    """LocalHost whose upload exec waits until the test lets it land."""

    def __init__(self) -> None:
        super().__init__()
        self.uploading, self.land = threading.Event(), threading.Event()

    def run(self, argv, **kwargs):
        if isinstance(argv, str) and "tar -x" in argv:
            self.uploading.set()
            self.land.wait(30)
        return super().run(argv, **kwargs)


def test_a_bundle_on_its_way_when_the_drain_starts_is_withdrawn_too(tmp_path):
    """Ctrl-C while the uploader's exec is in flight: the withdrawal waits for it to land,
    then takes its items back; no item is left in the closed inbox to run."""
    import dataclasses

    from remote_sep.batch.host_worker import HostWorker
    from remote_sep.batch.queue import QUEUED, WorkQueue
    from remote_sep.batch.state import BatchState

    job, job_dir, (sent,) = _submitted(tmp_path, 1)
    job.host = host = _HeldUpload()
    units = [dataclasses.replace(_unit(tmp_path, n), input=sent.input) for n in (1, 2)]
    queue = WorkQueue(units)
    worker = HostWorker(HostProfile(name="local"), queue, BatchState(tmp_path / "out"),
                        {u.key: "f" for u in units}, {}, job.input_shas, LocalHost,
                        threading.Event())
    uploader = threading.Thread(target=worker._feed, args=(job,))
    uploader.start()
    assert host.uploading.wait(30)  # both units taken, their exec not landed yet
    queue.drain()
    withdrawal = threading.Thread(target=worker._withdraw, args=(job,))
    withdrawal.start()
    withdrawal.join(0.5)  # (without the ordering it would be over by now, too early)
    host.land.set()
    uploader.join(30)
    withdrawal.join(30)
    assert [p.name for p in (job_dir / "inbox").iterdir()] == ["CLOSE"]
    assert [queue.results[u.key].status for u in units] == [QUEUED, QUEUED]
    assert queue.running() == 0 and not job.inflight
    assert worker._feed(job) is False  # drained and closed: nothing more is sent


@pytest.mark.parametrize("expected", [None, "", "0" * 64])
def test_an_output_without_its_recorded_sha256_is_never_written(tmp_path, expected):
    from remote_sep.batch.pulls import _write_verified

    target = tmp_path / "song_vocals_target.wav"
    with pytest.raises(TransferError):
        _write_verified(target, b"RIFF....", expected, "target from gpu1")
    assert list(tmp_path.iterdir()) == []
