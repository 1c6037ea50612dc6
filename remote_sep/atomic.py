"""Write a local file so that its final name only ever holds a complete version."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomic(file: Path, text: str, *, new_mode: int = 0o644) -> Path:
    """Write ``text`` to a unique temp name beside ``file``, fsync, rename over it.

    An existing file keeps its permission bits; a new one gets ``new_mode``. On any
    failure the temp file is removed and ``file`` is left as it was.
    """
    file.parent.mkdir(parents=True, exist_ok=True)
    mode = file.stat().st_mode & 0o777 if file.exists() else new_mode
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file
