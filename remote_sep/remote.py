"""The SSH seam: the only module that imports paramiko. `connect(profile)` -> a Host.

Security: host keys are checked against the profile's known_hosts files (hashed entries and
`[host]:port` entries work) with a RejectPolicy; an unknown or changed key is refused with
a hint to run `remote-sep hosts trust NAME`. Every argv element is shell-quoted; secrets
travel on stdin or through write_bytes, never in a command line.

Speed (DESIGN.md §5, measured on loopback): TCP_NODELAY (paramiko never sets it; Nagle +
delayed ACK cost ~29 ms per synchronous SFTP request), 255 KiB SFTP requests (256 KiB and
up make OpenSSH close the channel), pipelined writes, prefetched reads into an 8 MiB window
with 255 KiB packets, AES-GCM first. bench/bench_transfer.py compares with scp. TCP_USER_TIMEOUT
makes a dead link fail instead of blocking forever.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import select
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import paramiko

from remote_sep import hostkeys
from remote_sep.errors import AuthFailed, HostKeyError, RemoteSepError, TransferError, Unreachable
from remote_sep.hostbase import (
    Host,
    Progress,
    RemoteCommandError,
    RunResult,
    check_result,
    detached_script,
    full_command,
    parse_sha256_output,
    sha256_script,
)
from remote_sep.profile_model import HostProfile
from remote_sep.transfer import download, read_range, upload, write_atomic

__all__ = ["Host", "RemoteCommandError", "RunResult", "SSHHost", "connect", "server_host_key"]

KEEPALIVE_S = 15
USER_TIMEOUT_MS = 15_000  # unacknowledged data older than this kills the link (dead peer)
# Receive side of downloads (measured on loopback, interleaved with scp): 255 KiB channel
# packets beat paramiko's 32 KiB (fewer Python-level packets); an 8 MiB window beat 16-64 MiB.
WINDOW = 8 * 1024 * 1024
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
MAX_PACKET = 255 * 1024  # what we let the server send per packet (OpenSSH's cap is 256 KiB)


def connect(profile: HostProfile) -> Host:
    """Open the host a profile names: LocalHost for `local`, else an SSHHost."""
    if profile.is_local:
        from remote_sep.localhost import LocalHost

        return LocalHost(profile)
    return SSHHost(profile)


class _RejectUnknown(paramiko.RejectPolicy):
    """RejectPolicy that keeps the key it refused, for the message."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownKey(hostname, key)


class _UnknownKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(f"{hostname} not in known_hosts")
        self.hostname = hostname
        self.key = key


def _fast_transport(sock, **kwargs) -> paramiko.Transport:
    transport = paramiko.Transport(sock, default_window_size=WINDOW,
                                   default_max_packet_size=MAX_PACKET, **kwargs)
    # AES-GCM first: one AEAD pass instead of CTR + a separate HMAC; measured ~25% faster
    # transfers than paramiko's default aes128-ctr on loopback.
    options = transport.get_security_options()
    fast = [c for c in PREFERRED_CIPHERS if c in options.ciphers]
    options.ciphers = tuple(fast + [c for c in options.ciphers if c not in fast])
    return transport


def _fp(key: paramiko.PKey) -> str:
    return hostkeys.fingerprint(key.get_base64())


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)


def _load_known_hosts(into: paramiko.HostKeys, files: list[Path]) -> None:
    """Like OpenSSH, skip lines it cannot use (paramiko's loader aborts on the first bad
    one). `@cert-authority` / `@revoked` lines are skipped: no certificates here."""
    for path in files:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue  # a missing file is an empty one
        for lineno, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith(("#", "@")):
                continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
            except Exception:  # malformed or unsupported key type: skip the line
                continue
            if entry is None or entry.key is None:
                continue
            for name in entry.hostnames:
                into.add(name, entry.key.get_name(), entry.key)


@dataclasses.dataclass
class _Hop:
    user: str
    host: str
    port: int
    keys: list[str]  # key files for this hop (profile keys + its ssh_config IdentityFile)
    label: str  # "host NAME" or "jump host X", for messages


def _jump_hop(spec: str, profile: HostProfile) -> _Hop:
    """`[user@]host[:port]` (or `[v6]:port`); a host that is an ssh_config alias gets its
    HostName/User/Port/IdentityFile from there, as `ssh -J` does."""
    user, _, hostport = spec.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else None
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
        port = int(port_text)
    from remote_sep.profiles import load_ssh_config  # ssh_config parsing lives there

    ssh = load_ssh_config().lookup(host)
    keys = [*profile.key_files, *(os.path.expanduser(k) for k in ssh.get("identityfile", []))]
    return _Hop(user=user or ssh.get("user") or getpass.getuser(),
                host=ssh.get("hostname", host), port=port or int(ssh.get("port", 22)),
                keys=list(dict.fromkeys(keys)), label=f"jump host {host}")


def _hops(profile: HostProfile) -> list[_Hop]:
    """Each ProxyJump hop (comma-separated, in order), then the target."""
    specs = [h.strip() for h in (profile.proxy_jump or "").split(",") if h.strip()]
    hops = [_jump_hop(spec, profile) for spec in specs]
    hops.append(_Hop(user=profile.user or getpass.getuser(), host=profile.address,
                     port=profile.port, keys=list(profile.key_files),
                     label=f"host {profile.name}"))
    return hops


def _open_socket(host: str, port: int, timeout: float, via: paramiko.SSHClient | None):
    if via is not None:
        try:
            return via.get_transport().open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as exc:
            raise Unreachable(f"jump host cannot reach {host}:{port}: {exc.text}") from exc
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise Unreachable(f"cannot resolve host name {host!r}: {exc.strerror}") from exc
    except TimeoutError as exc:
        raise Unreachable(f"{host}:{port} did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise Unreachable(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    _tune(sock)
    return sock


def _client(profile: HostProfile, hop: _Hop, sock) -> paramiko.SSHClient:
    """One authenticated SSH connection over `sock`, host key checked; errors mapped."""
    user, host, port, label = hop.user, hop.host, hop.port, hop.label
    client = paramiko.SSHClient()
    _load_known_hosts(client.get_host_keys(), hostkeys.known_hosts_files(profile))
    client.set_missing_host_key_policy(_RejectUnknown())
    # Like OpenSSH, a missing identity file is skipped (ssh_config often names defaults
    # that do not exist); it is named in the message if authentication then fails.
    wanted = [os.path.expanduser(k) for k in hop.keys]
    keys = [k for k in wanted if os.path.isfile(k)]
    missing = [k for k in wanted if k not in keys]
    timeout = profile.connect_timeout
    trust_hint = f"check the fingerprint, then run `remote-sep hosts trust {profile.name}`"
    where = f"{label} ({hostkeys.host_key_name(host, port)})"
    try:
        client.connect(
            host, port=port, username=user, key_filename=keys or None, timeout=timeout,
            allow_agent=True, look_for_keys=True, sock=sock, banner_timeout=timeout,
            auth_timeout=timeout, channel_timeout=timeout,
            transport_factory=_fast_transport,
        )
    except _UnknownKey as exc:
        client.close()
        raise HostKeyError(
            f"{where} is unknown: its {exc.key.get_name()} key "
            f"{_fp(exc.key)} is in none of "
            f"{', '.join(map(str, hostkeys.known_hosts_files(profile)))}", hint=trust_hint,
        ) from None
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyError(
            f"host key for {where} has CHANGED: it presents "
            f"{exc.key.get_name()} {_fp(exc.key)} but known_hosts has "
            f"{exc.expected_key.get_name()} {_fp(exc.expected_key)} — possible "
            f"man-in-the-middle attack, refusing to connect",
            hint="if the host was reinstalled, verify the new fingerprint out of band, then "
                 f"run `remote-sep hosts trust {profile.name}`",
        ) from None
    except paramiko.PasswordRequiredException as exc:
        client.close()
        raise AuthFailed(f"{label} {user}@{host}: a key needs a passphrase ({exc})",
                         hint="load the key into ssh-agent (ssh-add KEY)") from None
    except paramiko.AuthenticationException as exc:
        client.close()
        raise AuthFailed(
            f"{label} {user}@{host}:{port} refused authentication ({exc})"
            + (f"; key file(s) not found: {', '.join(missing)}" if missing else ""),
            hint="check `user` and `key` in hosts.yaml, or add your key to ssh-agent; the "
                 "public key must be in the remote ~/.ssh/authorized_keys") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        client.close()
        if "No authentication methods" in str(exc):  # no key, agent or default key to try
            raise AuthFailed(
                f"{label} {user}@{host}:{port}: no key to authenticate with"
                + (f"; key file(s) not found: {', '.join(missing)}" if missing else ""),
                hint="set `key` in hosts.yaml or load a key into ssh-agent") from None
        raise Unreachable(f"{label} {host}:{port}: SSH handshake failed ({exc})",
                          hint="is an SSH server listening on that port?") from None
    transport = client.get_transport()
    transport.set_keepalive(KEEPALIVE_S)
    return client


def _connect_hops(profile: HostProfile, hops: list[_Hop]) -> list[paramiko.SSHClient]:
    """Connect each hop through the previous one's direct-tcpip channel."""
    clients: list[paramiko.SSHClient] = []
    try:
        for hop in hops:
            via = clients[-1] if clients else None
            sock = _open_socket(hop.host, hop.port, profile.connect_timeout, via)
            clients.append(_client(profile, hop, sock))
    except BaseException:
        for client in reversed(clients):
            client.close()
        raise
    return clients


def server_host_key(profile: HostProfile) -> tuple[str, bytes]:
    """(keytype, public key blob) the profile's host presents, without authenticating.
    Jump hosts on the way are connected (and checked) normally."""
    *jumps, target = _hops(profile)
    clients = _connect_hops(profile, jumps)
    try:
        sock = _open_socket(target.host, target.port, profile.connect_timeout,
                            clients[-1] if clients else None)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = profile.connect_timeout
            transport.start_client(timeout=profile.connect_timeout)
            key = transport.get_remote_server_key()
            return key.get_name(), key.asbytes()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(f"{target.host}:{target.port}: SSH handshake failed "
                              f"({exc})") from None
        finally:
            transport.close()
    finally:
        for client in reversed(clients):
            client.close()


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
        self._clients = _connect_hops(profile, _hops(profile))
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

    def put_file(self, local: Path, remote: str, *, progress: Progress | None = None) -> None:
        """Upload to a remote temp name, then rename over `remote` (never a partial file)."""
        target = self.expand(remote)
        self._sftp_op("upload to", target, lambda s: upload(s, Path(local), target, progress))

    def get_file(self, remote: str, local: Path, *, expected_sha256: str | None = None,
                 progress: Progress | None = None) -> str:
        """Download to a local temp name, check size (+ sha256 if given), rename; -> sha256."""
        source = self.expand(remote)
        return self._sftp_op("download", source, lambda s: download(
            s, source, Path(local), expected_sha256, progress, self.name))

    def write_bytes(self, remote: str, data: bytes, *, mode: int = 0o644) -> None:
        """Atomic small write; the mode is set before any data is written (for secrets)."""
        target = self.expand(remote)
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
