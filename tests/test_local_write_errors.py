"""errors.local_write_error: a local OSError becomes disk_full or output_unwritable, never a
link error (a reconnect cannot fix it)."""

from __future__ import annotations

import errno

from remote_payload.protocol import EXIT_CODES
from remote_sep.errors import local_write_error
from remote_sep.jobs.follow import is_link_error


def test_classification():
    full = local_write_error(OSError(errno.ENOSPC, "No space left on device"), "/o/x.wav")
    assert full.kind == "disk_full" and full.exit_code == EXIT_CODES["disk_full"] == 11
    assert "/o/x.wav" in full.message
    for code in (errno.EROFS, errno.EACCES, errno.ENAMETOOLONG):
        err = local_write_error(OSError(code, "x"), "/o/x.wav")
        assert err.kind == "output_unwritable" and err.exit_code == 20
        assert not is_link_error(err)
    assert local_write_error(OSError(errno.ECONNRESET, "reset"), "/o") is None
