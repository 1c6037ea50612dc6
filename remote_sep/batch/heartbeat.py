"""The laptop's heartbeat for a batch worker, so that a worker orphaned by a dead laptop
frees the GPU.

The worker retires by itself once ``<job>/heartbeat`` is older than its
``worker_idle_timeout`` (remote_payload/runner.py). The event stream keeps that file fresh
at no extra round trip: ``follow_script`` runs a loop beside ``tail`` that touches it every
``beat_interval`` and writes one NUL byte to the stream, so a closed channel (the laptop
went away) ends the loop with EPIPE; the loop is killed when tail ends. The byte is
dropped by ``drop_beats`` before the stream is parsed: JSON text never holds a NUL (json
escapes it), so it is recognised wherever it lands, even inside a line tail is writing,
and the byte offsets of the events file stay exact. Without a stream (polling by SFTP)
the caller touches the file itself with ``touch_script``.
"""

from __future__ import annotations

from remote_payload.protocol import HEARTBEAT_FILE, HEARTBEAT_S
from remote_sep.hosts.shell import quote

BEAT = b"\0"


def beat_interval(idle_timeout: float) -> float:
    """Seconds between heartbeats: HEARTBEAT_S, less for a short idle timeout (four beats
    per timeout, so one late beat never retires a worker whose laptop is there)."""
    if idle_timeout <= 0:
        return HEARTBEAT_S
    return max(0.1, min(HEARTBEAT_S, idle_timeout / 4))


def heartbeat_path(job_dir: str) -> str:
    return f"{job_dir}/{HEARTBEAT_FILE}"


def follow_script(events: str, heartbeat: str, offset: int, pid: int,
                  idle_timeout: float) -> str:
    """Stream ``events`` from byte ``offset`` until process ``pid`` exits (GNU tail,
    inotify), with the heartbeat loop beside it. The loop holds the channel only on fd 3
    (its children close it), so the stream ends as soon as tail does."""
    return "\n".join([
        f"H={quote(heartbeat)}",
        "beat() {",
        "  while :; do",
        '    touch "$H" 3>&-',
        "    printf '\\000' >&3 || exit 0",
        f"    sleep {beat_interval(idle_timeout):g} 3>&-",
        "  done",
        "}",
        "beat 3>&1 >/dev/null 2>&1 &",
        "B=$!",
        f"tail -c +{int(offset) + 1} --pid={int(pid)} -s 0.1 -f {quote(events)}",
        'kill "$B" 2>/dev/null',
        ""])


def drop_beats(data: bytes) -> bytes:
    """The stream's bytes without the heartbeat's: exactly the events file's bytes."""
    return data.replace(BEAT, b"")


def touch_script(heartbeat: str) -> str:
    return f"touch {quote(heartbeat)}"
