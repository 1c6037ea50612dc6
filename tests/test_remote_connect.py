"""Connecting: host keys (unknown, changed, hashed), auth, unreachable, ProxyJump — all
against real loopback sshd servers."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from sshd import keygen

from remote_sep.errors import AuthFailed, HostKeyError, Unreachable
from remote_sep.hosts.profile import HostProfile
from remote_sep.ssh.host import connect


@pytest.fixture(autouse=True)
def no_agent(monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # only the keys a test names


def profile(server, **extra) -> HostProfile:
    fields = dict(name="gpu1", host=server.host, port=server.port, user=server.user,
                  key_files=[str(server.user_key)], known_hosts=[str(server.known_hosts)])
    fields.update(extra)
    return HostProfile(**fields)


def test_known_host_connects(ssh_server):
    with connect(profile(ssh_server)) as h:
        assert h.run(["echo", "hi"]).text == "hi\n"


def test_unknown_host_key_is_refused_with_trust_hint(ssh_server, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError) as info:
        connect(profile(ssh_server, known_hosts=[str(empty)]))
    err = info.value
    assert "unknown" in err.message and f"[127.0.0.1]:{ssh_server.port}" in err.message
    assert "SHA256:" in err.message
    assert "remote-sep hosts trust gpu1" in str(err)
    assert err.exit_code != 0 and err.kind == "host_key"


def test_missing_known_hosts_file_means_unknown(ssh_server, tmp_path):
    with pytest.raises(HostKeyError, match="unknown"):
        connect(profile(ssh_server, known_hosts=[str(tmp_path / "absent")]))


@pytest.mark.parametrize("other_type", ["ed25519", "ecdsa"])
def test_changed_host_key_is_refused(ssh_server, tmp_path, other_type):
    """known_hosts holds another key for this host (same or other type): MITM warning."""
    other = keygen(tmp_path / "other_key", other_type)
    kind, blob = (other.with_suffix(".pub")).read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{ssh_server.port} {kind} {blob}\n")
    with pytest.raises(HostKeyError) as info:
        connect(profile(ssh_server, known_hosts=[str(known)]))
    assert "CHANGED" in info.value.message and "man-in-the-middle" in info.value.message
    assert "remote-sep hosts trust gpu1" in str(info.value)


def test_hashed_known_hosts_entry_works(ssh_server, tmp_path):
    known = tmp_path / "hashed_known_hosts"
    known.write_text(ssh_server.known_hosts_line())
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True,
                   capture_output=True)
    assert known.read_text().startswith("|1|")
    with connect(profile(ssh_server, known_hosts=[str(known)])) as h:
        assert h.run(["true"]).exit_code == 0


def test_known_hosts_env_override(ssh_server, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("REMOTE_SEP_KNOWN_HOSTS", os.pathsep.join([str(empty),
                                                                   str(ssh_server.known_hosts)]))
    with connect(profile(ssh_server, known_hosts=[])) as h:
        assert h.run(["true"]).exit_code == 0
    monkeypatch.setenv("REMOTE_SEP_KNOWN_HOSTS", str(empty))
    with pytest.raises(HostKeyError):
        connect(profile(ssh_server, known_hosts=[]))


def test_wrong_user_key_is_auth_failure(ssh_server, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(AuthFailed) as info:
        connect(profile(ssh_server, key_files=[str(stranger)]))
    assert info.value.kind == "auth" and info.value.hint


def test_wrong_user_is_auth_failure(ssh_server):
    with pytest.raises(AuthFailed):
        connect(profile(ssh_server, user="nobody"))


def test_missing_key_file_is_skipped_and_named_on_failure(ssh_server, tmp_path):
    """Like OpenSSH: a missing identity file (often an ssh_config default) is skipped."""
    absent = str(tmp_path / "no_such_key")
    with connect(profile(ssh_server, key_files=[absent, str(ssh_server.user_key)])) as h:
        assert h.run(["true"]).exit_code == 0
    with pytest.raises(AuthFailed, match="not found: .*no_such_key"):
        connect(profile(ssh_server, key_files=[absent]))


@pytest.mark.parametrize("which", ["public key", "not a key"])
def test_key_that_is_not_a_private_key_is_auth_not_unreachable(ssh_server, tmp_path, which):
    from conftest import profile_for, write_hosts_file
    from typer.testing import CliRunner

    from remote_sep.cli.main import app

    key = Path(f"{ssh_server.user_key}.pub")
    if which == "not a key":
        key = tmp_path / "notes.txt"
        key.write_text("my server notes\n")
    with pytest.raises(AuthFailed, match="this is not a private key") as err:
        connect(profile(ssh_server, key_files=[str(key)]))
    assert str(key) in str(err.value) and (".pub" in err.value.hint) == (which == "public key")
    hosts = write_hosts_file(tmp_path / "hosts.yaml",
                             {"gpu1": profile_for(ssh_server, tmp_path / "base", key=str(key))})
    result = CliRunner().invoke(app, ["hosts", "check", "gpu1", "--hosts", str(hosts)])
    assert result.exit_code == 7, result.output
    assert "this is not a private key" in result.stderr and "Traceback" not in result.output


def test_closed_port_is_unreachable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prof = HostProfile(name="gone", host="127.0.0.1", port=port, connect_timeout=3)
    with pytest.raises(Unreachable, match="refused") as info:
        connect(prof)
    assert info.value.kind == "unreachable"


def test_silent_server_is_unreachable_after_timeout():
    """TCP accepts but no SSH banner ever comes: give up after connect_timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
    thread.start()
    try:
        prof = HostProfile(name="mute", host="127.0.0.1", port=listener.getsockname()[1],
                           connect_timeout=1)
        with pytest.raises(Unreachable):
            connect(prof)
    finally:
        thread.join(5)
        for sock in accepted:
            sock.close()
        listener.close()


def test_unresolvable_name_is_unreachable():
    prof = HostProfile(name="nx", host="no-such-host.invalid", port=22, connect_timeout=3)
    with pytest.raises(Unreachable, match="resolve"):
        connect(prof)


def test_proxy_jump_reaches_second_server_through_first(make_ssh_server, tmp_path):
    jump = make_ssh_server("jump", log_level="DEBUG1")
    target = make_ssh_server("target")
    known = tmp_path / "known_hosts"
    known.write_text(jump.known_hosts_line() + target.known_hosts_line())
    prof = HostProfile(
        name="behind", host="127.0.0.1", port=target.port, user=target.user,
        key_files=[str(jump.user_key), str(target.user_key)], known_hosts=[str(known)],
        proxy_jump=f"{jump.user}@127.0.0.1:{jump.port}")
    with connect(prof) as h:
        assert h.run(["echo", "through"]).text == "through\n"
        marker = tmp_path / "via-jump"
        h.write_bytes(str(marker), b"ok")
        assert marker.read_bytes() == b"ok"
    # the jump server forwarded a direct-tcpip channel to the target's port
    log = Path(jump.log).read_text()
    assert "direct-tcpip" in log or "direct_tcpip" in log
    assert f"port {target.port}" in log


def test_proxy_jump_with_unknown_jump_key_is_refused(make_ssh_server, tmp_path):
    jump = make_ssh_server("jump")
    target = make_ssh_server("target")
    known = tmp_path / "known_hosts"
    known.write_text(target.known_hosts_line())  # the jump host is not trusted
    prof = HostProfile(
        name="behind", host="127.0.0.1", port=target.port, user=target.user,
        key_files=[str(jump.user_key), str(target.user_key)], known_hosts=[str(known)],
        proxy_jump=f"127.0.0.1:{jump.port}")
    with pytest.raises(HostKeyError, match="jump host"):
        connect(prof)


def test_proxy_jump_through_ssh_config_alias(make_ssh_server, tmp_path, monkeypatch):
    """`ProxyJump bastion` where bastion is an ssh_config alias (HostName/Port/User/key)."""
    jump = make_ssh_server("jump")
    target = make_ssh_server("target")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host bastion\n  HostName 127.0.0.1\n  Port {jump.port}\n"
                      f"  User {jump.user}\n  IdentityFile {jump.user_key}\n")
    monkeypatch.setenv("REMOTE_SEP_SSH_CONFIG", str(config))
    known = tmp_path / "known_hosts"
    known.write_text(jump.known_hosts_line() + target.known_hosts_line())
    prof = HostProfile(name="behind", host="127.0.0.1", port=target.port, user=target.user,
                       key_files=[str(target.user_key)], known_hosts=[str(known)],
                       proxy_jump="bastion")
    with connect(prof) as h:
        assert h.run(["echo", "via alias"]).text == "via alias\n"
