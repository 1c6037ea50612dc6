"""An upload that has been written to a temp name on a host but not yet renamed to its
final one: what was sent (size, sha256 hashed while sending) and the shell text that
checks what landed and only then renames it.

Why the check: paramiko drops the error replies of pipelined SFTP writes, so a disk that
fills up mid-upload leaves a short temp file and no error. `Host.put_file` runs the check in
one exec of its own; `separate` puts the same lines at the head of its start script, so a
new file costs no extra round trip (jobs/layout.py start_and_poll).
"""

from __future__ import annotations

from dataclasses import dataclass

from remote_sep.errors import TransferError
from remote_sep.hosts.base import FAST_SHA256_FN
from remote_sep.hosts.shell import quote
from remote_sep.hosts.space import did_not_fit, disk_full, free_bytes_script, parse_free

PLACED = "placed"  # the line the script prints once the file is under its final name


@dataclass(frozen=True)
class Landing:
    host: str  # the host's name, for messages
    tmp: str  # absolute temp path, a sibling of `final`
    final: str
    size: int  # bytes sent
    sha256: str | None  # of the bytes sent; None when the sending itself failed
    what: str  # "the upload of mix.wav", for messages

    @property
    def folder(self) -> str:
        return self.final.rpartition("/")[0] or "/"

    def script(self) -> str:
        """Shell lines: when the temp file has `size` bytes hashing to `sha256`, rename it
        and print PLACED; else remove it, print `landed <bytes|-1> <free bytes>` (and
        `sha <hex>` when only the content was wrong) and `exit 0`, so that nothing after
        these lines runs."""
        t, f = quote(self.tmp), quote(self.final)
        lines = [FAST_SHA256_FN.rstrip("\n"),
                 f"s=$(stat -c %s -- {t} 2>/dev/null || echo -1); h=''"]
        if self.sha256 is not None:
            lines += [
                f'if [ "$s" = {int(self.size)} ]; then h=$(sha256_of {t}); fi',
                f'if [ -n "$h" ] && [ "$h" = {quote(self.sha256.lower())} ] && '
                f"mv -f -- {t} {f}; then echo {PLACED}",
                "else",
            ]
        else:
            lines.append("if true; then")
        lines += [
            '  [ -n "$h" ] && printf "sha %s\\n" "$h"',
            f"  rm -f -- {t}",
            f'  printf "landed %s %s\\n" "$s" "$({free_bytes_script(self.folder)})"',
            "  exit 0",
            "fi",
        ]
        return "\n".join(lines) + "\n"

    def check(self, out: bytes) -> bool:
        """The script's answer: True once placed. Raises DiskFull when what landed was cut
        short by a disk without room for it, TransferError when it was wrong otherwise;
        returns False only for a landing whose sending failed (sha256 None) for another
        reason than the disk (the caller raises that failure)."""
        words = dict((line.split(" ", 1) + [""])[:2] for line in
                     out.decode("ascii", "replace").splitlines() if line.strip())
        if PLACED in words:
            return True
        landed_text, _, free_text = words.get("landed", "-1").partition(" ")
        landed = int(landed_text) if landed_text.lstrip("-").isdigit() else -1
        free = parse_free(free_text)
        if landed < self.size and did_not_fit(self.size, free):
            raise disk_full(self.host, self.what, need=self.size, free=free,
                            where=self.folder)
        if self.sha256 is None:
            return False
        if words.get("sha"):
            raise TransferError(f"{self.what} to {self.host} arrived with sha256 "
                                f"{words['sha']}, expected {self.sha256}; it was not kept",
                                hint="run the command again")
        raise TransferError(f"{self.what} to {self.host} stopped at {max(landed, 0)} of "
                            f"{self.size} bytes; it was not kept", hint="run the command again")
