"""The Host interface against a real loopback sshd (SSHHost) and this machine (LocalHost):
the same tests run on both, so LocalHost keeps parity with the SSH seam."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from remote_sep.errors import TransferError, Unreachable
from remote_sep.hosts.base import RemoteCommandError
from remote_sep.hosts.local import LocalHost
from remote_sep.hosts.profile import HostProfile
from remote_sep.ssh.host import SSHHost, connect

ODD_NAME = "my song's \"mix\" $(id) ünï.wav"


def ssh_profile(server, **extra) -> HostProfile:
    return HostProfile(name="loop", host=server.host, port=server.port, user=server.user,
                       key_files=[str(server.user_key)], known_hosts=[str(server.known_hosts)],
                       **extra)


@pytest.fixture(params=["ssh", "local"])
def host(request, tmp_path):
    if request.param == "local":
        h = connect(HostProfile(name="local"))
        assert isinstance(h, LocalHost)
        yield h
        return
    server = request.getfixturevalue("ssh_server")
    h = connect(ssh_profile(server))
    assert isinstance(h, SSHHost)
    yield h
    h.close()


@pytest.fixture
def work(tmp_path) -> Path:
    path = tmp_path / "remote dir ünï"
    path.mkdir()
    return path


def wait_for(predicate, limit: float = 20.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_run_quotes_every_argument(host, work):
    result = host.run(["printf", "%s\\n", ODD_NAME, "a b", "*", "$HOME"])
    assert result.stdout.decode().splitlines() == [ODD_NAME, "a b", "*", "$HOME"]
    host.run(["touch", "--", str(work / ODD_NAME)])
    assert (work / ODD_NAME).exists()
    assert host.run(["ls", "--", str(work)]).text.strip() == ODD_NAME


def test_run_feeds_stdin_then_eof(host):
    secret = b"hf_token_value\nsecond line"
    result = host.run(["sh", "-c", "cat; echo; echo err >&2"], stdin=secret)
    assert result.stdout == secret + b"\n"
    assert result.stderr == b"err\n"


def test_run_exports_env_quoted(host):
    result = host.run('printf %s "$ODD"', env={"ODD": ODD_NAME})
    assert result.text == ODD_NAME
    with pytest.raises(ValueError):
        host.run("true", env={"BAD NAME; rm": "x"})


def test_check_raises_with_command_and_stderr_tail(host):
    with pytest.raises(RemoteCommandError) as info:
        host.run(["sh", "-c", "echo boom-detail >&2; exit 3"])
    assert info.value.kind == "internal"
    assert "sh" in info.value.message and "exit 3" in info.value.message
    assert "boom-detail" in info.value.message
    unchecked = host.run(["sh", "-c", "exit 4"], check=False)
    assert unchecked.exit_code == 4


def test_run_timeout(host):
    with pytest.raises(RemoteCommandError, match="timed out"):
        host.run(["sleep", "5"], timeout=0.5)


def test_put_get_round_trip_with_sha256(host, work, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 12345)  # several 255 KiB requests and a tail
    local = tmp_path / ODD_NAME
    local.write_bytes(data)
    remote = str(work / f"up {ODD_NAME}")
    seen: list[tuple[int, int]] = []
    host.put_file(local, remote, progress=lambda done, total: seen.append((done, total)))
    assert Path(remote).read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    assert not [p for p in work.iterdir() if ".part-" in p.name]  # no temp left behind
    want = hashlib.sha256(data).hexdigest()
    assert host.sha256(remote) == want
    assert host.size(remote) == len(data)

    back = tmp_path / "back" / f"down {ODD_NAME}"
    got = host.get_file(remote, back, expected_sha256=want, progress=lambda d, t: None)
    assert got == want and back.read_bytes() == data


def test_put_replaces_existing_file(host, work, tmp_path):
    remote = str(work / "same.bin")
    Path(remote).write_bytes(b"old content that is longer")
    local = tmp_path / "new.bin"
    local.write_bytes(b"new")
    host.put_file(local, remote)
    assert Path(remote).read_bytes() == b"new"


def test_upload_that_is_not_what_was_hashed_never_lands(host, work, tmp_path):
    """The landing check compares what is on the host with the sha256 the caller gave (a
    file that changed after it was hashed): nothing under the final name, no temp left."""
    local = tmp_path / "changed.bin"
    local.write_bytes(os.urandom(600_000))
    remote = work / "cached.bin"
    with pytest.raises(TransferError, match="not kept"):
        host.put_file(local, str(remote), sha256="0" * 64)
    assert not remote.exists() and list(work.iterdir()) == []
    host.put_file(local, str(remote), sha256=hashlib.sha256(local.read_bytes()).hexdigest())
    assert remote.read_bytes() == local.read_bytes()


def test_corrupt_download_is_refused_and_not_written(host, work, tmp_path):
    remote = work / "out.wav"
    remote.write_bytes(b"RIFF" + os.urandom(100_000))
    final = tmp_path / "pulled.wav"
    with pytest.raises(TransferError, match="sha256"):
        host.get_file(str(remote), final, expected_sha256="0" * 64)
    assert not final.exists()
    assert list(tmp_path.glob(".pulled.wav.part-*")) == []
    assert final.parent.exists()


class _Stop(Exception):
    pass


def _stop_after_first_block(done: int, total: int) -> None:
    if done < total:
        raise _Stop


def test_interrupted_transfers_leave_the_old_file_and_no_temp(host, work, tmp_path):
    """A transfer that dies midway (here: its progress callback raises after the first
    block) never touches the file under the final name: tmp + rename on both sides."""
    data = os.urandom(2 * 1024 * 1024)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    remote = work / "big.bin"
    remote.write_bytes(b"old remote")
    with pytest.raises(_Stop):
        host.put_file(local, str(remote), progress=_stop_after_first_block)
    assert remote.read_bytes() == b"old remote"
    assert not [p for p in work.iterdir() if ".part-" in p.name]

    remote.write_bytes(data)
    pulled = tmp_path / "pulled.bin"
    pulled.write_bytes(b"old local")
    with pytest.raises(_Stop):
        host.get_file(str(remote), pulled, progress=_stop_after_first_block)
    assert pulled.read_bytes() == b"old local"
    assert not list(tmp_path.glob(".pulled.bin.part-*"))


def test_missing_files(host, work, tmp_path):
    assert host.size(str(work / "nope")) is None
    assert host.sha256(str(work / "nope")) is None
    with pytest.raises(TransferError):
        host.get_file(str(work / "nope"), tmp_path / "x")
    with pytest.raises(TransferError):
        host.read_bytes(str(work / "nope"))


def test_write_bytes_mode_and_read_ranges(host, work):
    path = str(work / "token")
    host.write_bytes(path, b"0123456789", mode=0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert host.read_bytes(path) == b"0123456789"
    assert host.read_bytes(path, 3) == b"3456789"
    assert host.read_bytes(path, 3, 4) == b"3456"
    assert host.read_bytes(path, 20) == b""
    host.write_bytes(path, b"replaced", mode=0o640)
    assert Path(path).read_bytes() == b"replaced"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_read_bytes_large_range(host, work):
    data = os.urandom(2_000_000)
    (work / "big").write_bytes(data)
    assert host.read_bytes(str(work / "big"), 1000, 1_500_000) == data[1000:1_501_000]


def test_mkdirs_and_expand(host, work):
    target = work / "a b" / "c$(x)"
    host.mkdirs(str(target), mode=0o700)
    assert target.is_dir() and stat.S_IMODE(target.stat().st_mode) == 0o700
    host.mkdirs(str(target))  # exists already: fine
    home = os.path.expanduser("~")
    assert host.expand("~/remote-sep") == f"{home}/remote-sep"
    assert host.expand("~") == home
    assert host.expand("/abs/~x") == "/abs/~x"


def test_start_detached_writes_pid_and_log(host, work):
    cwd = work / "job ünï"
    cwd.mkdir()
    pid = host.start_detached(
        ["sh", "-c", 'echo "$GREETING from $(pwd)"; echo to-stderr >&2; echo ok > done'],
        cwd=str(cwd), log=str(cwd / "std err.log"), pid_file=str(cwd / "pid"),
        env={"GREETING": ODD_NAME})
    assert int((cwd / "pid").read_text()) == pid
    assert wait_for(lambda: (cwd / "done").exists())
    log = (cwd / "std err.log").read_text()
    assert f"{ODD_NAME} from {cwd}" in log and "to-stderr" in log


def test_detached_job_survives_link_drop(ssh_server, work):
    """The job outlives its SSH connection and the sshd child that served it."""
    with connect(ssh_profile(ssh_server)) as h:
        pid = h.start_detached(
            ["sh", "-c", "sleep 3; echo finished > marker"],
            cwd=str(work), log=str(work / "log"), pid_file=str(work / "pid"))
        assert ssh_server.drop_links() >= 1
        with pytest.raises(Unreachable, match="lost"):
            h.run(["true"], timeout=10)
    os.kill(pid, 0)  # still alive after the link died (raises if not)
    assert wait_for(lambda: (work / "marker").exists())
    with connect(ssh_profile(ssh_server)) as again:
        assert again.read_bytes(str(work / "marker")) == b"finished\n"


def test_round_trips_are_counted(ssh_server, work):
    with connect(ssh_profile(ssh_server)) as h:
        assert h.round_trips == 0
        h.run(["true"])
        assert h.round_trips == 1
        h.size(str(work))  # first SFTP use: session open + the stat
        assert h.round_trips == 3
        h.write_bytes(str(work / "f"), b"x")
        assert h.round_trips == 4


def test_connect_local_is_localhost():
    h = connect(HostProfile(name="local"))
    assert isinstance(h, LocalHost) and h.name == "local" and h.round_trips == 0


def test_socket_tuned_for_latency_and_dead_links(ssh_server):
    """TCP_NODELAY (no Nagle stall per SFTP request), TCP_USER_TIMEOUT (a dead link fails
    instead of hanging), SSH keepalive."""
    import socket

    with connect(ssh_profile(ssh_server)) as h:
        sock = h._transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) >= 10_000
        assert h._transport.packetizer._Packetizer__keepalive_interval > 0


def test_transfer_on_lost_link_is_unreachable(ssh_server, work, tmp_path):
    local = tmp_path / "f.bin"
    local.write_bytes(os.urandom(1_000_000))
    with connect(ssh_profile(ssh_server)) as h:
        h.size(str(work))
        ssh_server.drop_links()
        with pytest.raises(Unreachable, match="lost"):
            h.put_file(local, str(work / "f.bin"))
    assert not (work / "f.bin").exists()


def test_big_stdin_with_big_output_does_not_deadlock(host):
    """The command answers before reading all its input: both directions must flow."""
    data = os.urandom(12 * 1024 * 1024)
    script = "head -c 12582912 /dev/zero; cat > /dev/null; echo done >&2"
    result = host.run(script, stdin=data, timeout=120)
    assert len(result.stdout) == 12 * 1024 * 1024 and result.stderr == b"done\n"


def test_fast_cipher_negotiated(ssh_server):
    with connect(ssh_profile(ssh_server)) as h:
        assert h._transport.remote_cipher == "aes128-gcm@openssh.com"
