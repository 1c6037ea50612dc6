"""`remote-sep hosts …` through the real CLI; check/trust against a real loopback sshd."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml
from conftest import profile_for, write_hosts_file
from sshd import free_port
from typer.testing import CliRunner

from remote_sep.cli.main import app

TESTS = Path(__file__).resolve().parent
STANDIN_BIN = TESTS / "standins" / "bin"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_SEP_SSH_CONFIG", str(tmp_path / "no-ssh-config"))
    monkeypatch.setenv("REMOTE_SEP_HOSTS", str(tmp_path / "hosts.yaml"))
    monkeypatch.setenv("REMOTE_SEP_KNOWN_HOSTS", str(tmp_path / "no-known-hosts"))


def cli(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def cli_json(*args: str, input: str | None = None) -> tuple[int, dict]:
    code, out, _ = cli(*args, "--json", input=input)
    return code, json.loads(out)


def nvidia_smi_dir(tmp_path: Path) -> Path:
    """The shared stand-in when present, else a tiny one of our own."""
    if (STANDIN_BIN / "nvidia-smi").exists():
        return STANDIN_BIN
    own = tmp_path / "standin-bin"
    own.mkdir(exist_ok=True)
    script = own / "nvidia-smi"
    script.write_text(
        '#!/bin/sh\necho "${NVSMI_GPU}, 570.86.10, 81920 MiB, ${NVSMI_MEM_USED} MiB"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return own


# ---------------------------------------------------------------- add / list / show


def test_add_then_list_and_show_round_trip(tmp_path: Path) -> None:
    code, added = cli_json("hosts", "add", "gpu1", "ubuntu@203.0.113.7:2222", "--key",
                           "~/.ssh/id_gpu", "--path", "/data/my dir", "--python",
                           "/opt/py/bin/python3", "--proxy-jump", "me@bastion")
    assert code == 0 and added["ok"] and added["command"] == "hosts add"
    assert added["result"]["host"]["target"] == "ubuntu@203.0.113.7:2222"
    code, _, err = cli("hosts", "add", "gpu2", "lab@gpu2.example")
    assert code == 0 and "saved host gpu2" in err

    code, listed = cli_json("hosts", "list")
    assert code == 0
    names = [h["name"] for h in listed["result"]["hosts"]]
    assert names == ["local", "gpu1", "gpu2"]
    assert listed["result"]["hosts_file"] == str(tmp_path / "hosts.yaml")

    code, shown = cli_json("hosts", "show", "gpu1")
    host = shown["result"]["host"]
    assert code == 0
    assert (host["user"], host["host"], host["port"]) == ("ubuntu", "203.0.113.7", 2222)
    assert host["path"] == "/data/my dir" and host["python"] == "/opt/py/bin/python3"
    assert host["proxy_jump"] == "me@bastion"
    assert host["key_files"] == [os.path.expanduser("~/.ssh/id_gpu")]

    code, out, _ = cli("hosts", "list")
    assert code == 0 and "gpu2" in out and "lab@gpu2.example:22" in out
    code, out, _ = cli("hosts", "show", "gpu2")
    assert code == 0 and "gpu2.example" in out
    saved = yaml.safe_load((tmp_path / "hosts.yaml").read_text())
    assert saved["hosts"]["gpu2"] == {"host": "gpu2.example", "user": "lab"}


def test_hosts_flag_overrides_env(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.yaml"
    assert cli("hosts", "add", "x", "u@h", "--hosts", str(other))[0] == 0
    assert "x:" in other.read_text() and not (tmp_path / "hosts.yaml").exists()


def test_unknown_host_and_bad_file_exit_codes(tmp_path: Path) -> None:
    # REMOTE_SEP_HOSTS names a file that is not there yet: said so, not "unknown host".
    code, body = cli_json("hosts", "show", "nope")
    assert code == 4 and body["error"]["kind"] == "bad_config"
    assert str(tmp_path / "hosts.yaml") in body["error"]["message"]
    (tmp_path / "hosts.yaml").write_text("hosts:\n  a:\n    host: x\n")
    code, body = cli_json("hosts", "show", "nope")
    assert code == 5 and body["ok"] is False and body["error"]["kind"] == "unknown_host"
    assert "local" in body["error"]["message"]
    (tmp_path / "hosts.yaml").write_text("hosts:\n  a:\n    host: x\n    usr: me\n")
    code, out, err = cli("hosts", "list")
    assert code == 4 and f"{tmp_path / 'hosts.yaml'}:4:" in err and "did you mean 'user'" in err
    code, _, err = cli("hosts", "add", "b", "u@h:70000")
    assert code == 4 and "port" in err


def test_local_is_listed_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMOTE_SEP_HOSTS")  # the default place, where there is no file
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    code, body = cli_json("hosts", "show", "local")
    assert code == 0 and body["result"]["host"]["target"] == "local (this machine)"


# ---------------------------------------------------------------- check / trust (real sshd)


@pytest.mark.e2e
def test_check_reports_python_gpu_disk_and_provisioning(tmp_path: Path, ssh_server) -> None:
    base = tmp_path / "remote base's $(dir)"
    entry = profile_for(ssh_server, base, path_prepend=[str(nvidia_smi_dir(tmp_path))],
                        env={"NVSMI_GPU": "NVIDIA Stand-in 48GB", "NVSMI_MEM_USED": "1234"})
    del entry["python"]  # the default: python3 on the remote PATH
    write_hosts_file(tmp_path / "hosts.yaml", {"box": entry})

    code, body = cli_json("hosts", "check", "box")
    result = body["result"]
    assert code == 0 and result["reachable"] is True
    assert result["python"]["version"].startswith("3.")
    assert result["gpus"] == [{"name": "NVIDIA Stand-in 48GB", "driver": "570.86.10",
                               "memory_total": "81920 MiB", "memory_used": "1234 MiB"}]
    assert result["disk"]["path"] == str(tmp_path)  # base does not exist yet: nearest parent
    assert result["disk"]["free_bytes"] > 0
    assert result["provisioned"] is False and "bootstrap box" in result["hint"]

    venv = base / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(shutil.which("python3"), venv / "bin" / "python")
    (venv / "remote-sep-stamp.json").write_text("{}")
    code, out, _ = cli("hosts", "check", "box")
    assert code == 0 and "NVIDIA Stand-in 48GB" in out and "provisioned  yes" in out
    assert f"base path    {base}" in out


@pytest.mark.e2e
def test_check_probes_the_payload_runtime_of_a_profile_python(tmp_path: Path,
                                                              ssh_server) -> None:
    # The profile's own interpreter: ready only when it imports torch and sam_audio.
    entry = profile_for(ssh_server, tmp_path / "base")  # python: this test's interpreter
    write_hosts_file(tmp_path / "hosts.yaml", {"box": entry})
    code, body = cli_json("hosts", "check", "box")
    runtime = body["result"]["runtime"]
    assert code == 0 and runtime["torch"] and "sam_audio_error" in runtime
    assert body["result"]["provisioned"] is False

    entry["env"] = {"PYTHONPATH": str(TESTS / "standins")}
    write_hosts_file(tmp_path / "hosts.yaml", {"box": entry})
    code, out, _ = cli("hosts", "check", "box")
    assert code == 0 and "sam_audio STAND-IN" in out and "provisioned  yes" in out


@pytest.mark.e2e
def test_check_without_gpu_and_with_a_missing_python(tmp_path: Path, ssh_server) -> None:
    entry = profile_for(ssh_server, tmp_path / "base", python="/no/such/python")
    write_hosts_file(tmp_path / "hosts.yaml", {"box": entry})
    code, body = cli_json("hosts", "check", "box")
    result = body["result"]
    assert code == 0 and "error" in result["python"] and "hint" not in result
    if shutil.which("nvidia-smi") is None:  # the sshd is this machine
        assert result["gpus"] == [] and result["gpu_error"] == "no NVIDIA GPU"


@pytest.mark.e2e
def test_check_unreachable_port_is_a_clear_failure(tmp_path: Path, ssh_server) -> None:
    entry = profile_for(ssh_server, tmp_path / "base", port=free_port(), connect_timeout=3)
    write_hosts_file(tmp_path / "hosts.yaml", {"box": entry})
    code, body = cli_json("hosts", "check", "box")
    assert code == 6 and body["error"]["kind"] == "unreachable"


@pytest.mark.e2e
def test_trust_yes_then_check_connects(tmp_path: Path, ssh_server) -> None:
    known = tmp_path / "ssh" / "known_hosts"  # starts absent: nothing is trusted
    entry = profile_for(ssh_server, tmp_path / "base", known_hosts=str(known))
    write_hosts_file(tmp_path / "hosts.yaml", {"box": entry})

    code, out, err = cli("hosts", "check", "box")
    assert code == 8 and "remote-sep hosts trust box" in err

    code, body = cli_json("hosts", "trust", "box", "--yes")
    result = body["result"]
    assert code == 0 and result["added"] is True and result["known_hosts"] == str(known)
    expected = ssh_server.known_hosts_line().split()
    assert known.read_text().split() == expected  # exactly the server's key, for its [host]:port
    assert result["fingerprint"].startswith("SHA256:") and result["key_type"] == expected[1]

    code, body = cli_json("hosts", "check", "box")
    assert code == 0 and body["result"]["reachable"] is True


@pytest.mark.e2e
def test_trust_declined_writes_nothing(tmp_path: Path, ssh_server) -> None:
    known = tmp_path / "known_hosts"
    entry = profile_for(ssh_server, tmp_path / "base", known_hosts=str(known))
    write_hosts_file(tmp_path / "hosts.yaml", {"box": entry})

    code, out, err = cli("hosts", "trust", "box", input="n\n")
    assert code == 0 and "SHA256:" in err and "nothing written" in err
    assert not known.exists()

    code, out, err = cli("hosts", "trust", "box", input="y\n")
    assert code == 0 and known.read_text().split() == ssh_server.known_hosts_line().split()


@pytest.mark.e2e
def test_trust_of_a_changed_key_says_so_loudly_and_needs_a_terminal_or_yes(
        tmp_path: Path, ssh_server) -> None:
    from sshd import keygen

    from remote_sep.hosts.known_hosts import fingerprint

    stale = keygen(tmp_path / "stale").with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{ssh_server.port} {stale[0]} {stale[1]}\n")
    before = known.read_text()
    write_hosts_file(tmp_path / "hosts.yaml", {"box": profile_for(
        ssh_server, tmp_path / "base", known_hosts=str(known))})
    old_fp = fingerprint(stale[1])
    new_fp = fingerprint(ssh_server.known_hosts_line().split()[2])

    # Without --replace a changed key is never taken, not even with --yes.
    for extra in ((), ("--yes",)):
        code, out, err = cli("hosts", "trust", "box", *extra, input="y\n")
        assert code == 8 and "CHANGED" in err and old_fp in err and new_fp in err
        assert "remote-sep hosts trust box --replace" in err and "Replace the old" not in err
        assert known.read_text() == before

    code, out, err = cli("hosts", "trust", "box", "--replace", input="n\n")
    assert code == 0 and "CHANGED" in err
    assert err.index("CHANGED") < err.index("Replace the old key")  # told before asked
    assert "nothing written" in err and known.read_text() == before

    code, out, err = cli("hosts", "trust", "box", "--replace")  # no terminal, no answer
    assert code == 8 and "Aborted" not in out + err
    assert "no terminal" in err and "remote-sep hosts trust box --yes" in err
    assert known.read_text() == before

    result = CliRunner().invoke(app, ["hosts", "trust", "box", "--replace", "--yes", "--json"])
    body = json.loads(result.stdout)["result"]
    assert result.exit_code == 0 and "CHANGED" in result.stderr  # loud even with --yes
    assert body["changed"] and body["added"] and body["old_fingerprints"] == [
        f"{stale[0]} {old_fp}"]
    assert known.read_text().split() == ssh_server.known_hosts_line().split()

    code, out, err = cli("hosts", "trust", "box")  # trusted now: nothing to ask
    assert code == 0 and "already trusted" in err


@pytest.mark.e2e
def test_trust_of_a_new_key_without_a_terminal_asks_for_yes(tmp_path: Path,
                                                           ssh_server) -> None:
    known = tmp_path / "known_hosts"
    write_hosts_file(tmp_path / "hosts.yaml", {"box": profile_for(
        ssh_server, tmp_path / "base", known_hosts=str(known))})
    code, body = cli_json("hosts", "trust", "box")
    assert code == 8 and body["error"]["kind"] == "host_key"
    assert "--yes" in body["error"]["hint"] and not known.exists()


@pytest.mark.e2e
def test_bare_ssh_config_alias_connects(tmp_path: Path, ssh_server, monkeypatch) -> None:
    """No hosts.yaml at all: HostName/User/Port/IdentityFile/UserKnownHostsFile come from
    ssh_config, and `--host`-style names resolve through it."""
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host loopbox\n  HostName {ssh_server.host}\n  User {ssh_server.user}\n"
        f"  Port {ssh_server.port}\n  IdentityFile {ssh_server.user_key}\n"
        f"  UserKnownHostsFile {ssh_server.known_hosts}\n  ConnectTimeout 5\n")
    monkeypatch.setenv("REMOTE_SEP_SSH_CONFIG", str(config))
    monkeypatch.delenv("REMOTE_SEP_HOSTS")  # the default place, where there is no file
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    code, body = cli_json("hosts", "check", "loopbox")
    assert code == 0 and body["result"]["reachable"] is True
    assert body["result"]["target"] == f"{ssh_server.user}@127.0.0.1:{ssh_server.port}"
    assert not (tmp_path / "hosts.yaml").exists()
