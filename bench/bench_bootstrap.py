"""First and repeat `bootstrap`, uv vs pip, against `ssh host true`, same run, loopback sshd.

Provisions two fresh test hosts (base paths) on one loopback sshd, one with `installer: uv`
and one with `installer: pip`, each from cold caches (uv's cache lives in P/tools/uv-cache,
pip runs with PIP_NO_CACHE_DIR), with the offline overrides (torch==2.13.0 CPU wheel from
the host's pip find-links, the stand-in sam_audio, --cpu, a local Hub stand-in). Then times
N interleaved repeats of:
  ssh      `ssh -p PORT host true` (OpenSSH client: connect + auth + one command): the floor
  core-uv  connect() + bootstrap() in this process on the uv host (what `separate` pays)
The first bootstraps run in this process too (connect() + bootstrap(), per-step times).
  cli-uv / cli-pip   `remote-sep bootstrap NAME` as a fresh process (what a user waits for)
and prints the first bootstraps (goal: uv <= 20 s), their ratio, and the repeats against ssh.
Usage: python bench/bench_bootstrap.py [N]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import profile_for, write_hosts_file  # noqa: E402
from hub_standin import GOOD_TOKEN, HubStandin  # noqa: E402
from sshd import start_sshd  # noqa: E402

from remote_sep import profiles  # noqa: E402
from remote_sep.provision.apply import bootstrap  # noqa: E402
from remote_sep.ssh.host import connect  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def first_bootstrap(profile) -> tuple[float, dict[str, float]]:
    """connect() + bootstrap() on a fresh host; the total and each step's seconds."""
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def report(event: dict) -> None:
        now = time.perf_counter()
        if event.get("event") == "step_start":
            marks[event["step"]] = now
        elif event.get("event") == "step_done" and event["step"] in marks:
            marks[event["step"]] = now - marks[event["step"]]
        elif event.get("event") == "torch_choice":
            marks["inspect"] = now - start

    with connect(profile) as host:
        bootstrap(host, profile, cpu=True, token_source=lambda has_token: GOOD_TOKEN,
                  report=report)
    return time.perf_counter() - start, marks


def main(repeats: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-bootstrap-"))
    server = start_sshd(work / "sshd")
    try:
        with HubStandin() as hub:
            entries = {}
            for name in ("uv", "pip"):
                entry = profile_for(server, work / f"base-{name}", hf_home=str(work / "hf"),
                                    env={"HF_ENDPOINT": hub.url, "PIP_NO_CACHE_DIR": "1"},
                                    torch_spec="torch==2.13.0", torch_index="none",
                                    sam_audio_spec=str(ROOT / "tests/standins"), installer=name)
                entry.pop("python")
                entries[f"bench-{name}"] = entry
            hosts = write_hosts_file(work / "hosts.yaml", entries)
            env = {**os.environ, "REMOTE_SEP_HOSTS": str(hosts), "HF_TOKEN": GOOD_TOKEN,
                   "REMOTE_SEP_STATE_DIR": str(work / "state")}

            def cli(name: str) -> list[str]:
                return [sys.executable, "-c", "from remote_sep.cli.main import main; main()",
                        "bootstrap", f"bench-{name}", "--cpu"]

            first, steps = {}, {}
            for name in ("uv", "pip"):
                print(f"first bootstrap with {name} ...", flush=True)
                first[name], steps[name] = first_bootstrap(profiles.get_profile(
                    f"bench-{name}", hosts))
                print(f"  {first[name]:.1f} s: " + ", ".join(
                    f"{step} {secs:.1f}" for step, secs in steps[name].items()), flush=True)
            ssh = ["ssh", "-p", str(server.port), "-i", str(server.user_key),
                   "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "BatchMode=yes",
                   "-o", "StrictHostKeyChecking=yes", f"{server.user}@127.0.0.1", "true"]
            profile = profiles.get_profile("bench-uv", hosts)

            def core() -> None:
                with connect(profile) as host:
                    result = bootstrap(host, profile, cpu=True)
                    assert result.up_to_date and host.round_trips == 1

            runs: dict[str, list[float]] = {"ssh": [], "core-uv": [], "cli-uv": [], "cli-pip": []}
            for _ in range(repeats):  # interleaved so drift hits all alike
                runs["ssh"].append(timed(lambda: subprocess.run(ssh, check=True)))
                runs["core-uv"].append(timed(core))
                for name in ("uv", "pip"):
                    runs[f"cli-{name}"].append(timed(lambda n=name: subprocess.run(
                        cli(n), env=env, check=True, capture_output=True)))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nfirst bootstrap: uv {first['uv']:.1f} s, pip {first['pip']:.1f} s "
          f"(pip / uv = {first['pip'] / first['uv']:.2f}x); goal uv <= 20 s: "
          f"{'met' if first['uv'] <= 20 else 'NOT met'}")
    ref = statistics.median(runs["ssh"])
    print(f"\nrepeat bootstrap ({repeats} runs)\n{'what':8} {'median s':>9} {'min s':>7} "
          f"{'x ssh':>6}")
    for name, values in runs.items():
        med = statistics.median(values)
        print(f"{name:8} {med:9.3f} {min(values):7.3f} {med / ref:6.2f}")
    ratio = statistics.median(runs["cli-uv"]) / ref
    print(f"second bootstrap (cli-uv) / ssh true = {ratio:.2f}x (goal <= 3x): "
          f"{'met' if ratio <= 3 else 'NOT met'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
