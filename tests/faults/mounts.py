"""Real filesystem faults for tests: a tmpfs of a chosen size (a disk that fills up) and a
read-only bind mount (a folder nobody can write, root included). Needs root (CI runs as
root); a test skips with the reason when mounting is refused."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*argv: str) -> None:
    done = subprocess.run(["mount", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(argv)}): {done.stderr.strip()}")


def _umount(path: Path) -> None:
    # lazy: a process the test killed may still hold a file open for a moment
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """PATH becomes a tmpfs of SIZE (e.g. '2m', '160k'); yields PATH."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


def grow(path: Path, size: str) -> None:
    """Give a small_disk PATH a new SIZE, files kept (room freed for a rerun)."""
    _mount("-o", f"remount,size={size}", str(path))


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """PATH (created if missing) becomes a read-only bind mount of itself; yields PATH."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield path
    finally:
        _umount(path)


def fill(path: Path, leave_bytes: int = 0) -> None:
    """Fill the filesystem holding PATH (a folder) until at most LEAVE_BYTES are free."""
    import os

    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(path / ".filler", "wb") as f:
        with contextlib.suppress(OSError):
            f.write(b"\0" * max(0, free - leave_bytes))
