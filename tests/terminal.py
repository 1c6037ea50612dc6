"""Run a command on a real pseudo-terminal and answer its questions in turn."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time


def converse(argv: list[str], env: dict[str, str], answers: list[tuple[str, str]],
             timeout: float = 60) -> tuple[int, str]:
    """(exit code, everything printed). Each (prompt, answer) is answered once, in order,
    when its prompt text appears; the command is killed at the timeout (exit -9)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env,
                            close_fds=True)
    os.close(follower)
    output, pending, seen = b"", list(answers), 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the command exited and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if pending and pending[0][0].encode() in output[seen:]:
                seen = output.index(pending[0][0].encode(), seen) + 1
                os.write(leader, pending.pop(0)[1].encode() + b"\r")
            if proc.poll() is not None and not ready:
                break
        else:
            proc.kill()
        code = proc.wait(timeout=10)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return code, output.decode("utf-8", "replace")
