"""SSH round trips of one `separate` on a provisioned host (goal: <= 6), counted by
Host.round_trips against a loopback sshd with the stand-in model.

    python3 bench/bench_roundtrips.py [--seconds 3]

Three runs on the same host, each printed with its count:
  first   : payload not yet synced, audio not cached (a host just bootstrapped)
  new file: payload synced, a new audio file uploaded (the usual case)
  cached  : the same audio again (upload skipped)
Following costs one long poll per burst of events (POLL_SETTLE_S), so the count of a long
job grows with its duration; the setup and transfer part is fixed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from sshd import start_sshd  # noqa: E402

from remote_sep.hosts.profile import HostProfile  # noqa: E402
from remote_sep.jobs.separate import SeparateOptions, run_separate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="audio length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["REMOTE_SEP_STATE_DIR"] = str(root / "state")
        server = start_sshd(root / "sshd")
        try:
            profile = HostProfile(
                name="bench", host=server.host, port=server.port, user=server.user,
                key_files=[str(server.user_key)], known_hosts=[str(server.known_hosts)],
                path=str(root / "remote"), python=sys.executable,
                env={"PYTHONPATH": str(ROOT / "tests" / "standins")})
            rate = 48000
            t = np.arange(int(args.seconds * rate)) / rate
            runs = []
            for label, phase in (("first", 0.0), ("new file", 1.0), ("cached", 1.0)):
                audio = root / f"in_{label.replace(' ', '_')}.wav"
                sf.write(audio, 0.3 * np.sin(2 * np.pi * (220 + 100 * phase) * t), rate)
                opts = SeparateOptions(["whistle"], force=True,
                                       out=str(root / f"out_{len(runs)}"))
                result = run_separate(audio, profile, opts)
                runs.append((label, result["round_trips"], result["seconds"]))
        finally:
            server.stop()
    for label, trips, seconds in runs:
        print(f"{label:9s} round_trips={trips:2d}  ({seconds:.2f} s)")
    usual = runs[1][1]
    print(f"separate on a provisioned host: {usual} round trips (goal <= 6): "
          f"{'OK' if usual <= 6 else 'over'}")


if __name__ == "__main__":
    main()
