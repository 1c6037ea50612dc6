"""hosts.yaml loading/validation, ssh_config merge, the built-in local host, and add_host."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import pytest

from remote_sep import profiles
from remote_sep.errors import ConfigError, UnknownHost
from remote_sep.profiles.fields import FIELDS


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the real ~/.ssh or the user's hosts.yaml."""
    monkeypatch.setenv("REMOTE_SEP_SSH_CONFIG", str(tmp_path / "no-ssh-config"))
    monkeypatch.delenv("REMOTE_SEP_KNOWN_HOSTS", raising=False)
    monkeypatch.delenv("REMOTE_SEP_HOSTS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def write(tmp_path: Path, text: str, name: str = "hosts.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        profiles.load_hosts(path)
    assert info.value.exit_code == 4
    return info.value.message


def test_valid_file_loads_every_field(tmp_path: Path) -> None:
    path = write(tmp_path, """\
hosts:
  gpu1:
    host: 203.0.113.7
    user: ubuntu
    port: 2222
    key: ~/.ssh/id_gpu
    path: /workspace/remote-sep
    python: /opt/py/bin/python3
    proxy_jump: jump@bastion:22
    known_hosts: [/tmp/kh1, /tmp/kh2]
    connect_timeout: 4
    model: large
    dtype: bf16
    chunk_seconds: 20
    path_prepend: /opt/bin
    hf_home: /data/hf
    env: {CUDA_VISIBLE_DEVICES: 1}
    pins: [numpy<2]
    pip_args: [--find-links, /wheels]
    allow_sudo: true
""")
    gpu = profiles.load_hosts(path)["gpu1"]
    assert (gpu.host, gpu.user, gpu.port) == ("203.0.113.7", "ubuntu", 2222)
    assert gpu.key_files == [os.path.expanduser("~/.ssh/id_gpu")]
    assert gpu.known_hosts == ["/tmp/kh1", "/tmp/kh2"]
    assert gpu.connect_timeout == 4.0 and gpu.chunk_seconds == 20.0
    assert gpu.path_prepend == ["/opt/bin"] and gpu.env == {"CUDA_VISIBLE_DEVICES": "1"}
    assert gpu.proxy_jump == "jump@bastion:22" and gpu.allow_sudo is True
    assert gpu.source_file == str(path) and gpu.source_line == 2


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  gpu1:\n    host: a\n    user: [unclosed\n    port: 22\n")
    message = config_error(path)
    assert str(path) in message
    assert f"{path}:5:" in message and "line 4" in message  # where it broke, where it began
    assert "not valid YAML" in message


def test_bad_indentation_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  gpu1:\n    host: a\n   user: b\n")
    assert f"{path}:4:" in config_error(path)


def test_unknown_field_with_line_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  gpu1:\n    host: a\n\n    prot: 22\n")
    message = config_error(path)
    assert f"{path}:5:" in message
    assert "'prot'" in message and "did you mean 'port'" in message


def test_wrong_type_reports_the_value_line(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  gpu1:\n    host: a\n    chunk_seconds:\n      - 3\n")
    message = config_error(path)
    assert f"{path}:5:" in message and "field 'chunk_seconds'" in message
    assert "must be a number" in message


@pytest.mark.parametrize(
    ("value", "reason"),
    [("70000", "not a port number"), ("0", "not a port number"), ("abc", "whole number"),
     ("true", "whole number"), ("22.5", "whole number")],
)
def test_bad_port(tmp_path: Path, value: str, reason: str) -> None:
    path = write(tmp_path, f"hosts:\n  gpu1:\n    host: a\n    port: {value}\n")
    message = config_error(path)
    assert f"{path}:4:" in message and "field 'port'" in message and reason in message


def test_missing_host_field(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  ok:\n    host: a\n  gpu2:\n    user: me\n")
    message = config_error(path)
    assert f"{path}:4:" in message and "field 'host'" in message and "gpu2" in message


def test_duplicate_host_and_field_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  a:\n    host: x\n  a:\n    host: y\n")
    assert f"{path}:4:" in config_error(path) and "defined twice" in config_error(path)
    path = write(tmp_path, "hosts:\n  a:\n    host: x\n    host: y\n")
    assert f"{path}:4:" in config_error(path)


def test_wrong_shapes_and_top_level(tmp_path: Path) -> None:
    assert ":1:" in config_error(write(tmp_path, "- just\n- a list\n"))
    message = config_error(write(tmp_path, "host:\n  a: {host: x}\n"))
    assert ":1:" in message and "did you mean 'hosts'" in message
    assert ":2:" in config_error(write(tmp_path, "hosts:\n  a: 3\n"))


def test_env_refuses_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  a:\n    host: x\n    env:\n      HF_TOKEN: hf_abc\n")
    message = config_error(path)
    assert f"{path}:5:" in message and "secret" in message
    assert "hf_abc" not in message
    assert "expected" not in message  # the reason is the name, not the value's type


def test_local_is_built_in_and_refuses_ssh_fields(tmp_path: Path) -> None:
    local = profiles.load_hosts()["local"]  # no hosts.yaml at the default place
    assert local.is_local and local.path == platformdirs.user_data_dir("remote-sep")
    path = write(tmp_path, "hosts:\n  local:\n    python: /usr/bin/python3\n    model: small\n")
    local = profiles.get_profile("local", path)
    assert local.python == "/usr/bin/python3" and local.model == "small"
    assert f"{path}:4:" in config_error(write(tmp_path, "hosts:\n  local:\n\n    port: 22\n"))


def test_unknown_profile_lists_known_names(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  gpu1:\n    host: a\n  gpu2:\n    host: b\n")
    with pytest.raises(UnknownHost) as info:
        profiles.get_profile("gpu3", path)
    assert info.value.exit_code == 5
    assert "gpu1, gpu2, local" in info.value.message
    assert "remote-sep hosts add gpu3" in (info.value.hint or "")


def test_hosts_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert profiles.hosts_path() == tmp_path / "xdg-config" / "remote-sep" / "hosts.yaml"
    monkeypatch.setenv("REMOTE_SEP_HOSTS", str(tmp_path / "env.yaml"))
    assert profiles.hosts_path() == tmp_path / "env.yaml"
    assert profiles.hosts_path(tmp_path / "flag.yaml") == tmp_path / "flag.yaml"
    write(tmp_path, "hosts:\n  fromenv:\n    host: a\n", "env.yaml")
    assert "fromenv" in profiles.load_hosts()


def test_a_hosts_file_named_but_missing_says_so(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in --hosts or REMOTE_SEP_HOSTS is not an empty file ('unknown host gpu1')."""
    missing = tmp_path / "hosts.yml"
    for name in ("gpu1", "local"):
        with pytest.raises(ConfigError) as info:
            profiles.get_profile(name, missing)
        assert info.value.message == f"hosts file not found: {missing}"
        assert info.value.exit_code == 4 and "remote-sep hosts add" in (info.value.hint or "")
    monkeypatch.setenv("REMOTE_SEP_HOSTS", str(missing))
    with pytest.raises(ConfigError, match=r"hosts.yml \(named by \$REMOTE_SEP_HOSTS\)"):
        profiles.load_hosts()


SSH_CONFIG = """\
Host gpubox
  HostName 198.51.100.9
  User alice
  Port 2022
  IdentityFile {key}
  ProxyJump bastion
  UserKnownHostsFile {kh}
  ConnectTimeout 3

Host *
  ServerAliveInterval 5
"""


@pytest.fixture
def ssh_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write(tmp_path, SSH_CONFIG.format(key=tmp_path / "id_box", kh=tmp_path / "kh"),
                 "ssh_config")
    monkeypatch.setenv("REMOTE_SEP_SSH_CONFIG", str(path))
    return path


def test_ssh_config_alias_fills_the_profile(tmp_path: Path, ssh_config: Path) -> None:
    path = write(tmp_path, "hosts:\n  box:\n    host: gpubox\n")
    box = profiles.get_profile("box", path)
    assert (box.host, box.hostname, box.user, box.port) == ("gpubox", "198.51.100.9", "alice", 2022)
    assert box.address == "198.51.100.9"
    assert box.key_files == [str(tmp_path / "id_box")]
    assert box.proxy_jump == "bastion"
    assert box.known_hosts == [str(tmp_path / "kh")]
    assert box.connect_timeout == 3.0


def test_profile_values_win_over_ssh_config(tmp_path: Path, ssh_config: Path) -> None:
    path = write(tmp_path, f"""\
hosts:
  box:
    host: gpubox
    user: bob
    port: 2200
    key: {tmp_path / 'mine'}
    proxy_jump: other-jump
    known_hosts: {tmp_path / 'kh-profile'}
    connect_timeout: 9
""")
    box = profiles.get_profile("box", path)
    assert (box.user, box.port, box.proxy_jump) == ("bob", 2200, "other-jump")
    assert box.hostname == "198.51.100.9"  # the profile has no HostName of its own
    assert box.key_files[0] == str(tmp_path / "mine")  # tried first, ssh_config's after
    assert box.known_hosts == [str(tmp_path / "kh-profile")]
    assert box.connect_timeout == 9.0


def test_bare_ssh_config_alias_works_without_hosts_yaml(tmp_path: Path, ssh_config: Path) -> None:
    box = profiles.get_profile("gpubox")  # no hosts.yaml at the default place
    assert (box.name, box.address, box.user, box.port) == ("gpubox", "198.51.100.9", "alice", 2022)
    with pytest.raises(UnknownHost):  # wildcard patterns are not aliases
        profiles.get_profile("*")


def test_known_hosts_defaults_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "hosts:\n  a:\n    host: x\n")
    assert profiles.get_profile("a", path).known_hosts == [
        os.path.expanduser("~/.ssh/known_hosts"), "/etc/ssh/ssh_known_hosts"]
    monkeypatch.setenv("REMOTE_SEP_KNOWN_HOSTS", f"/tmp/one{os.pathsep}/tmp/two")
    assert profiles.get_profile("a", path).known_hosts == ["/tmp/one", "/tmp/two"]


# ---------------------------------------------------------------- add_host


def test_add_host_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "hosts.yaml"
    profile = profiles.add_host("gpu1", "ubuntu@203.0.113.7:2222", key="~/.ssh/k",
                                path="/data/my dir", hosts_file=path)
    assert (profile.user, profile.host, profile.port, profile.path) == (
        "ubuntu", "203.0.113.7", 2222, "/data/my dir")
    again = profiles.get_profile("gpu1", path)
    assert again.key_files == [os.path.expanduser("~/.ssh/k")]
    assert [p.name for p in path.parent.iterdir()] == ["hosts.yaml"]  # no temp file left


def test_add_host_keeps_comments_and_other_entries(tmp_path: Path) -> None:
    path = write(tmp_path, """\
# my hosts
hosts:
  gpu1:
    host: old.example   # the old box
    port: 2200
    model: large
  # the second box
  gpu2:
    host: b.example  # keep me
""")
    profiles.add_host("gpu1", "me@new.example", python="/opt/py", hosts_file=path)
    profiles.add_host("gpu3", "[2001:db8::1]:2022", hosts_file=path)
    text = path.read_text()
    for kept in ("# my hosts", "# the second box", "host: b.example  # keep me"):
        assert kept in text
    found = profiles.load_hosts(path)
    gpu1 = found["gpu1"]
    assert (gpu1.host, gpu1.user, gpu1.port) == ("new.example", "me", 22)  # port came from target
    assert gpu1.model == "large" and gpu1.python == "/opt/py"  # other fields kept
    assert found["gpu2"].host == "b.example"
    assert (found["gpu3"].host, found["gpu3"].port) == ("2001:db8::1", 2022)


def test_add_host_refuses_bad_input_and_broken_files(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  a:\n    host: x\n    prot: 1\n")
    before = path.read_text()
    with pytest.raises(ConfigError, match=":4:"):
        profiles.add_host("b", "u@h", hosts_file=path)
    assert path.read_text() == before
    for target in ("u@h:99999", "u@h:x", "u@", "a b"):
        with pytest.raises(ConfigError):
            profiles.add_host("c", target, hosts_file=tmp_path / "other.yaml")
    with pytest.raises(ConfigError, match="built-in"):
        profiles.add_host("local", "u@h", hosts_file=tmp_path / "other.yaml")
    assert not (tmp_path / "other.yaml").exists()


def test_hosts_yaml_example_is_valid_and_documents_every_field() -> None:
    example = Path(__file__).resolve().parent.parent / "hosts.yaml.example"
    found = profiles.load_hosts(example)
    assert found["gpu1"].host == "203.0.113.7" and found["lab"].host == "lab-gpu"
    text = example.read_text()
    for field in FIELDS:
        assert f"{field}:" in text, f"hosts.yaml.example does not document {field}"
