"""`hosts trust` helpers: fetch a real server's key, fingerprint it like ssh-keygen, and add
it to known_hosts so that the next connect succeeds."""

from __future__ import annotations

import stat
import subprocess

import pytest
from sshd import keygen

from remote_sep.errors import HostKeyError, Unreachable
from remote_sep.hosts import known_hosts
from remote_sep.hosts.profile import HostProfile
from remote_sep.ssh.host import connect
from remote_sep.ssh.trust import fetch_host_key


def profile(server, known, **extra) -> HostProfile:
    return HostProfile(name="gpu1", host=server.host, port=server.port, user=server.user,
                       key_files=[str(server.user_key)], known_hosts=[str(known)], **extra)


def ssh_keygen_fingerprint(pub) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def test_fetch_matches_ssh_keygen_fingerprint(ssh_server, tmp_path):
    key = fetch_host_key(profile(ssh_server, tmp_path / "none"))
    keytype, blob = ssh_server.host_key.with_suffix(".pub").read_text().split()[:2]
    assert (key.keytype, key.key) == (keytype, blob)
    assert key.fingerprint == ssh_keygen_fingerprint(ssh_server.host_key.with_suffix(".pub"))
    assert tuple(key) == (key.keytype, key.key, key.fingerprint)


def test_trust_then_connect(ssh_server, tmp_path):
    ssh_dir = tmp_path / "home" / ".ssh"
    known = ssh_dir / "known_hosts"
    prof = profile(ssh_server, known)
    with pytest.raises(HostKeyError):
        connect(prof)
    written = known_hosts.add_known_host(None, prof, fetch_host_key(prof))
    assert written == known
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700
    assert known.read_text().startswith(f"[127.0.0.1]:{ssh_server.port} ssh-ed25519 ")
    with connect(prof) as h:
        assert h.run(["true"]).exit_code == 0


def test_retrust_replaces_changed_key_plain_and_hashed(ssh_server, tmp_path):
    known = tmp_path / "known_hosts"
    stale = keygen(tmp_path / "stale")
    kind, blob = stale.with_suffix(".pub").read_text().split()[:2]
    other_host = "[10.0.0.9]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeepThisLineAsItIs\n"
    known.write_text(f"[127.0.0.1]:{ssh_server.port} {kind} {blob}\n" + other_host)
    hashed = tmp_path / "known_hosts_hashed"
    hashed.write_text(known.read_text())
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True,
                   capture_output=True)
    for path in (known, hashed):
        prof = profile(ssh_server, path)
        with pytest.raises(HostKeyError, match="CHANGED"):
            connect(prof)
        known_hosts.add_known_host(path, prof, fetch_host_key(prof))
        assert blob not in path.read_text() and len(path.read_text().splitlines()) == 2
        with connect(prof) as h:
            assert h.run(["true"]).exit_code == 0
    assert other_host in known.read_text()


def test_port_22_uses_bare_name(tmp_path):
    known = tmp_path / "kh"
    prof = HostProfile(name="x", host="gpu.example", port=22, known_hosts=[str(known)])
    key = known_hosts.HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIF", "SHA256:x")
    known_hosts.add_known_host(None, prof, key)
    assert known.read_text() == "gpu.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF\n"


def test_known_hosts_files_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("REMOTE_SEP_KNOWN_HOSTS", raising=False)
    bare = HostProfile(name="x")
    assert [str(p) for p in known_hosts.known_hosts_files(bare)][1] == "/etc/ssh/ssh_known_hosts"
    monkeypatch.setenv("REMOTE_SEP_KNOWN_HOSTS", f"{tmp_path}/a:{tmp_path}/b")
    assert known_hosts.known_hosts_files(bare) == [tmp_path / "a", tmp_path / "b"]
    own = HostProfile(name="x", known_hosts=[str(tmp_path / "own")])
    assert known_hosts.known_hosts_files(own) == [tmp_path / "own"]


def test_fetch_from_closed_port_is_unreachable(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(Unreachable):
        fetch_host_key(HostProfile(name="x", host="127.0.0.1", port=port))


def test_fetch_through_proxy_jump(make_ssh_server, tmp_path):
    jump = make_ssh_server("jump")
    target = make_ssh_server("target")
    known = tmp_path / "kh"
    known.write_text(jump.known_hosts_line())  # jump trusted, target not yet
    prof = HostProfile(name="behind", host="127.0.0.1", port=target.port, user=target.user,
                       key_files=[str(jump.user_key), str(target.user_key)],
                       known_hosts=[str(known)], proxy_jump=f"127.0.0.1:{jump.port}")
    key = fetch_host_key(prof)
    assert key.fingerprint == ssh_keygen_fingerprint(target.host_key.with_suffix(".pub"))
    known_hosts.add_known_host(None, prof, key)
    with connect(prof) as h:
        assert h.run(["true"]).exit_code == 0
