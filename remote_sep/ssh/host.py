"""The SSH seam's Host: `connect(profile)` -> a Host; `SSHHost` runs commands and moves files.

Connecting (sockets, ProxyJump hops, host-key policy, auth errors) is ssh/dial.py;
SFTP transfers are ssh/transfer.py; the shell text shared with LocalHost is hosts/base.py.
ssh/host.py, ssh/dial.py and ssh/config.py are the only modules that import paramiko.

Security: every argv element is shell-quoted; secrets travel on stdin or through
write_bytes, never in a command line.

Speed (DESIGN.md §5, measured on loopback): 255 KiB SFTP requests (256 KiB and up make
OpenSSH close the channel), pipelined writes, prefetched reads into an 8 MiB window with
255 KiB packets (set up in ssh/dial.py). bench/bench_transfer.py compares with scp.
"""

from __future__ import annotations

import secrets
import select
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import paramiko

from remote_sep.errors import RemoteSepError, TransferError, Unreachable
from remote_sep.hosts.base import (
    Host,
    Progress,
    RemoteCommandError,
    RunResult,
    check_result,
    detached_script,
    full_command,
    parse_sha256_output,
    sha256_script,
    tmp_name,
)
from remote_sep.hosts.landing import Landing
from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.space import disk_full_on_failure
from remote_sep.ssh.dial import MAX_PACKET, WINDOW, connect_clients, server_host_key
from remote_sep.ssh.transfer import download, read_range, send_to_temp, write_atomic

__all__ = ["Host", "RemoteCommandError", "RunResult", "SSHHost", "connect", "server_host_key"]


def connect(profile: HostProfile) -> Host:
    """Open the host a profile names: LocalHost for `local`, else an SSHHost."""
    if profile.is_local:
        from remote_sep.hosts.local import LocalHost

        return LocalHost(profile)
    return SSHHost(profile)


def _feed(chan, data: bytes) -> None:
    try:
        if data:
            chan.sendall(data)
        chan.shutdown_write()
    except Exception:  # noqa: BLE001 - a dead link is reported by the reading loop
        pass


class SSHHost:
    """A host reached over SSH. Not for concurrent use from several threads on one object
    (SFTP calls are serialised by a lock; runs may overlap)."""

    def __init__(self, profile: HostProfile):
        self.profile = profile
        self.name = profile.name
        self.round_trips = 0
        self._clients = connect_clients(profile)
        self._transport = self._clients[-1].get_transport()
        self._sftp_client: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.RLock()
        self._home: str | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        with self._sftp_lock:
            if self._sftp_client is not None:
                self._sftp_client.close()
                self._sftp_client = None
        for client in reversed(self._clients):
            client.close()

    def __enter__(self) -> SSHHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._transport.is_active()

    def _lost(self, exc: BaseException) -> RemoteSepError:
        return Unreachable(f"connection to {self.name} ({self.profile.describe()}) lost: "
                           f"{exc or type(exc).__name__}",
                           hint="the remote job keeps running; reconnect or `attach` it")

    # -- commands --------------------------------------------------------------------------
    def run(self, argv: Sequence[str] | str, *, stdin: bytes | None = None,
            timeout: float | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> RunResult:
        """Run a command. argv list: each element shell-quoted; str: a script already quoted.

        `env` values are exported in the command line, so they show in `ps` on the host:
        NON-SECRET values only. Secrets go through `stdin` (sent, then EOF) or write_bytes.
        """
        result = self._exec(full_command(argv, env), stdin, timeout)
        return check_result(self.name, argv, result) if check else result

    def _exec(self, command: str, stdin: bytes | None, timeout: float | None) -> RunResult:
        self.round_trips += 1
        try:
            chan = self._transport.open_session(timeout=self.profile.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._lost(exc) from None
        deadline = None if timeout is None else time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        try:
            chan.exec_command(command)
            # stdin is sent from a thread: a command that writes a lot before reading all
            # its input would otherwise deadlock against our full receive window.
            feeder = threading.Thread(target=_feed, args=(chan, stdin or b""), daemon=True)
            feeder.start()
            while True:
                wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
                select.select([chan], [], [], wait)
                while chan.recv_ready():
                    out += chan.recv(1 << 16)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(1 << 16)
                if chan.exit_status_ready() and chan.eof_received and not (
                        chan.recv_ready() or chan.recv_stderr_ready()):
                    break
                if not self._transport.is_active():
                    raise EOFError("transport closed")
                if deadline is not None and time.monotonic() >= deadline:
                    result = RunResult(-1, bytes(out), bytes(err))
                    raise RemoteCommandError(
                        f"command timed out after {timeout:g} s on {self.name}", result)
            return RunResult(chan.recv_exit_status(), bytes(out), bytes(err))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._lost(exc) from None
        finally:
            chan.close()

    def start_detached(self, argv: Sequence[str], *, cwd: str, log: str, pid_file: str,
                       env: Mapping[str, str] | None = None) -> int:
        """Start argv in its own session (survives the link dropping); returns its pid."""
        script = detached_script(argv, cwd=self.expand(cwd), log=self.expand(log),
                                 pid_file=self.expand(pid_file), env=env)
        result = self.run(script)
        return int(result.text.strip().splitlines()[-1])

    def stream(self, command: str) -> _ChannelStream:
        """Start a shell command (already quoted) and read its stdout as it arrives, on its
        own channel (other calls go on meanwhile). stdin is closed at once."""
        self.round_trips += 1
        try:
            chan = self._transport.open_session(timeout=self.profile.connect_timeout)
            chan.exec_command(command)
            chan.shutdown_write()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._lost(exc) from None
        return _ChannelStream(chan, self)

    # -- files -----------------------------------------------------------------------------
    def expand(self, path: str) -> str:
        """'~' and '~/x' -> the remote home; other paths unchanged (one exec, then cached)."""
        if path != "~" and not path.startswith("~/"):
            return path
        if self._home is None:
            self._home = self.run('printf %s "$HOME"').text
        return self._home + path[1:]

    def _sftp(self) -> paramiko.SFTPClient:
        if self._sftp_client is None:
            self.round_trips += 1
            self._sftp_client = paramiko.SFTPClient.from_transport(
                self._transport, window_size=WINDOW, max_packet_size=MAX_PACKET)
        return self._sftp_client

    def _sftp_op(self, what: str, path: str, op):
        """Run op(sftp) as one counted round trip; map errors to Unreachable/TransferError."""
        with self._sftp_lock:
            try:
                sftp = self._sftp()
                self.round_trips += 1
                return op(sftp)
            except RemoteSepError:
                raise
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if not self._transport.is_active() or not isinstance(exc, OSError):
                    raise self._lost(exc) from None
                reason = exc.strerror or str(exc)
                raise TransferError(f"{what} {path} on {self.name}: {reason}") from None

    def put_file(self, local: Path, remote: str, *, progress: Progress | None = None,
                 sha256: str | None = None) -> None:
        """Upload to a remote temp name; only once its size and sha256 on the host are what
        was sent is it renamed over `remote` (one exec after the SFTP writes). A disk that
        filled up raises DiskFull; nothing lands under `remote` then. `sha256`: LOCAL's, when
        the caller knows it (saves hashing it again while sending)."""
        landing = self.send_file(local, remote, progress=progress, sha256=sha256)
        landing.check(self.run(landing.script()).stdout)

    def send_file(self, local: Path, remote: str, *, progress: Progress | None = None,
                  sha256: str | None = None) -> Landing:
        """The SFTP part of put_file: `remote`'s temp name written, NOT renamed; the caller
        runs `landing.script()` on this host (alone, or at the head of a script of its
        own) and hands its output to `landing.check`."""
        local, target = Path(local), self.expand(remote)
        tmp = tmp_name(target, secrets.token_hex(4))
        what = f"the upload of {local.name}"
        try:
            size, sha = self._sftp_op("upload to", target,
                                      lambda s: send_to_temp(s, local, tmp, progress, sha256))
        except TransferError:
            if local.is_file():  # a write the host refused: DiskFull when it was the disk
                failed = Landing(self.name, tmp, target, local.stat().st_size, None, what)
                failed.check(self.run(failed.script()).stdout)
            raise
        return Landing(self.name, tmp, target, size, sha, what)

    def get_file(self, remote: str, local: Path, *, expected_sha256: str | None = None,
                 progress: Progress | None = None) -> str:
        """Download to a local temp name, check size (+ sha256 if given), rename; -> sha256."""
        source = self.expand(remote)
        return self._sftp_op("download", source, lambda s: download(
            s, source, Path(local), expected_sha256, progress, self.name))

    def write_bytes(self, remote: str, data: bytes, *, mode: int = 0o644) -> None:
        """Atomic small write; the mode is set before any data is written (for secrets)."""
        target = self.expand(remote)
        folder = target.rpartition("/")[0] or "/"
        with disk_full_on_failure(self, folder, f"writing {target}", len(data)):
            self._sftp_op("write", target, lambda s: write_atomic(s, target, data, mode))

    def read_bytes(self, remote: str, offset: int = 0, limit: int | None = None) -> bytes:
        source = self.expand(remote)
        return self._sftp_op("read", source, lambda s: read_range(s, source, offset, limit))

    def size(self, remote: str) -> int | None:
        path = self.expand(remote)

        def stat(sftp: paramiko.SFTPClient) -> int | None:
            try:
                return sftp.stat(path).st_size
            except FileNotFoundError:
                return None

        return self._sftp_op("stat", path, stat)

    def sha256(self, remote: str) -> str | None:
        return parse_sha256_output(self.run(sha256_script(self.expand(remote))).stdout)

    def mkdirs(self, remote: str, mode: int = 0o755) -> None:
        self.run(["mkdir", "-p", "-m", f"{mode:o}", "--", self.expand(remote)])


class _ChannelStream:
    """SSHHost.stream's handle: ``read()`` -> the next stdout bytes, b"" when the command
    ended; a link lost meanwhile raises Unreachable instead of looking like an end."""

    def __init__(self, chan: paramiko.Channel, host: SSHHost):
        self._chan, self._host = chan, host

    def read(self) -> bytes:
        try:
            data = self._chan.recv(1 << 16)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._host._lost(exc) from None
        if not data and not self._chan.closed and not self._host.alive:
            raise self._host._lost(EOFError("transport closed"))
        return data

    def close(self) -> None:
        self._chan.close()  # wakes a read() blocked in another thread (it returns b"")
