"""Batch throughput: (a) `remote-sep batch` vs (b) the seed's way, same run, same host.

    python3 bench/bench_batch.py [--n 50] [--delay-ms 0] [--seconds 0.5]

One loopback sshd (tests/sshd.py) and the stand-in model at zero cost (no slow-down knob):
(a) run_batch over N short files, one worker that loads the model once;
(b) per file, what a human with a script did before: scp the file up, ssh a fresh payload
    process (imports torch, loads the model) on a one-item manifest, scp both stems down.
Prints (a)'s amortized cost per item, its overhead per item (wall time minus the worker's
start-up and the payload's own per-item seconds), and the ratio (b)/(a).

``--delay-ms D`` puts a user-space TCP proxy in front of sshd that delays each direction
by D/2 ms (`tc netem` does not exist on this kernel: DESIGN.md §7).
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from batch_helpers import make_songs  # noqa: E402
from conftest import profile_for, write_hosts_file  # noqa: E402
from sshd import start_sshd  # noqa: E402

from remote_payload.manifest import Item, Manifest  # noqa: E402
from remote_sep import profiles  # noqa: E402
from remote_sep.batch.fleet import run_batch  # noqa: E402
from remote_sep.batch.plan import plan_batch  # noqa: E402
from remote_sep.ssh.host import connect  # noqa: E402

STANDINS = ROOT / "tests" / "standins"


class DelayProxy:
    """Loopback TCP proxy adding ``one_way_s`` to every byte in each direction."""

    def __init__(self, target_port: int, one_way_s: float):
        self.target_port, self.delay = target_port, one_way_s
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.sock.accept()
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, upstream)
            self._pipe(upstream, client)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        import queue

        pending: queue.Queue = queue.Queue()

        def read() -> None:
            while data := _recv(src):
                pending.put((time.monotonic() + self.delay, data))
            pending.put((time.monotonic() + self.delay, b""))

        def send() -> None:
            while True:
                due, data = pending.get()
                time.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    _shutdown(dst)
                    return
                try:
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=send, daemon=True).start()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 16)
    except OSError:
        return b""


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def seed_way(songs: list[Path], server, port: int, base: Path, out: Path) -> float:
    """(b): per file scp up, ssh a fresh payload process, scp down. Returns seconds."""
    ssh_opts = ["-i", str(server.user_key), "-o", f"UserKnownHostsFile={server.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-q"]
    target = f"{server.user}@127.0.0.1"
    env = f"PYTHONPATH={shlex.quote(f'{ROOT}:{STANDINS}')}"
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for i, song in enumerate(songs):
        job = base / f"seed-{i}"
        remote_in = job / "in.wav"
        manifest = Manifest(job_id=f"seed-{i}", items=[Item(
            id="i0", input=str(remote_in), descriptions=["vocals"], prefixes=["out/i0"])])
        subprocess.run(["ssh", *ssh_opts, "-p", str(port), target,
                        f"mkdir -p {shlex.quote(str(job))}"], check=True)
        subprocess.run(["scp", *ssh_opts, "-P", str(port), str(song),
                        f"{target}:{shlex.quote(str(remote_in))}"], check=True)
        run = (f"cd {shlex.quote(str(job))} && cat > manifest.json && {env} "
               f"{shlex.quote(sys.executable)} -m remote_payload run --manifest manifest.json "
               f"--events events.jsonl > /dev/null 2>&1")
        subprocess.run(["ssh", *ssh_opts, "-p", str(port), target, run],
                       input=manifest.to_json().encode(), check=True)
        for role in ("target", "residual"):
            subprocess.run(["scp", *ssh_opts, "-P", str(port),
                            f"{target}:{shlex.quote(str(job / f'out/i0_{role}.wav'))}",
                            str(out / f"{song.stem}_{role}.wav")], check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="round-trip delay added")
    parser.add_argument("--seconds", type=float, default=0.5, help="length of each file")
    parser.add_argument("--only-batch", action="store_true", help="skip (b)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    server = start_sshd(tmp / "sshd")
    try:
        port = server.port
        if args.delay_ms:
            proxy = DelayProxy(server.port, args.delay_ms / 2000)
            port = proxy.port
            line = server.known_hosts_line().replace(f"]:{server.port} ", f"]:{port} ")
            server.known_hosts.write_text(server.known_hosts.read_text() + line)
        songs = make_songs(tmp / "in", args.n, seconds=args.seconds, rate=48000)
        entry = profile_for(server, tmp / "remote", env={"PYTHONPATH": str(STANDINS)})
        entry["port"] = port
        hosts_file = write_hosts_file(tmp / "hosts.yaml", {"gpu": entry})
        profile = profiles.get_profile("gpu", hosts_file)

        plan = plan_batch([str(s) for s in songs], ["vocals"], tmp / "out-a")
        started = time.monotonic()
        report = run_batch(plan, [profile], {}, connect=connect)
        batch_s, ended_wall = time.monotonic() - started, time.time()
        assert report.ok, report.failed
        (job,) = (tmp / "remote" / "jobs").iterdir()
        events = [json.loads(x) for x in (job / "events.jsonl").read_text().splitlines()]
        item_s = sum(e.get("seconds") or 0 for e in events if e["event"] == "item_done")
        first = next(e["t"] for e in events if e["event"] == "item_start")
        startup_s = first - (job / "manifest.json").stat().st_mtime
        seed_s = 0.0 if args.only_batch else \
            seed_way(songs, server, port, tmp / "remote-seed", tmp / "out-b")
        gaps = [b["t"] - a["t"] for a, b in zip(events, events[1:], strict=False)
                if a["event"] == "item_done" and b["event"] == "item_start"]
        print(f"(a) worker idle between items: mean {sum(gaps) / max(1, len(gaps)) * 1000:.0f} ms,"
              f" max {max(gaps, default=0) * 1000:.0f} ms; tail after the last item_done "
              f"{ended_wall - max(e['t'] for e in events if e['event'] == 'item_done'):.2f} s")
    finally:
        server.stop()
    n = args.n
    overhead_ms = max(0.0, batch_s - startup_s - item_s) / n * 1000
    print(f"N={n} files of {args.seconds:g} s, added round-trip delay {args.delay_ms:g} ms")
    print(f"(a) remote-sep batch: {batch_s:.2f} s total, {batch_s / n * 1000:.1f} ms/item "
          f"amortized; worker start-up {startup_s:.2f} s, payload compute "
          f"{item_s / n * 1000:.1f} ms/item; overhead {overhead_ms:.1f} ms/item (goal <= 50)")
    print(f"(b) seed's way (scp up, fresh payload process, scp down): {seed_s:.2f} s total, "
          f"{seed_s / n * 1000:.0f} ms/item")
    if seed_s:
        print(f"ratio (b)/(a) = {seed_s / batch_s:.1f} (goal >= 5)")


if __name__ == "__main__":
    main()
