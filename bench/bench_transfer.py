"""Upload + download of a 200 MB file to a loopback sshd: remote-sep's transfers against
OpenSSH `scp`, measured in the same run. Goal: ratio >= 0.9.

    python3 bench/bench_transfer.py [--mb 200] [--repeat 3]

Prints MB/s of each direction for both, and ratio = scp time / our time for the round trip
(put + get), best of --repeat. Our get includes its sha256 check (part of what we ship).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from sshd import start_sshd  # noqa: E402

from remote_sep.hosts.profile import HostProfile  # noqa: E402
from remote_sep.ssh.host import connect  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def scp_argv(server) -> list[str]:
    return ["scp", "-q", "-P", str(server.port), "-i", str(server.user_key),
            "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "GlobalKnownHostsFile=/dev/null"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp_text:
        tmp = Path(tmp_text)
        server = start_sshd(tmp / "sshd")
        try:
            src = tmp / "src.bin"
            with open(src, "wb") as out:
                for _ in range(args.mb):
                    out.write(os.urandom(1_000_000))
            remote_dir = tmp / "remote"
            remote_dir.mkdir()
            target = f"{server.user}@127.0.0.1"
            profile = HostProfile(name="bench", host="127.0.0.1", port=server.port,
                                  user=server.user, key_files=[str(server.user_key)],
                                  known_hosts=[str(server.known_hosts)])
            best = {"scp_put": 1e9, "scp_get": 1e9, "our_put": 1e9, "our_get": 1e9}
            host = connect(profile)
            scp = scp_argv(server)
            try:
                for _ in range(args.repeat):
                    best["scp_put"] = min(best["scp_put"], timed(lambda: subprocess.run(
                        [*scp, str(src), f"{target}:{remote_dir}/scp.bin"], check=True)))
                    best["scp_get"] = min(best["scp_get"], timed(lambda: subprocess.run(
                        [*scp, f"{target}:{remote_dir}/scp.bin", str(tmp / "scp-back.bin")],
                        check=True)))
                    best["our_put"] = min(best["our_put"], timed(
                        lambda: host.put_file(src, f"{remote_dir}/our.bin")))
                    best["our_get"] = min(best["our_get"], timed(
                        lambda: host.get_file(f"{remote_dir}/our.bin", tmp / "our-back.bin")))
                    for name in ("scp-back.bin", "our-back.bin"):
                        (tmp / name).unlink()
            finally:
                host.close()
        finally:
            server.stop()
    mb = size / 1e6
    for key, seconds in best.items():
        print(f"{key:8s} {mb / seconds:8.1f} MB/s  ({seconds:.3f} s)")
    scp_total = best["scp_put"] + best["scp_get"]
    our_total = best["our_put"] + best["our_get"]
    print(f"put ratio {best['scp_put'] / best['our_put']:.2f}  "
          f"get ratio {best['scp_get'] / best['our_get']:.2f}")
    print(f"ratio (ours / scp throughput, put+get) {scp_total / our_total:.2f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
