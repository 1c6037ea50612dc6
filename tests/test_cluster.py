"""The pure parts of `cluster up/status/down` and the cluster profile: the `ray` field, the
payload's --ray arguments, the ray start command lines, the version check, the probe's GPU
count, the pinned Ray in the bootstrap plan, the cluster profile written with comments kept.
(tests/test_cluster_e2e.py runs the real thing.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_provision_plan import FACTS

from remote_sep.cluster import commands
from remote_sep.cluster.commands import Probe, Where
from remote_sep.errors import ClusterError, ConfigError, NotProvisioned
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs.layout import JobPaths, start_script
from remote_sep.profiles import load_hosts, write_entry
from remote_sep.provision.inspect import parse_facts
from remote_sep.provision.plan import RAY_REQUIREMENT, build_plan
from remote_sep.provision.stamp import check_stamp, stamp_record

TESTS = Path(__file__).resolve().parent


def _hosts(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hosts.yaml"
    path.write_text(body)
    return path


def test_the_ray_field_takes_auto_or_host_port(tmp_path):
    hosts = _hosts(tmp_path, "hosts:\n  c:\n    host: h\n    ray: auto\n"
                             "  d:\n    host: h\n    ray: 10.0.0.5:6379\n  e:\n    host: h\n")
    loaded = load_hosts(hosts)
    assert (loaded["c"].ray, loaded["d"].ray, loaded["e"].ray) == ("auto", "10.0.0.5:6379", None)


@pytest.mark.parametrize("value", ["yes", "10.0.0.5", "h:port", "h:70000", ":6379"])
def test_a_bad_ray_value_names_file_line_and_field(tmp_path, value):
    hosts = _hosts(tmp_path, f"hosts:\n  c:\n    host: h\n    ray: '{value}'\n")
    with pytest.raises(ConfigError) as err:
        load_hosts(hosts)
    assert f"{hosts}:4: field 'ray':" in err.value.message
    assert "auto or HOST:PORT" in err.value.message


def test_a_ray_profile_starts_the_payload_with_its_address_and_token_file():
    paths = JobPaths("/srv/rs", "job1")
    plain = start_script(HostProfile(name="g"), paths, "/py", "/srv/rs/payload/x")
    ray = start_script(HostProfile(name="c", ray="auto"), paths, "/py", "/srv/rs/payload/x",
                       inbox=True)
    assert "--ray" not in plain and "auth_token" not in plain
    assert "--inbox inbox --ray auto --ray-token-file /srv/rs/ray/auth_token" in ray


def _where(host: str = "10.0.0.5", **extra) -> Where:
    profile = HostProfile(name="g", host=host, env={"PYTHONPATH": "/standins"}, **extra)
    return Where(profile, "/srv/rs", "/srv/rs/venv/bin/python", "/srv/rs/payload/abc")


def test_ray_start_command_lines_for_head_and_worker():
    where = _where()
    assert commands.start_argv(where, head_address=None, port=6379, gpus=2) == [
        "/srv/rs/venv/bin/python", "-m", "ray.scripts.scripts", "start", "--head", "--port",
        "6379", "--num-gpus", "2", "--disable-usage-stats", "--include-dashboard=false",
        "--node-ip-address", "10.0.0.5"]
    named = _where("gpu1.example.org")
    assert commands.start_argv(named, head_address="10.0.0.5", port=7000, gpus=0) == [
        "/srv/rs/venv/bin/python", "-m", "ray.scripts.scripts", "start", "--address",
        "10.0.0.5:7000", "--num-gpus", "0", "--disable-usage-stats"]  # Ray picks the IP


def test_ray_runs_with_the_profile_env_and_the_token_path_never_the_token():
    where = _where(path_prepend=["/cuda/bin"], hf_home="/hf")
    script = commands.start_script(where, commands.start_argv(
        where, head_address=None, port=6379, gpus=1))
    for line in ("export RAY_AUTH_MODE=token", "export RAY_AUTH_TOKEN_PATH=/srv/rs/ray/auth_token",
                 "export PYTHONPATH=/srv/rs/payload/abc:/standins", "export HF_HOME=/hf",
                 'export PATH=/cuda/bin:"$PATH"'):
        assert line in script
    assert "RAY_AUTH_TOKEN=" not in script


def test_versions_must_agree_on_every_host():
    same = {"a": Probe("3.11", "2.60.0", False, False, 1),
            "b": Probe("3.11", "2.60.0", False, False, 0)}
    assert commands.check_versions(same) == "2.60.0"
    with pytest.raises(ClusterError) as err:
        commands.check_versions({**same, "c": Probe("3.12", "2.60.0", False, False, 1)})
    assert "a: ray 2.60.0 on Python 3.11" in err.value.message
    assert "c: ray 2.60.0 on Python 3.12" in err.value.message
    assert err.value.kind == "cluster"
    with pytest.raises(ClusterError, match="ray does not import on b"):
        commands.check_versions({**same, "b": Probe("3.11", None, False, False, 1)})


def test_the_probe_counts_the_gpus_nvidia_smi_lists():
    standin = TESTS / "standins" / "bin" / "nvidia-smi"
    for count in (0, 1, 3):
        done = subprocess.run([str(standin), "--query-gpu=name", "--format=csv,noheader"],
                              env={"NVSMI_COUNT": str(count)}, capture_output=True, text=True)
        text = ('python=3.11\nray=2.60.0\nnode={"running": true, "gcs": "10.0.0.5:6379"}\n'
                "token=1\n") + "".join(f"gpu={line}\n" for line in done.stdout.splitlines()
                                       if done.returncode == 0)
        probe = commands.parse_probe(text)
        assert probe == Probe("3.11", "2.60.0", True, True, count, "10.0.0.5:6379")
        assert probe.joined(6379) and not probe.joined(7000)


def test_a_cluster_plan_pins_the_one_ray_and_serves_the_plain_profile_too():
    facts = parse_facts(FACTS)
    plain, member = HostProfile(name="g"), HostProfile(name="g", ray="auto",
                                                       pins=["ray==2.9.0"])
    assert RAY_REQUIREMENT not in build_plan(facts, plain).inputs["pins"]
    pins = build_plan(facts, member).inputs["pins"]
    assert pins[-1] == RAY_REQUIREMENT and "ray==2.9.0" not in pins
    assert any(RAY_REQUIREMENT in s.script for s in build_plan(facts, member).steps)
    plan = build_plan(facts, HostProfile(name="g", ray="auto"))
    record = stamp_record(plan, {s.name: s.key for s in plan.install_steps}, True)
    check_stamp(HostProfile(name="g"), record)  # a member host's venv serves its profile
    plain_plan = build_plan(facts, plain)
    plain_record = stamp_record(plain_plan, {s.name: s.key for s in plain_plan.install_steps},
                                True)
    with pytest.raises(NotProvisioned, match="changed"):
        check_stamp(HostProfile(name="g", ray="auto"), plain_record)  # ray not there yet


def test_the_cluster_profile_is_written_with_comments_kept(tmp_path):
    hosts = _hosts(tmp_path, "# my hosts\nhosts:\n  a:  # the head\n    host: 10.0.0.5\n"
                             "    port: 2222\n")
    write_entry("lab", {"host": "10.0.0.5", "port": 2222, "ray": "auto",
                        "ray_workers": ["b", "c"]}, hosts)
    text = hosts.read_text()
    assert "# my hosts" in text and "# the head" in text
    lab = load_hosts(hosts)["lab"]
    assert (lab.address, lab.port, lab.ray, lab.ray_workers) == \
        ("10.0.0.5", 2222, "auto", ["b", "c"])
    with pytest.raises(ConfigError):
        write_entry("local", {"host": "x"}, hosts)


def test_the_scoped_stop_ends_only_processes_started_with_the_token_path(tmp_path):
    """node_script: a process whose environment names this host's token file (and its
    children) is stopped; one without it, and the shell running the stop, are not."""
    import os
    import sys

    from remote_sep.cluster.node_script import NODE_SNIPPET

    token = str(tmp_path / "ray" / "auth_token")
    other = subprocess.Popen(["sleep", "60"])  # not ours: no marker in its environment
    try:
        script = ('sh -c "sleep 60" & S=$!\n'  # ours, and its child
                  f'"$PY" -c "$SNIPPET" stop {token}\n'
                  'sleep 0.2; kill -0 $S 2>/dev/null && echo ours-alive || echo ours-gone\n'
                  'echo shell-alive\n')
        env = {**os.environ, "RAY_AUTH_TOKEN_PATH": token, "PY": sys.executable,
               "SNIPPET": NODE_SNIPPET}
        done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                              timeout=30)
        assert "ours-gone" in done.stdout and "shell-alive" in done.stdout, done
        assert '"left": []' in done.stdout
        assert other.poll() is None  # untouched
    finally:
        other.kill()
        other.wait()


def test_the_bootstrap_pin_is_the_ray_the_package_extras_name():
    import tomllib

    project = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["ray"] == [RAY_REQUIREMENT]
    assert RAY_REQUIREMENT in project["optional-dependencies"]["test"]
