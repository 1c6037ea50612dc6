"""What SSHHost (ssh/host.py) and LocalHost (hosts/local.py) share: the Host interface, the
result type, and the shell text both of them send, so the two behave alike.

No paramiko here: LocalHost imports this without pulling in the SSH stack.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from remote_sep.errors import RemoteSepError
from remote_sep.hosts.shell import quote, quote_argv

if TYPE_CHECKING:
    from remote_sep.hosts.landing import Landing

Progress = Callable[[int, int], None]  # (bytes done, bytes total)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
STDERR_TAIL = 2000  # characters of stderr quoted in a failed command's message


@dataclass
class RunResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def text(self) -> str:
        """stdout decoded (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")


class RemoteCommandError(RemoteSepError):
    """A command run with check=True exited non-zero."""

    kind = "internal"

    def __init__(self, message: str, result: RunResult, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.result = result


class Stream(Protocol):
    """A running command's stdout as it comes (``Host.stream``): for following a file."""

    def read(self) -> bytes: ...  # blocks; b"" once the command ended (a lost link raises)
    def close(self) -> None: ...  # ends the command; safe from another thread


class Host(Protocol):
    """The one interface the rest of remote-sep uses to reach a host (see ARCHITECTURE.md)."""

    name: str
    round_trips: int

    def run(self, argv: Sequence[str] | str, *, stdin: bytes | None = None,
            timeout: float | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> RunResult: ...
    def start_detached(self, argv: Sequence[str], *, cwd: str, log: str, pid_file: str,
                       env: Mapping[str, str] | None = None) -> int: ...
    def put_file(self, local: Path, remote: str, *, progress: Progress | None = None,
                 sha256: str | None = None) -> None: ...
    def send_file(self, local: Path, remote: str, *, progress: Progress | None = None,
                  sha256: str | None = None) -> Landing: ...
    def get_file(self, remote: str, local: Path, *, expected_sha256: str | None = None,
                 progress: Progress | None = None) -> str: ...
    def write_bytes(self, remote: str, data: bytes, *, mode: int = 0o644) -> None: ...
    def read_bytes(self, remote: str, offset: int = 0, limit: int | None = None) -> bytes: ...
    def size(self, remote: str) -> int | None: ...
    def sha256(self, remote: str) -> str | None: ...
    def mkdirs(self, remote: str, mode: int = 0o755) -> None: ...
    def expand(self, path: str) -> str: ...
    def stream(self, command: str) -> Stream: ...
    def close(self) -> None: ...
    def __enter__(self) -> Host: ...
    def __exit__(self, *exc: object) -> None: ...


def command_text(argv: Sequence[str] | str) -> str:
    """argv list -> one shell-quoted line; a str is a script the caller already quoted."""
    if isinstance(argv, str):
        return argv
    if not argv:
        raise ValueError("empty command")
    return quote_argv(str(a) for a in argv)


def env_prefix(env: Mapping[str, str] | None) -> str:
    """`export K='v' …; ` for non-secret variables (they are visible in `ps` on the host)."""
    if not env:
        return ""
    parts = []
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"not an environment variable name: {key!r}")
        parts.append(f"{key}={quote(str(value))}")
    return "export " + " ".join(parts) + "; "


def full_command(argv: Sequence[str] | str, env: Mapping[str, str] | None) -> str:
    return env_prefix(env) + command_text(argv)


def detached_script(argv: Sequence[str], *, cwd: str, log: str, pid_file: str,
                    env: Mapping[str, str] | None = None) -> str:
    """Shell text that starts argv in its own session, immune to the link dropping.

    `trap '' HUP` + setsid + nohup: no SIGHUP reaches the job when the SSH session (or its
    sshd) dies; all three std streams are redirected so the channel closes at once. In a
    non-interactive shell a background job is not a group leader, so setsid/nohup exec in
    place and `$!` is the job's own pid. Prints the pid.
    """
    return (
        f"trap '' HUP; cd {quote(cwd)} || exit 97; {env_prefix(env)}"
        f"setsid nohup {command_text(argv)} > {quote(log)} 2>&1 < /dev/null & "
        f"echo $! > {quote(pid_file)}; echo $!"
    )


def sha256_script(path: str) -> str:
    """Prints `<hex>` of a file, or MISSING; sha256sum when present, python3 otherwise."""
    q = quote(path)
    py = (
        "import hashlib,sys\nh=hashlib.sha256()\nwith open(sys.argv[1],'rb') as f:\n"
        " for b in iter(lambda: f.read(1<<20), b''): h.update(b)\nprint(h.hexdigest())"
    )
    return (
        f"if [ ! -f {q} ]; then echo MISSING; "
        f"elif command -v sha256sum >/dev/null 2>&1; then sha256sum < {q}; "
        f"else python3 -c {quote(py)} {q}; fi"
    )


# `sha256_of FILE` -> its hex digest, by the fastest tool the host has: coreutils'
# sha256sum has no SHA-NI code (measured here: 100 MB in 1.15 s, openssl 0.13 s, python3's
# hashlib 0.4 s with its start), and big uploads are hashed on the host before they land.
FAST_SHA256_FN = (
    "sha256_of() {\n"
    "  { openssl dgst -sha256 -r \"$1\" 2>/dev/null || python3 -c 'import hashlib, sys\n"
    "h = hashlib.sha256()\n"
    "with open(sys.argv[1], \"rb\") as f:\n"
    "    for b in iter(lambda: f.read(1 << 20), b\"\"): h.update(b)\n"
    "print(h.hexdigest())' \"$1\" 2>/dev/null || sha256sum < \"$1\"; } | cut -d' ' -f1\n"
    "}\n"
)


def parse_sha256_output(out: bytes) -> str | None:
    text = out.decode("ascii", "replace").strip()
    if text == "MISSING" or not text:
        return None
    return text.split()[0].lower()


def check_result(host: str, argv: Sequence[str] | str, result: RunResult) -> RunResult:
    """Raise RemoteCommandError naming the command and quoting the end of its stderr."""
    if result.exit_code == 0:
        return result
    name = argv.split(None, 1)[0] if isinstance(argv, str) and argv.strip() else (
        str(argv[0]) if not isinstance(argv, str) else "script")
    tail = result.stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:]
    message = f"{name} failed on {host} (exit {result.exit_code})"
    if tail:
        message += f": {tail}"
    raise RemoteCommandError(message, result)


def tmp_name(path: str, token: str) -> str:
    """A sibling temp name (same directory, so the final rename is atomic)."""
    head, _, tail = path.rpartition("/")
    return f"{head}/.{tail}.part-{token}" if head or path.startswith("/") else \
        f".{tail}.part-{token}"


def sha256_file(path: str | Path) -> str:
    """sha256 of a local file, read in 1 MiB blocks (memory does not grow with its size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
