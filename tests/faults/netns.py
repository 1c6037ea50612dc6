"""Real network faults for tests: a network namespace of its own (only `lo`, so everything
in it is 127.0.0.1 and nothing reaches another machine) and nft rules inside it that drop
packets (a blackholed link: nothing is refused, nothing answers) or throttle them.

    with network_namespace() as ns:
        server = ns.run_inside(lambda: start_sshd(root))   # sshd listens inside it
        laptop = subprocess.Popen(ns.argv([python, "-m", ...]))   # so does the laptop side
        ns.blackhole(server.port)       # both directions dropped, SYNs counted
        ns.syn_attempts()               # > 0: the laptop gave the old link up, redials
        ns.lift()

Needs root, `ip` (iproute2) and `nft` (nftables); a test skips with the reason otherwise.
Teardown kills every process left in the namespace by pid (`ip netns pids`), then deletes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import pytest

T = TypeVar("T")
TABLE = "remote_sep_fault"
CLONE_NEWNET = 0x40000000
_names = itertools.count()


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {done.stderr.strip()}")
    return done


class Netns:
    """One network namespace, named NAME under /run/netns."""

    def __init__(self, name: str):
        self.name = name

    def argv(self, argv: Sequence[str]) -> list[str]:
        """ARGV run inside the namespace (`ip netns exec` execs it: the pid is ARGV's)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run_inside(self, fn: Callable[[], T]) -> T:
        """FN() on a thread that entered the namespace: sockets it opens and processes it
        starts live there. So tests/sshd.py starts (and probes) its sshd inside unchanged."""
        box: dict = {}

        def target() -> None:
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:  # setns(2) moves only this thread; it ends with FN
                    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(fd)
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"in-{self.name}")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def nft(self, script: str) -> str:
        done = subprocess.run(self.argv(["nft", "-f", "-"]), input=script, text=True,
                              capture_output=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"nft failed: {done.stderr.strip()}\n{script}")
        return done.stdout

    def _rules(self, *rules: str) -> None:
        self.lift()
        body = "\n".join(f"    {rule}" for rule in rules)
        # Dropped on the way IN, like packets lost on the wire: the sender's TCP counts them
        # as sent and retransmits. (A drop in the output hook is an error to the sending
        # socket, which then waits on its zero-window probe timer: not a real dead link.)
        # Everything here crosses `lo`, so the input hook sees both directions.
        self.nft(f"table inet {TABLE} {{\n  chain out {{\n"
                 f"    type filter hook input priority 0; policy accept;\n{body}\n  }}\n}}\n")

    def blackhole(self, port: int) -> None:
        """Drop every packet to and from PORT; count new connection attempts (SYNs)."""
        self._rules(f"tcp dport {port} tcp flags & (syn | ack) == syn counter drop",
                    f"tcp dport {port} drop", f"tcp sport {port} drop")

    def throttle(self, port: int, kbytes_per_s: int) -> None:
        """A slow link toward PORT: packets over the rate are dropped (TCP backs off)."""
        self._rules(f"tcp dport {port} limit rate over {kbytes_per_s} kbytes/second "
                    f"burst 64 kbytes drop")

    def syn_attempts(self) -> int:
        """Connection attempts the blackhole has dropped so far."""
        done = subprocess.run(self.argv(["nft", "-j", "list", "table", "inet", TABLE]),
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            return 0
        count = 0
        for entry in json.loads(done.stdout)["nftables"]:
            for expr in entry.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    count += int(expr["counter"]["packets"])
        return count

    def lift(self) -> None:
        """Remove every fault rule (the link works again)."""
        subprocess.run(self.argv(["nft", "delete", "table", "inet", TABLE]),
                       capture_output=True, timeout=30)

    def pids(self) -> list[int]:
        return [int(p) for p in _ip("netns", "pids", self.name, check=False).stdout.split()]

    def destroy(self) -> None:
        """Kill what still runs inside (by pid), then delete the namespace."""
        deadline = time.monotonic() + 10
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        _ip("netns", "del", self.name, check=False)


@contextlib.contextmanager
def network_namespace(prefix: str = "rsf") -> Iterator[Netns]:
    """A fresh namespace with only `lo` up; deleted (its processes killed) afterwards."""
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` not found (scripts/test.sh installs iproute2 and nftables)")
    ns = Netns(f"{prefix}-{os.getpid()}-{next(_names)}")
    made = _ip("netns", "add", ns.name, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        _ip("-n", ns.name, "link", "set", "lo", "up")
        yield ns
    finally:
        ns.destroy()
