"""The remote cache of uploads, ``P/cache/<sha256><ext>``: content addressed, so a file is
uploaded once per host; and checked before every use, so a file cut short (a disk that
filled up under an older remote-sep, a copy interrupted outside it) is never separated.

Uploads land there only after their size and sha256 were checked on the host (Host.put_file,
batch/worker_job.py's bundles). Interrupted uploads leave ``.<name>.part-<token>`` temp files
beside them, which `remote-sep clean --cache` removes once stale (jobs/cleanup.py).
"""

from __future__ import annotations

from remote_sep.hosts.base import FAST_SHA256_FN
from remote_sep.hosts.shell import quote

VERIFIED_DIR = "cache-verified"  # P/cache-verified/<name>: markers (see CACHE_OK_FN)

# "Is this cache file a whole copy?" Its name is its sha256 (`<sha256><ext>`): the size must
# be the one the laptop has, and the content must hash to the name. Hashing a big file on
# every use is slow, so a verified file gets a marker `P/cache-verified/<name>` holding its
# size, inode, mtime and ctime (to the nanosecond); while those stay the same the hash is
# not redone. A file replaced, rewritten or cut short since is hashed again.
CACHE_OK_FN = FAST_SHA256_FN + (
    "cache_ok() {\n"  # $1: cache file path, $2: expected size in bytes or -
    "  st=$(stat -c '%s %i %y %z' -- \"$1\" 2>/dev/null) || return 1\n"
    "  [ \"$2\" = - ] || [ \"${st%% *}\" = \"$2\" ] || return 1\n"
    "  n=${1##*/}; v=${1%/*}; v=${v%/*}/@V@; m=$v/$n\n"
    "  [ \"$(cat -- \"$m\" 2>/dev/null)\" = \"$st\" ] && return 0\n"
    "  [ \"$(sha256_of \"$1\")\" = \"${n%%.*}\" ] || return 1\n"
    # the marker is a shortcut only: on a full disk it is simply not written
    "  { mkdir -p -- \"$v\" && printf '%s\\n' \"$st\" > \"$m.$$\" &&\n"
    "    mv -f -- \"$m.$$\" \"$m\"; } 2>/dev/null || rm -f -- \"$m.$$\"\n"
    "  return 0\n"
    "}\n"
).replace("@V@", VERIFIED_DIR)


def check_script(cache_dir: str) -> str:
    """Reads `<name> <size>` lines on stdin; prints each name whose cache file is a whole
    copy (one round trip for a whole batch of inputs)."""
    return (CACHE_OK_FN + f"C={quote(cache_dir)}\n"
            'while read -r n s; do cache_ok "$C/$n" "$s" && printf "%s\\n" "$n"; done\n'
            "exit 0\n")
