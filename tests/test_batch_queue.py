"""The shared queue and its failover rules, without SSH."""

from __future__ import annotations

from pathlib import Path

from remote_sep.batch.plan import Unit
from remote_sep.batch.queue import DONE, FAILED, QUEUED, RUNNING, SKIPPED, WorkQueue


def units(n: int) -> list[Unit]:
    return [Unit(key=f"k{i}", index=i, input=Path(f"/in/{i}.wav"), description="d",
                 outputs={"target": Path(f"/o/{i}_t"), "residual": Path(f"/o/{i}_r")})
            for i in range(n)]


def test_hosts_pull_from_one_queue_in_order():
    queue = WorkQueue(units(3))
    assert queue.take("a").key == "k0"
    assert queue.take("b").key == "k1"
    assert queue.take("a").key == "k2"
    assert queue.take("b") is None
    assert queue.owned_by("a") == ["k0", "k2"]
    assert not queue.all_settled()


def test_release_puts_a_lost_hosts_units_back_first():
    queue = WorkQueue(units(4))
    queue.take("a"), queue.take("b"), queue.take("a")
    assert queue.release("a") == ["k0", "k2"]
    assert queue.results["k0"].status == QUEUED
    assert [queue.take("b").key for _ in range(3)] == ["k0", "k2", "k3"]


def test_a_lost_host_that_finishes_later_still_counts_once():
    queue = WorkQueue(units(2))
    queue.take("a")
    queue.release("a")
    queue.take("b")  # k0 reassigned
    assert queue.claim("k0", "a")  # a came back and finished it first
    assert not queue.claim("k0", "b")  # while a pulls, b may not
    queue.complete("k0", "a", {"target": "x"}, 1.0)
    assert not queue.claim("k0", "b")  # b's late result is dropped: no duplicate
    queue.fail("k0", "b", "internal", "late")  # ignored: done already
    assert queue.results["k0"].status == DONE and queue.results["k0"].host == "a"


def test_finished_while_back_in_the_queue_is_removed_from_it():
    queue = WorkQueue(units(2))
    queue.take("a")
    queue.release("a")
    assert queue.claim("k0", "a")
    queue.complete("k0", "a", {}, None)
    assert queue.take("b").key == "k1"
    assert queue.take("b") is None


def test_failed_pull_unclaims():
    queue = WorkQueue(units(1))
    queue.take("a")
    assert queue.claim("k0", "a")
    queue.unclaim("k0")
    assert queue.claim("k0", "b")


def test_retryable_failure_retries_then_gives_up():
    queue = WorkQueue(units(1), max_attempts=2)
    queue.take("a")
    queue.fail("k0", "a", "oom", "out of memory")
    assert queue.results["k0"].status == QUEUED
    queue.take("b")
    queue.fail("k0", "b", "oom", "out of memory")
    assert queue.results["k0"].status == FAILED
    assert queue.results["k0"].kind == "oom"
    assert queue.all_settled()


def test_permanent_failure_is_not_retried():
    queue = WorkQueue(units(1))
    queue.take("a")
    queue.fail("k0", "a", "bad_audio", "not audio")
    assert queue.results["k0"].status == FAILED
    assert queue.take("b") is None


def test_release_does_not_use_up_attempts():
    queue = WorkQueue(units(1), max_attempts=1)
    for host in ("a", "b", "c"):
        queue.take(host)
        queue.release(host)
    queue.take("d")
    assert queue.results["k0"].status == RUNNING


def test_give_back_requeues_without_an_attempt():
    queue = WorkQueue(units(1), max_attempts=1)
    queue.take("a")
    queue.give_back("k0", "a")
    assert queue.take("b").key == "k0"
    queue.give_back("k0", "a")  # not a's any more: nothing happens
    assert queue.results["k0"].status == RUNNING


def test_drain_stops_handing_out_and_waits_for_running():
    queue = WorkQueue(units(3))
    queue.take("a")
    queue.drain()
    assert queue.take("a") is None
    assert not queue.all_settled()
    queue.claim("k0", "a")
    queue.complete("k0", "a", {}, None)
    assert queue.all_settled()
    assert queue.counts() == {QUEUED: 2, RUNNING: 0, DONE: 1, FAILED: 0, SKIPPED: 0}


def test_skipped_units_are_never_handed_out():
    queue = WorkQueue(units(2))
    queue.skip("k0")
    assert queue.take("a").key == "k1"
    assert queue.take("a") is None
    assert not queue.claim("k0", "a")
