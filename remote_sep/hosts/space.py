"""A host's disk filling up: telling it from other write failures, and saying so the same
way everywhere (kind disk_full, exit 11, the host and what did not fit named, the hint to
free space with `remote-sep clean`), for SSHHost and LocalHost alike.

Why free space is measured instead of read from error text: OpenSSH's sftp-server answers a
write refused for ENOSPC with a bare "Failure", GNU tar says "Wrote only 512 of 10240
bytes" and dash's echo says "I/O error". What the disk holds after the failure is the one
answer every tool agrees on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from remote_sep.errors import DiskFull, RemoteSepError, Unreachable
from remote_sep.hosts.shell import remote_path_expr

NO_SPACE_TEXT = ("No space left on device", "Disk quota exceeded")
# A write that failed while less than its size plus this was free failed for want of room.
SLACK = 1 << 20


def size_text(n: int) -> str:
    """1536 -> '1.5 KiB' (for messages)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def says_no_space(text: bytes | str) -> bool:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return any(marker in text for marker in NO_SPACE_TEXT)


def did_not_fit(need: int, free: int | None) -> bool:
    return free is not None and free < need + SLACK


def clean_hint(host: str) -> str:
    return (f"free space on {host}: `remote-sep clean {host} --cache --older-than 1d` removes "
            "finished jobs and cached uploads older than a day (--dry-run lists them first)")


def disk_full(host: str, what: str, *, need: int | None = None, free: int | None = None,
              where: str | None = None) -> DiskFull:
    """The one DiskFull for a host: 'no space left on HOST for WHAT (needs …, … free in …)'."""
    detail = []
    if need is not None:
        detail.append(f"needs {size_text(need)}")
    if free is not None:
        detail.append(f"{size_text(free)} free" + (f" in {where}" if where else ""))
    text = f" ({', '.join(detail)})" if detail else ""
    return DiskFull(f"no space left on {host} for {what}{text}", hint=clean_hint(host))


def free_bytes_script(path: str) -> str:
    """Prints the bytes free for a user on the filesystem holding PATH (its nearest existing
    parent when PATH is gone), or nothing when df cannot tell."""
    return (f"d={remote_path_expr(path)}; while [ ! -e \"$d\" ]; do "
            'case $d in */*) d=${d%/*};; *) d=.;; esac; [ -n "$d" ] || d=/; done; '
            "df -Pk -- \"$d\" 2>/dev/null | awk 'NR==2 {printf \"%.0f\\n\", $4 * 1024}'")


def parse_free(text: bytes | str) -> int | None:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    words = text.split()
    return int(words[-1]) if words and words[-1].isdigit() else None


def free_bytes(host, path: str) -> int | None:
    """Free bytes where PATH lives on HOST (one round trip); None when unknown."""
    try:
        return parse_free(host.run(free_bytes_script(path), check=False, timeout=60).stdout)
    except Exception:  # noqa: BLE001 - only asked to explain a failure; keep that one
        return None


@contextlib.contextmanager
def disk_full_on_failure(host, path: str, what: str, need: int = 0) -> Iterator[None]:
    """A write to PATH on HOST that fails (any RemoteSepError but a lost link) while the disk
    there has no room for NEED more bytes becomes DiskFull; other failures stay as they
    are. Costs a round trip only when something failed."""
    try:
        yield
    except DiskFull:
        raise
    except RemoteSepError as exc:
        if isinstance(exc, Unreachable):
            raise
        result = getattr(exc, "result", None)
        if result is not None and getattr(result, "exit_code", 0) < 0:
            raise  # timed out or cut off: not a write that failed
        stderr = getattr(result, "stderr", b"") if result is not None else b""
        free = free_bytes(host, path)
        if says_no_space(stderr) or did_not_fit(need, free):
            raise disk_full(host.name, what, need=need or None, free=free,
                            where=path) from None
        raise
