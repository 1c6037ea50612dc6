"""The network half of the fault suite: real link faults against `separate`, `attach` and
`batch`, each run as its own process (tests/faults/link_lab.py).

- a blackholed link (nft drops every packet, inside a network namespace that holds both
  sshd and the laptop side on 127.0.0.1): noticed within a bound (ssh/dial.py's keepalive
  + TCP_USER_TIMEOUT), reconnected once lifted; when it stays, `unreachable` with the
  `attach` hint, and `attach` delivers afterwards;
- sshd killed and restarted; the payload killed (both by pid); two commands racing on one
  host; the link cut at seeded random moments.

Every case checks the exit code and kind, the message, that no final output name holds a
partial or wrong file (sha256 against the remote copy, frames against the input), and that
a rerun or `attach` delivers. The module prints a tally of what it injected.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path

import pytest
from batch_helpers import make_songs

from faults.link_lab import (
    CONNECT_TIMEOUT_S,
    MEASURED,
    SLOW_S,
    TALLY,
    Lab,
    check_batch,
    check_nothing_final,
    check_separate,
    expect_failure,
    make_audio,
    sha256,
    side_by_side,
    start_lab,
    wait_for,
)
from faults.netns import network_namespace
from remote_sep.ssh.dial import KEEPALIVE_S, USER_TIMEOUT_MS

# Our own bounds (below, link_lab.SLOW_S) catch hangs; pytest's is only the last resort.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# A dead link must be noticed within this: the keepalive fires after KEEPALIVE_S without a
# packet sent, and TCP_USER_TIMEOUT ends the socket when that stays unacknowledged.
NOTICE_BOUND_S = 60
KEPT_BUDGET_S = 5  # REMOTE_SEP_RECONNECT_BUDGET when the blackhole stays
LIFTED_BUDGET_S = 90  # ... when it is lifted as soon as the laptop redials


class _Summary:
    """Prints the tally in pytest's terminal summary (shown however output is captured)."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_sep("-", "link faults")
        terminalreporter.write_line(", ".join(f"{k}: {v}" for k, v in TALLY.items()))
        terminalreporter.write_line(
            f"reference: an idle link is given up at most keepalive {KEEPALIVE_S} s + "
            f"TCP_USER_TIMEOUT {USER_TIMEOUT_MS / 1000:g} s after its last packet; a new "
            f"channel after connect_timeout {CONNECT_TIMEOUT_S} s (ssh/dial.py, hosts.yaml)")
        for line in MEASURED:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def _tally(request):
    if not request.config.pluginmanager.has_plugin("link-fault-tally"):
        request.config.pluginmanager.register(_Summary(), "link-fault-tally")


@pytest.fixture
def labs(tmp_path):
    """make(name, netns=False, **payload_env) -> a Lab; all torn down by pid afterwards."""
    made: list[Lab] = []
    with contextlib.ExitStack() as stack:
        def make(name: str, netns: bool = False, **env: str) -> Lab:
            ns = stack.enter_context(network_namespace()) if netns else None
            lab = start_lab(tmp_path / name, ns, **env)
            made.append(lab)
            return lab

        try:
            yield make
        finally:
            for lab in made:
                lab.close()


def outputs(prefix: Path) -> list[Path]:
    return [Path(f"{prefix}_{kind}.wav") for kind in ("target", "residual")]


def blackhole_until_noticed(lab: Lab, what: str) -> None:
    """Drop every packet of the link; return once the laptop redials (a SYN into the hole)."""
    lab.ns.blackhole(lab.server.port)
    TALLY["faults injected"] += 1
    started = time.monotonic()
    wait_for(lambda: lab.ns.syn_attempts() > 0, NOTICE_BOUND_S,
             f"{what}: the laptop to notice the blackhole and redial")
    MEASURED.append(f"{what}: blackhole noticed after {time.monotonic() - started:.1f} s "
                    f"(bound {NOTICE_BOUND_S} s)")


# --- 1. the link blackholed --------------------------------------------------------------

@pytest.mark.slow
def test_blackholed_link_is_noticed_then_reconnected_or_left_for_attach(labs):
    """Four scenarios at once, each in its own namespace (they wait on TCP timers)."""

    def separate_mid_job_lifted() -> None:
        lab = labs("mid-job", netns=True)
        lab.hold_jobs()
        audio, out = make_audio(lab.root / "mix.wav"), lab.root / "out" / "mix"
        run = lab.separate(audio, out, budget=LIFTED_BUDGET_S)
        wait_for(lab.recorded_pid, SLOW_S, "the job to start")
        blackhole_until_noticed(lab, "separate, mid-job")
        lab.ns.lift()
        lab.release()
        outcome = run.wait(SLOW_S)
        check_separate(lab, outcome, audio)
        assert outcome.body["result"]["reconnects"] >= 1
        assert len(lab.jobs()) == 1  # the same job went on

    def separate_mid_upload_lifted() -> None:
        lab = labs("mid-upload", netns=True)
        audio, out = make_audio(lab.root / "long.wav", seconds=12), lab.root / "out" / "long"
        cache = lab.remote / "cache"
        final = cache / f"{sha256(audio)}.wav"
        lab.ns.throttle(lab.server.port, 128)  # ~770 KB at 128 KB/s: the upload takes a while
        run = lab.separate(audio, out, budget=LIFTED_BUDGET_S)
        size = audio.stat().st_size
        wait_for(lambda: any(150_000 < _size(p) < size for p in cache.glob("*.*")), SLOW_S,
                 "the upload to be under way")  # a file in the making, whatever its name
        blackhole_until_noticed(lab, "separate, mid-upload")
        assert not final.exists()  # a cut upload never shows under its final name
        lab.ns.lift()
        outcome = run.wait(SLOW_S)
        check_separate(lab, outcome, audio)
        assert outcome.body["result"]["reconnects"] >= 1
        assert sha256(final) == sha256(audio)

    def separate_kept_then_attach() -> None:
        lab = labs("kept", netns=True)
        lab.hold_jobs()
        audio, out = make_audio(lab.root / "mix.wav"), lab.root / "out" / "mix"
        run = lab.separate(audio, out, budget=KEPT_BUDGET_S)
        wait_for(lab.recorded_pid, SLOW_S, "the job to start")
        lab.ns.blackhole(lab.server.port)
        TALLY["faults injected"] += 1
        started = time.monotonic()
        outcome = run.wait(NOTICE_BOUND_S + 60)
        gave_up = time.monotonic() - started
        MEASURED.append(f"separate, blackhole kept: exit {outcome.rc} {gave_up:.1f} s after "
                        f"it began (reconnect budget {KEPT_BUDGET_S} s)")
        expect_failure(outcome, "unreachable")
        assert gave_up < NOTICE_BOUND_S
        (job,) = lab.jobs()
        assert "could not reconnect" in outcome.error["message"]
        assert f"remote-sep attach {job.name} --host gpu" in outcome.error["hint"]
        check_nothing_final(*outputs(out))
        lab.ns.lift()
        attach = lab.cli("attach", job.name, "--host", "gpu")
        lab.release()
        assert check_separate(lab, attach.wait(SLOW_S), audio) == outputs(out)  # the names asked

    def batch_mid_job_lifted() -> None:
        lab = labs("batch", netns=True)
        lab.hold_jobs()
        make_songs(lab.root / "in", 3)
        out = lab.root / "out"
        run = lab.batch(lab.root / "in", out)
        lab.wait_event("item_start", timeout=SLOW_S)
        blackhole_until_noticed(lab, "batch, mid-job")
        lab.ns.lift()
        lab.release()
        check_batch(lab, run.wait(SLOW_S), out, 3)
        assert len(lab.jobs()) == 1  # the same worker went on

    side_by_side(separate_mid_job_lifted=separate_mid_job_lifted,
                 separate_mid_upload_lifted=separate_mid_upload_lifted,
                 separate_kept_then_attach=separate_kept_then_attach,
                 batch_mid_job_lifted=batch_mid_job_lifted)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # renamed meanwhile
        return 0


# --- 2. sshd killed and restarted -------------------------------------------------------

def test_sshd_restarted_mid_job_separate_reconnects_and_delivers(labs):
    lab = labs("sshd")
    lab.hold_jobs()
    audio, out = make_audio(lab.root / "mix.wav"), lab.root / "out" / "mix"
    run = lab.separate(audio, out, budget=60)
    wait_for(lab.recorded_pid, SLOW_S, "the job to start")
    lab.restart_sshd()
    lab.release()
    outcome = run.wait(SLOW_S)
    check_separate(lab, outcome, audio)
    assert outcome.body["result"]["reconnects"] >= 1 and len(lab.jobs()) == 1


def test_sshd_restarted_mid_batch_reconnects_and_delivers(labs):
    lab = labs("sshd-batch")
    lab.hold_jobs()
    make_songs(lab.root / "in", 3)
    out = lab.root / "out"
    run = lab.batch(lab.root / "in", out)
    lab.wait_event("item_start", timeout=SLOW_S)
    lab.restart_sshd()
    lab.release()
    check_batch(lab, run.wait(SLOW_S), out, 3)
    assert len(lab.jobs()) == 1  # the same worker went on: the model loaded once


# --- 3. the payload killed --------------------------------------------------------------

def test_payload_killed_separate_exits_job_failed_with_the_stderr_tail(labs):
    lab = labs("kill")
    lab.hold_jobs()
    audio, out = make_audio(lab.root / "mix.wav"), lab.root / "out" / "mix"
    run = lab.separate(audio, out)
    job = lab.wait_event("item_start", timeout=SLOW_S)
    lab.kill_payload(job)
    outcome = run.wait(60)
    expect_failure(outcome, "job_failed")
    last_line = (job / "stderr.log").read_text().strip().splitlines()[-1]
    message = outcome.error["message"]
    assert f"remote job {job.name}" in message and "ended without finishing" in message
    assert "stderr.log ends with" in message and last_line in message
    check_nothing_final(*outputs(out))
    lab.release()
    check_separate(lab, lab.separate(audio, out).wait(SLOW_S), audio)


def test_payload_killed_batch_fails_the_units_with_their_kind_then_rerun_delivers(labs):
    lab = labs("kill-batch")
    lab.hold_jobs()
    make_songs(lab.root / "in", 2)
    out = lab.root / "out"
    run = lab.batch(lab.root / "in", out)
    first = lab.wait_event("item_start", timeout=SLOW_S)
    lab.kill_payload(first)
    # The batch restarts a dead worker once (WorkerOptions.max_restarts); kill that one too.
    second = lab.wait_event("item_start", timeout=SLOW_S, besides=(first,))
    lab.kill_payload(second)
    outcome = run.wait(SLOW_S)
    expect_failure(outcome, "job_failed")
    items = outcome.body["result"]["items"]
    assert [(i["status"], i["kind"]) for i in items] == [("failed", "job_failed")] * 2
    assert all("worker" in i["message"] and "died" in i["message"] for i in items), items
    assert not list(out.glob("*.wav"))
    lab.release()
    check_batch(lab, lab.batch(lab.root / "in", out).wait(SLOW_S), out, 2)


# --- 4. two commands racing -------------------------------------------------------------

def test_two_separates_of_one_input_race_on_the_shared_cache(labs):
    # In a namespace so a throttled link makes both uploads of the same file overlap.
    lab = labs("race", netns=True)
    audio = make_audio(lab.root / "mix.wav", seconds=8)
    cache = lab.remote / "cache"
    lab.ns.throttle(lab.server.port, 256)
    runs = [lab.separate(audio, lab.root / "out" / name) for name in ("a", "b")]
    TALLY["faults injected"] += 1
    overlap = 0
    while any(run.running() for run in runs):
        overlap = max(overlap, len(list(cache.glob(".*.part-*"))))
        time.sleep(0.02)
    for run in runs:
        check_separate(lab, run.wait(SLOW_S), audio)
    assert overlap == 2, "the two uploads did not overlap: no race was tested"
    assert [p.name for p in cache.iterdir()] == [f"{sha256(audio)}.wav"]
    assert sha256(cache / f"{sha256(audio)}.wav") == sha256(audio)


def test_two_batches_race_into_different_out_dirs_on_one_host(labs):
    lab = labs("race-batch")
    make_songs(lab.root / "in", 3)
    runs = {name: lab.batch(lab.root / "in", lab.root / name) for name in ("out1", "out2")}
    TALLY["faults injected"] += 1
    for name, run in runs.items():
        check_batch(lab, run.wait(SLOW_S), lab.root / name, 3)
    assert len(list((lab.remote / "cache").iterdir())) == 3


# --- 5. the link cut at random points ---------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_link_cut_at_random_points_during_separate(labs, seed):
    """Two cuts (the per-connection sshd child killed) at seeded moments of one run: the
    outputs are right, or it exits `unreachable` cleanly and `attach` delivers."""
    rng = random.Random(seed)
    lab = labs(f"cut{seed}", SAM_STANDIN_SECONDS_PER_SECOND="1")
    audio, out = make_audio(lab.root / "mix.wav", seconds=2), lab.root / "out" / "mix"
    run = lab.separate(audio, out, budget=30)
    cuts = []
    for at in sorted(rng.uniform(0.5, 9.0) for _ in range(2)):
        while run.running() and time.monotonic() - run.started < at:
            time.sleep(0.01)
        if not run.running():
            break
        if lab.server.drop_links():
            TALLY["faults injected"] += 1
            cuts.append(f"{at:.1f} s")
    outcome = run.wait(SLOW_S)
    MEASURED.append(f"seed {seed}: links cut at {', '.join(cuts) or 'none (it was done)'} "
                    f"-> exit {outcome.rc} after {outcome.seconds:.1f} s")
    if outcome.rc == 0:
        check_separate(lab, outcome, audio)
        return
    expect_failure(outcome, "unreachable")
    check_nothing_final(*outputs(out))
    jobs = lab.jobs()
    if not jobs:  # cut before the job was made (upload, prepare): nothing to attach to
        assert "attach" not in outcome.error.get("hint", ""), outcome.error
        check_separate(lab, lab.separate(audio, out, budget=30).wait(SLOW_S), audio)
        return
    (job,) = jobs
    assert f"remote-sep attach {job.name} --host gpu" in outcome.error["hint"]
    check_separate(lab, lab.cli("attach", job.name, "--host", "gpu").wait(SLOW_S), audio)


def test_link_cut_while_the_job_starts_separate_reconnects_and_delivers(labs):
    """The cut lands after the job started (its pid file exists) but before `separate` has
    read the answer of the start round trip, which also long-polls the first events."""
    lab = labs("cut-start")
    audio, out = make_audio(lab.root / "mix.wav"), lab.root / "out" / "mix"
    run = lab.separate(audio, out, budget=30)
    job = wait_for(lambda: next((j for j in lab.jobs() if (j / "pid").exists()), None), SLOW_S,
                   "the job to start")
    assert lab.recorded_pid() is None  # still inside the start round trip
    assert lab.server.drop_links()
    TALLY["faults injected"] += 1
    outcome = run.wait(SLOW_S)
    check_separate(lab, outcome, audio)
    assert outcome.body["result"]["reconnects"] >= 1 and lab.jobs() == [job]


@pytest.mark.slow
def test_the_temp_file_of_a_cut_upload_is_removed_by_clean_cache(labs):
    lab = labs("cut-upload", netns=True)  # a throttled link, so the cut lands mid-upload
    audio, out = make_audio(lab.root / "long.wav", seconds=12), lab.root / "out" / "long"
    cache, size = lab.remote / "cache", audio.stat().st_size
    lab.ns.throttle(lab.server.port, 256)
    run = lab.separate(audio, out, budget=30)
    wait_for(lambda: any(100_000 < _size(p) < size for p in cache.glob(".*.part-*")), SLOW_S,
             "the upload to be under way")
    assert lab.server.drop_links()
    TALLY["faults injected"] += 1
    lab.ns.lift()
    check_separate(lab, run.wait(SLOW_S), audio)  # re-uploaded after the reconnect
    (stale,) = cache.glob(".*.part-*")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    cleaned = lab.cli("clean", "gpu", "--cache", "--older-than", "1h").wait(SLOW_S)
    assert cleaned.rc == 0, str(cleaned)
    assert (cache / f"{sha256(audio)}.wav").exists()  # recent: kept
    assert not stale.exists(), "a cut upload's temp file outlives `clean --cache`"
