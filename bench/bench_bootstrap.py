"""Second `bootstrap` on a provisioned host vs one `ssh host true`, same run, loopback sshd.

Provisions a test host once (offline overrides: torch==2.13.0 CPU wheel, the stand-in
sam_audio, --cpu, a local Hub stand-in), then times N repeats of:
  ssh      `ssh -p PORT host true` (OpenSSH client: connect + auth + one command)
  core     connect() + bootstrap() in this process (what `separate` pays, minus Python startup)
  cli      `remote-sep bootstrap NAME` as a fresh process (what a user waits for)
and prints medians and ratios against ssh (goal: cli <= 3x).
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


def main(repeats: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-bootstrap-"))
    server = start_sshd(work / "sshd")
    try:
        with HubStandin() as hub:
            entry = profile_for(server, work / "base", hf_home=str(work / "hf"),
                                env={"HF_ENDPOINT": hub.url}, torch_spec="torch==2.13.0",
                                torch_index="none", sam_audio_spec=str(ROOT / "tests/standins"))
            hosts = write_hosts_file(work / "hosts.yaml", {"bench": entry})
            env = {**os.environ, "REMOTE_SEP_HOSTS": str(hosts), "HF_TOKEN": GOOD_TOKEN,
                   "REMOTE_SEP_STATE_DIR": str(work / "state")}
            cli = [sys.executable, "-c", "from remote_sep.cli.main import main; main()",
                   "bootstrap", "bench", "--cpu"]
            print("provisioning the test host (first bootstrap) ...", flush=True)
            first = timed(lambda: subprocess.run(cli, env=env, check=True,
                                                 capture_output=True))
            print(f"first bootstrap: {first:.1f} s")
            ssh = ["ssh", "-p", str(server.port), "-i", str(server.user_key),
                   "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "BatchMode=yes",
                   "-o", "StrictHostKeyChecking=yes", f"{server.user}@127.0.0.1", "true"]
            profile = profiles.get_profile("bench", hosts)

            def core() -> None:
                with connect(profile) as host:
                    result = bootstrap(host, profile, cpu=True)
                    assert result.up_to_date and host.round_trips == 1

            runs = {"ssh": [], "core": [], "cli": []}
            for _ in range(repeats):  # interleaved so drift hits all three alike
                runs["ssh"].append(timed(lambda: subprocess.run(ssh, check=True)))
                runs["core"].append(timed(core))
                runs["cli"].append(timed(lambda: subprocess.run(cli, env=env, check=True,
                                                                capture_output=True)))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    ref = statistics.median(runs["ssh"])
    print(f"{'what':6} {'median s':>9} {'min s':>7} {'x ssh':>6}")
    for name, values in runs.items():
        med = statistics.median(values)
        print(f"{name:6} {med:9.3f} {min(values):7.3f} {med / ref:6.2f}")
    ratio = statistics.median(runs["cli"]) / ref
    print(f"second bootstrap (cli) / ssh true = {ratio:.2f}x (goal <= 3x): "
          f"{'met' if ratio <= 3 else 'NOT met'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
