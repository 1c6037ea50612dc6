"""Local output files: what `--out` names, and whether the folders can take the files,
checked before anything is uploaded (a job that cannot land its outputs is not started).

Used by `separate`, `attach` (jobs/separate.py) and `batch` (batch/fleet.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from remote_sep.errors import OutputUnwritable, RemoteSepError, local_write_error


def names_a_folder(out: str) -> bool:
    """`--out dir/` (a trailing slash) or an existing folder: the outputs go inside it."""
    return out.endswith(("/", os.sep)) or Path(out).expanduser().is_dir()


def absolute(path: str | os.PathLike[str]) -> Path:
    """`~` expanded and made absolute against the cwd of this command, so a record read by
    a later `attach` (from another folder) names the same files."""
    return Path(path).expanduser().absolute()


def local_error(exc: OSError, path: Path, hint: str | None = None) -> RemoteSepError:
    """The error for a failed local write: disk_full, else output_unwritable."""
    error = local_write_error(exc, path, hint)
    if error is None:  # an odd errno (EIO, ...): still the output's fault, not the link's
        error = OutputUnwritable(f"cannot write {path}: {exc.strerror or exc}", hint=hint)
        error.local = True
    return error


def check_writable(paths: Iterable[Path], hint: str | None = None) -> None:
    """Make each output's folder and write then remove a probe file there, named like the
    longest temp name a pull will use (``.<name>.part-<8 hex>``, ssh/transfer.py), so a
    read-only or unwritable folder, a full disk or a name too long fails now, with its own
    kind, and not after the remote job ran."""
    longest: dict[Path, str] = {}
    for path in paths:
        name = longest.get(path.parent)
        if name is None or len(path.name.encode()) > len(name.encode()):
            longest[path.parent] = path.name
    for folder, name in longest.items():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise local_error(exc, folder, hint) from None
        probe = folder / f".{name}.part-{secrets.token_hex(4)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"remote-sep probe")  # a full disk refuses the first byte
            finally:
                os.close(fd)
        except OSError as exc:
            raise local_error(exc, folder / name, hint) from None
        finally:
            try:
                probe.unlink(missing_ok=True)
            except OSError:
                pass  # e.g. the name is too long to exist at all
