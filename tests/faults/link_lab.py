"""What the link-fault tests share: a lab (a real sshd, optionally inside a network namespace,
a hosts.yaml, the stand-in model), the laptop side run as its own process, the checks of
what it delivered, and the tally of faults injected that the test module prints.

A lab's payload can be held "on the GPU" (the stand-in's SAM_STANDIN_HOLD) so a fault lands
mid-job whatever the machine's load; releasing the hold lets the job finish.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import TESTS, profile_for, write_hosts_file
from sshd import SshServer, start_sshd

from faults.netns import Netns
from remote_payload.protocol import EXIT_CODES

CLI = [sys.executable, "-c", "from remote_sep.cli.main import main; main()"]
# Bound for a job to start or a command to finish: generous, as the 2 cores running the
# tests are shared (a payload's torch import alone took over a minute under load).
SLOW_S = 150
CONNECT_TIMEOUT_S = 3  # hosts.yaml connect_timeout: a dial into a blackhole gives up soon

# What the module prints at the end (the lead reports these figures).
TALLY: Counter = Counter({"faults injected": 0, "runs": 0, "outputs checked": 0,
                          "outputs wrong": 0, "hangs": 0})
MEASURED: list[str] = []  # "what: seconds" lines


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_audio(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """A real stereo mix (hum + whistle, a little noise: each file its own sha256)."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(zlib.crc32(path.name.encode())).standard_normal(t.size)
    mono = 0.4 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t) \
        + 0.01 * noise
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([mono, 0.8 * mono], axis=1).astype(np.float32), rate,
             subtype="PCM_16")
    return path


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll until PREDICATE is truthy; a bound passed is a failure (and counted a hang)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            TALLY["hangs"] += 1
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return value


@dataclass
class Outcome:
    rc: int
    body: dict | None  # the --json envelope
    stderr: str
    seconds: float

    @property
    def kind(self) -> str | None:
        return ((self.body or {}).get("error") or {}).get("kind")

    @property
    def error(self) -> dict:
        return (self.body or {}).get("error") or {}

    def __str__(self) -> str:
        return f"exit {self.rc} after {self.seconds:.1f} s: {self.body}\n{self.stderr[-3000:]}"


class Run:
    """One CLI command as its own process (inside the lab's namespace, when it has one)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.out, self.err = log.with_suffix(".out"), log.with_suffix(".err")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        self.started = time.monotonic()
        TALLY["runs"] += 1

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> Outcome:
        """The outcome; a command still running TIMEOUT seconds from now is killed: a hang."""
        try:
            rc = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            TALLY["hangs"] += 1
            pytest.fail(f"the command hung: still running after {timeout:g} s\n"
                        f"{self.err.read_text(errors='replace')[-3000:]}")
        lines = [ln for ln in self.out.read_text(errors="replace").splitlines()
                 if ln.startswith("{")]
        return Outcome(rc, json.loads(lines[-1]) if lines else None,
                       self.err.read_text(errors="replace"), time.monotonic() - self.started)

    def kill(self) -> None:
        if self.running():
            self.process.kill()
        self.process.wait(timeout=10)


@dataclass
class Lab:
    root: Path
    server: SshServer
    ns: Netns | None
    hosts: Path
    hold: Path
    env: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    @property
    def remote(self) -> Path:
        return self.root / "remote"

    # --- the laptop side ---------------------------------------------------------------
    def cli(self, *args: object, budget: float | None = None) -> Run:
        """`remote-sep ARGS --json` (REMOTE_SEP_RECONNECT_BUDGET=BUDGET when given)."""
        env = dict(self.env)
        if budget is not None:
            env["REMOTE_SEP_RECONNECT_BUDGET"] = str(budget)
        argv = [*CLI, *map(str, args), "--json"]
        log = self.root / f"run{len(self.runs)}"
        run = Run(self.ns.argv(argv) if self.ns else argv, env, self.root, log)
        self.runs.append(run)
        return run

    def separate(self, audio: Path, out: Path, *extra: object,
                 budget: float | None = None) -> Run:
        return self.cli("separate", audio, "--desc", "whistle", "--host", "gpu", "--out", out,
                        *extra, budget=budget)

    def batch(self, inputs: Path, out_dir: Path, budget: float | None = None) -> Run:
        return self.cli("batch", inputs, "--desc", "vocals", "--hosts", "gpu", "-o", out_dir,
                        budget=budget)

    def recorded_pid(self) -> int | None:
        """The remote pid in the local job record: set once `separate` is past the start."""
        for path in glob.glob(str(self.root / "state" / "jobs" / "*.json")):
            try:
                pid = json.loads(Path(path).read_text()).get("pid")
            except (OSError, ValueError):
                continue
            if pid:
                return pid
        return None

    # --- the remote side ---------------------------------------------------------------
    def hold_jobs(self) -> None:
        self.hold.write_text("")

    def release(self) -> None:
        self.hold.unlink(missing_ok=True)

    def jobs(self) -> list[Path]:
        folder = self.remote / "jobs"
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []

    def wait_event(self, name: str, timeout: float = 60, besides: tuple[Path, ...] = ()
                   ) -> Path:
        """The job folder (not one of BESIDES) whose events include NAME."""
        return wait_for(lambda: next((j for j in self.jobs() if j not in besides
                                      and any(e.get("event") == name for e in events(j))), None),
                        timeout, f"a {name} event")

    def kill_payload(self, job: Path) -> int:
        """SIGKILL the job's payload, by the pid in its folder."""
        pid = int(wait_for(lambda: (job / "pid").exists() and (job / "pid").read_text().strip(),
                           SLOW_S, "the job's pid file"))
        os.kill(pid, signal.SIGKILL)
        TALLY["faults injected"] += 1
        return pid

    def restart_sshd(self, down_s: float = 1.0) -> None:
        """Kill sshd and every link (by pid), then start it again: same port, same keys."""
        self.server.stop()
        TALLY["faults injected"] += 1
        time.sleep(down_s)
        if self.ns:
            self.ns.run_inside(self.server.start)
        else:
            self.server.start()

    def close(self) -> None:
        """Teardown: laptop processes, the hold, sshd, payloads still running (by pid)."""
        for run in self.runs:
            run.kill()
        self.release()
        self.server.stop()
        for job in self.jobs():
            try:
                pid = int((job / "pid").read_text())
                if b"remote_payload" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass


def start_lab(root: Path, ns: Netns | None = None, **payload_env: str) -> Lab:
    """sshd (inside NS when given), hosts.yaml `gpu` for it, the stand-in model, a hold."""
    root.mkdir(parents=True, exist_ok=True)
    server = ns.run_inside(lambda: start_sshd(root / "sshd")) if ns else start_sshd(root / "sshd")
    hold = root / "hold"
    env = {"PYTHONPATH": str(TESTS / "standins"), "SAM_STANDIN_HOLD": str(hold), **payload_env}
    hosts = write_hosts_file(root / "hosts.yaml", {"gpu": profile_for(
        server, root / "remote", env=env, connect_timeout=CONNECT_TIMEOUT_S)})
    laptop_env = {**os.environ, "REMOTE_SEP_HOSTS": str(hosts),
                  "REMOTE_SEP_STATE_DIR": str(root / "state")}
    return Lab(root, server, ns, hosts, hold, laptop_env)


# --- what was delivered ---------------------------------------------------------------------

def events(job: Path) -> list[dict]:
    try:
        text = (job / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def check_output(local: Path, expected_sha: str, frames: int) -> None:
    """One delivered file: present, the remote's bytes, as many frames as the input."""
    TALLY["outputs checked"] += 1
    problem = None
    if not local.is_file():
        problem = "missing"
    elif sha256(local) != expected_sha:
        problem = "not the remote's bytes"
    elif sf.info(str(local)).frames != frames:
        problem = f"{sf.info(str(local)).frames} frames, the input has {frames}"
    if problem:
        TALLY["outputs wrong"] += 1
        pytest.fail(f"{local}: {problem}")


def no_temp_files(folder: Path) -> None:
    leftovers = list(folder.glob(".*.part-*"))
    assert not leftovers, f"temp files left: {leftovers}"


def check_separate(lab: Lab, outcome: Outcome, audio: Path) -> list[Path]:
    """`separate`/`attach` delivered every output, each the remote copy's bytes."""
    assert outcome.rc == 0, str(outcome)
    result = outcome.body["result"]
    job = lab.remote / "jobs" / result["job_id"]
    frames = sf.info(str(audio)).frames
    delivered = []
    for entry in result["outputs"]:
        desc = int(entry["key"].split("/")[1])
        for kind in ("target", "residual"):
            local = Path(entry[kind])
            remote = job / "out" / f"d{desc}_{kind}.wav"
            assert entry[f"{kind}_sha256"] == sha256(remote)
            check_output(local, sha256(remote), frames)
            delivered.append(local)
    assert len(delivered) == 2
    no_temp_files(delivered[0].parent)
    return delivered


def check_nothing_final(*paths: Path) -> None:
    """After a failure: no file under a final output name at all."""
    present = [p for p in paths if p.exists()]
    assert not present, f"a failed command left outputs: {present}"
    for folder in {p.parent for p in paths if p.parent.exists()}:
        no_temp_files(folder)


def check_batch(lab: Lab, outcome: Outcome, out_dir: Path, units: int) -> None:
    """Every unit done (or done before), each output the bytes of a remote item_done file."""
    assert outcome.rc == 0, str(outcome)
    remote = {}
    for job in lab.jobs():
        for event in events(job):
            for info in (event.get("outputs") or {}).values() if event.get(
                    "event") == "item_done" else ():
                path = Path(info["path"]) if info["path"].startswith("/") else job / info["path"]
                remote[info["sha256"]] = sha256(path)
    items = outcome.body["result"]["items"]
    assert len(items) == units
    names = set()
    for item in items:
        assert item["status"] in ("done", "skipped"), item
        frames = sf.info(item["input"]).frames
        for output in item["outputs"].values():
            assert remote.get(output["sha256"]) == output["sha256"], "not a remote output"
            check_output(Path(output["path"]), output["sha256"], frames)
            names.add(Path(output["path"]).name)
    present = {p.name for p in out_dir.iterdir() if p.name != ".remote-sep-batch.json"}
    assert present == names and len(names) == 2 * units, present ^ names


def expect_failure(outcome: Outcome, kind: str) -> None:
    assert (outcome.rc, outcome.kind) == (EXIT_CODES[kind], kind), str(outcome)
    assert "Traceback" not in outcome.stderr, outcome.stderr


def side_by_side(**scenarios: Callable[[], None]) -> None:
    """Run independent scenarios at once (each waits mostly on TCP timers); fail with every
    scenario's error, named."""
    errors: dict[str, str] = {}

    def run(name: str, scenario: Callable[[], None]) -> None:
        try:
            scenario()
        except BaseException as exc:  # noqa: BLE001 - pytest.fail raises a BaseException
            errors[name] = "".join(traceback.format_exception(exc)[-3:])

    threads = [threading.Thread(target=run, args=item, name=item[0])
               for item in scenarios.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        pytest.fail("\n".join(f"[{name}] {text}" for name, text in errors.items()))
