"""Bare targets, like ssh/scp/rsync: `user@host[:port]` and `ssh://user@host:port` work with
no hosts.yaml entry, with the laptop's default keys and known_hosts and ssh_config applied."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sshd import start_sshd

from remote_sep.errors import ConfigError, UnknownHost
from remote_sep.profiles import get_profile
from remote_sep.profiles.target import looks_like_target, parse_target

MAIN = "from remote_sep.cli.main import main; main()"


@pytest.mark.parametrize(("text", "parsed"), [
    ("ubuntu@203.0.113.7", ("ubuntu", "203.0.113.7", None)),
    ("ubuntu@gpu.example.org:2222", ("ubuntu", "gpu.example.org", 2222)),
    ("ssh://ubuntu@gpu.example.org:2222", ("ubuntu", "gpu.example.org", 2222)),
    ("ssh://gpu.example.org/", (None, "gpu.example.org", None)),
    ("root@[2001:db8::1]:22", ("root", "2001:db8::1", 22)),
])
def test_targets_parse_as_openssh_writes_them(text, parsed):
    assert looks_like_target(text) and parse_target(text) == parsed


def test_plain_names_are_profile_names_not_targets(tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_SSH_CONFIG", str(tmp_path / "none"))
    (tmp_path / "hosts.yaml").write_text("hosts: {}\n")
    assert not looks_like_target("gpu1")
    with pytest.raises(UnknownHost):
        get_profile("gpu1", tmp_path / "hosts.yaml")
    with pytest.raises(ConfigError, match="port number"):
        get_profile("u@h:99999", tmp_path / "hosts.yaml")


def test_a_target_gets_the_defaults_and_ssh_config(tmp_path, monkeypatch):
    config = tmp_path / "ssh_config"
    config.write_text("Host gpu.example.org\n  HostName 198.51.100.9\n"
                      "  IdentityFile ~/.ssh/lab_key\n")
    monkeypatch.setenv("REMOTE_SEP_SSH_CONFIG", str(config))
    (tmp_path / "hosts.yaml").write_text("hosts: {}\n")
    profile = get_profile("ubuntu@gpu.example.org:2222", tmp_path / "hosts.yaml")
    assert profile.bare and profile.user == "ubuntu" and profile.port == 2222
    assert profile.address == "198.51.100.9" and profile.path == "~/remote-sep"
    assert profile.key_files == [str(Path("~/.ssh/lab_key").expanduser())]


@pytest.fixture
def bare_world(tmp_path):
    """A real sshd whose sessions get their own HOME (so `~/remote-sep` lands in tmp), and
    a laptop HOME holding only the default key ~/.ssh/id_ed25519, as OpenSSH finds it."""
    remote_home = tmp_path / "remote-home"
    remote_home.mkdir()
    server = start_sshd(tmp_path / "sshd", env={"HOME": str(remote_home)})
    laptop = tmp_path / "laptop-home"
    (laptop / ".ssh").mkdir(parents=True)
    shutil.copy(server.user_key, laptop / ".ssh" / "id_ed25519")
    yield server, remote_home, laptop
    server.stop()


@pytest.mark.e2e
def test_hosts_check_on_a_bare_target_over_real_sshd(bare_world):
    server, remote_home, laptop = bare_world
    (laptop / ".ssh" / "known_hosts").write_text(server.known_hosts_line())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(laptop)}
    for target in (f"{server.user}@127.0.0.1:{server.port}",
                   f"ssh://{server.user}@127.0.0.1:{server.port}"):
        run = subprocess.run([sys.executable, "-c", MAIN, "hosts", "check", target,
                              "--json"], capture_output=True, text=True, env=env,
                             stdin=subprocess.DEVNULL, timeout=60)
        body = json.loads(run.stdout)
        assert run.returncode == 0, run.stdout + run.stderr
        assert body["result"]["reachable"] is True
        assert body["result"]["base"] == str(remote_home / "remote-sep")
    (laptop / ".ssh" / "known_hosts").write_text("")  # unknown key: refused as ever
    run = subprocess.run([sys.executable, "-c", MAIN, "hosts", "check",
                          f"{server.user}@127.0.0.1:{server.port}", "--json"],
                         capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                         timeout=60)
    assert run.returncode == 8 and json.loads(run.stdout)["error"]["kind"] == "host_key"


@pytest.mark.e2e
def test_trust_on_first_use_then_save_on_a_terminal_never_for_a_changed_key(tmp_path,
                                                                            bare_world):
    from terminal import converse

    server, _, laptop = bare_world
    known = laptop / ".ssh" / "known_hosts"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(laptop), "COLUMNS": "200"}
    argv = [sys.executable, "-c", MAIN, "hosts", "check",
            f"{server.user}@127.0.0.1:{server.port}"]
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(server.host_key.with_suffix(".pub"))],
        capture_output=True, text=True, check=True).stdout.split()[1]

    code, out = converse(argv, env, [("Trust it and add it", "n")])
    assert code == 8 and fingerprint in out and not known.exists()

    hosts = laptop / ".config" / "remote-sep" / "hosts.yaml"
    code, out = converse(argv, env, [("Trust it and add it", "y"),
                                     ("as a host profile?", "n")])
    assert code == 0, out
    assert "reachable" in out and known.read_text() == server.known_hosts_line()
    assert not hosts.exists()
    code, out = converse(argv, env, [("as a host profile?", "y"), ("Profile name", "box")])
    assert code == 0 and "Trust it" not in out, out  # known now: asked once only
    assert "saved as 'box'" in out
    saved = subprocess.run([sys.executable, "-c", MAIN, "hosts", "check", "box", "--json"],
                           capture_output=True, text=True, env=env,
                           stdin=subprocess.DEVNULL, timeout=60)
    assert saved.returncode == 0, saved.stdout + saved.stderr

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    blob = other.with_suffix(".pub").read_text().split()[1]
    known.write_text(f"[127.0.0.1]:{server.port} ssh-ed25519 {blob}\n")
    code, out = converse(argv, env, [("Trust it and add it", "y")])
    assert code == 8 and "CHANGED" in out and "Trust it" not in out
    assert blob in known.read_text()  # a prompt never replaces a changed key
