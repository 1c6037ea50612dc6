"""End to end: `remote-sep bootstrap` against a real loopback sshd, real venv, real pip.

Offline-capable profile overrides: torch==2.13.0 (a CPU wheel on this machine's disk), the
stand-in sam_audio under tests/standins, `--cpu` (this machine has no GPU). The real pins
(huggingface_hub<1, transformers<5) and payload deps are installed. A local HTTP server
answers the Hub's auth-check for the three token cases. Tests share one host, in order.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import profile_for, write_hosts_file
from hub_standin import COMMIT, FILES, GOOD_TOKEN, NO_ACCESS_TOKEN, TEXT_ENCODER, HubStandin
from sshd import SshServer, start_sshd

from remote_sep import profiles
from remote_sep.errors import NotProvisioned
from remote_sep.provision import ensure_provisioned, venv_python
from remote_sep.provision.apply import bootstrap
from remote_sep.ssh.host import connect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TESTS = Path(__file__).resolve().parent
STANDINS = TESTS / "standins"
BAD_TOKEN = "hf_badTokenZyxwvutsrqponmlkjihgfedcb"
ALL_TOKENS = (GOOD_TOKEN, NO_ACCESS_TOKEN, BAD_TOKEN)
INSTALL_STEPS = ["venv", "torch", "sam_audio", "payload_deps", "verify"]


@dataclass
class World:
    root: Path
    server: SshServer
    hub: HubStandin
    base: Path
    hf_home: Path
    hosts: Path
    entry: dict

    def env(self, token: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(REMOTE_SEP_HOSTS=str(self.hosts), REMOTE_SEP_STATE_DIR=str(self.root / "state"),
                   HF_HOME=str(self.root / "local-hf"))  # never the developer's own login
        if token:
            env["HF_TOKEN"] = token
        return env

    def cli(self, *args: str, token: str | None = GOOD_TOKEN) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-c", "from remote_sep.cli.main import main; main()", "bootstrap",
               "gpu", *args]
        return subprocess.run(cmd, env=self.env(token), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=800)

    @property
    def log(self) -> Path:
        return self.root / "state" / "logs" / "bootstrap-gpu.log"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bootstrap")
    server = start_sshd(root / "sshd", log_level="DEBUG3")
    with HubStandin() as hub:
        base = root / "bäse dir"  # a space and non-ASCII: every remote path must be quoted
        hf_home = root / "hf home"
        entry = profile_for(
            server, base, path_prepend=[str(STANDINS / "bin")], hf_home=str(hf_home),
            env={"HF_ENDPOINT": hub.url, "NVSMI_CUDA": "12.8"},
            torch_spec="torch==2.13.0", torch_index="none", sam_audio_spec=str(STANDINS))
        hosts = write_hosts_file(root / "hosts.yaml", {"gpu": entry})
        yield World(root, server, hub, base, hf_home, hosts, entry)
    server.stop()


class ArgvWatch:
    """Scans every process's argv (/proc/*/cmdline) while a command runs."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._scan, daemon=True)

    def _scan(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        argv = (entry / "cmdline").read_bytes()
                    except OSError:
                        continue
                    self.seen.append(argv.decode("utf-8", "replace"))
            self._stop.wait(0.01)
        self.seen = list(set(self.seen))

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def assert_no_token_leak(world: World, *texts: str, argv: ArgvWatch | None = None) -> None:
    places = {"sshd log (DEBUG3)": world.server.log.read_text(errors="replace"),
              "local log": world.log.read_text() if world.log.exists() else ""}
    places.update({f"output {i}": text for i, text in enumerate(texts)})
    if argv is not None:
        assert argv.seen, "the argv scan saw no processes"
        places["process argv"] = "\n".join(argv.seen)
    for token in ALL_TOKENS:
        for where, text in places.items():
            assert token not in text, f"the token leaked into the {where}"


def events(world: World) -> list[dict]:
    return [json.loads(line) for line in world.log.read_text().splitlines()]


def test_dry_run_prints_the_plan_and_changes_nothing(world: World):
    run = world.cli("--cpu", "--dry-run")
    assert run.returncode == 0, run.stderr
    assert "torch==2.13.0" in run.stderr and "<HF token redacted>" in run.stderr
    assert "[would run] sam_audio" in run.stderr
    assert "token from: HF_TOKEN" in run.stderr
    assert not world.base.exists() and not world.hf_home.exists()
    assert_no_token_leak(world, run.stdout, run.stderr)
    cache = world.root / "local-hf"
    cache.mkdir(exist_ok=True)
    (cache / "token").write_text(GOOD_TOKEN)  # `hf auth login` on the laptop, no HF_TOKEN
    try:
        from_cache = world.cli("--cpu", "--dry-run", token=None)
    finally:
        (cache / "token").unlink()
    assert f"token from: the `hf auth login` cache ({cache / 'token'})" in from_cache.stderr
    assert_no_token_leak(world, from_cache.stdout, from_cache.stderr)
    nowhere = world.cli("--cpu", "--dry-run", token=None)
    assert "token from: nowhere" in nowhere.stderr


def test_gated_without_access_installs_then_stops_with_the_model_page(world: World):
    with ArgvWatch() as argv:
        run = world.cli("--cpu", "--json", token=NO_ACCESS_TOKEN)
    result = json.loads(run.stdout)
    assert run.returncode == 10, run.stdout + run.stderr
    assert result["error"]["kind"] == "gated"
    assert "https://huggingface.co/facebook/sam-audio-large" in result["error"]["hint"]
    # The install really happened, with the real pins, into the quoted base path.
    probe = subprocess.run(
        [venv_python(str(world.base)), "-c",
         "import torch, sam_audio, huggingface_hub, transformers, soundfile, soxr, numpy; "
         "print(torch.__version__, huggingface_hub.__version__, transformers.__version__)"],
        capture_output=True, text=True, check=True)
    torch_v, hub_v, transformers_v = probe.stdout.split()
    assert torch_v.startswith("2.13.0") and int(hub_v.split(".")[0]) < 1
    assert int(transformers_v.split(".")[0]) < 5
    # uv did it: fetched by the host's pip into P/tools/uv, the venv is uv's (no pip inside),
    # and the host's pip config reached uv: torch is the CPU wheel of pip's find-links dir.
    assert torch_v == "2.13.0+cpu"
    uv = world.base / "tools" / "uv" / "bin" / "uv"
    assert uv.is_file() and not (world.base / "tools" / "uv.part").exists()
    assert "\nuv = 0." in (world.base / "venv" / "pyvenv.cfg").read_text()
    assert not (world.base / "venv" / "bin" / "pip").exists()
    with_pip = [line for line in world.log.read_text().splitlines()
                if '"event": "installer"' in line]
    assert with_pip and all('"name": "uv"' in line for line in with_pip)
    assert any("/tools/uv/bin/uv\0pip\0install" in a for a in argv.seen)
    # The token reached the Hub stand-in as a header (it went over stdin, not argv).
    assert {"authorization": f"Bearer {NO_ACCESS_TOKEN}",
            "path": "/api/models/facebook/sam-audio-large/auth-check"} in world.hub.requests
    assert_no_token_leak(world, run.stdout, run.stderr, argv=argv)


def test_bad_token_resumes_without_reinstalling_and_fails_as_auth(world: World):
    before = len(events(world))
    run = world.cli("--cpu", token=BAD_TOKEN)
    assert run.returncode == 7, run.stderr
    assert "token was rejected" in run.stderr
    done = {e["step"]: e["status"] for e in events(world)[before:] if e["event"] == "step_done"}
    assert all(done[name] == "skipped" for name in INSTALL_STEPS), done
    assert_no_token_leak(world, run.stdout, run.stderr)


def test_bootstrap_with_access_writes_the_token_and_the_stamp(world: World):
    with ArgvWatch() as argv:
        run = world.cli("--cpu", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)["result"]
    assert result["up_to_date"] is False
    token_file = world.hf_home / "token"
    assert token_file.read_text() == GOOD_TOKEN
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(world.hf_home.stat().st_mode) == 0o700
    stamp = json.loads((world.base / "venv" / "remote-sep-stamp.json").read_text())
    assert stamp["complete"] and stamp["plan_hash"] == result["plan_hash"]
    assert_no_token_leak(world, run.stdout, run.stderr, argv=argv)


def test_second_bootstrap_is_one_round_trip_and_runs_no_pip_nor_uv(world: World):
    profile = profiles.get_profile("gpu", world.hosts)
    sshd_log_before = world.server.log.stat().st_size
    with connect(profile) as host:
        result = bootstrap(host, profile, cpu=True, token_source=lambda has_token: GOOD_TOKEN)
        assert host.round_trips == 1
    assert result.up_to_date and result.steps == []
    # The server agrees: one exec request in that session (the inspection script).
    new_log = world.server.log.read_text(errors="replace")[sshd_log_before:]
    assert new_log.count("req exec") == 1
    with ArgvWatch() as argv:
        run = world.cli("--cpu", "--json")
    assert run.returncode == 0
    assert json.loads(run.stdout)["result"]["steps"] == []
    # Only this host's venv counts: other test sessions on the machine may run pip too.
    venv = str(world.base / "venv")
    assert not [a for a in argv.seen if "\0-m\0pip\0" in a and a.startswith(venv)]
    uv = str(world.base / "tools" / "uv" / "bin" / "uv")  # inspection asks only its version
    assert not [a for a in argv.seen if a.startswith(uv) and a != f"{uv}\0--version\0"]


def test_prefetch_on_a_provisioned_host_only_downloads(world: World):
    with ArgvWatch() as argv:
        run = world.cli("--cpu", "--prefetch", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    steps = json.loads(run.stdout)["result"]["steps"]
    assert [(s["step"], s["status"]) for s in steps] == [("prefetch", "done")]
    snapshot = world.hf_home / "hub" / "models--facebook--sam-audio-large" / "snapshots" / COMMIT
    for name, data in FILES.items():
        assert (snapshot / name).read_bytes() == data
    # The text encoder the config names comes too, its weights filtered to what loads.
    cache_name = "models--" + TEXT_ENCODER.replace("/", "--")
    encoder = world.hf_home / "hub" / cache_name / "snapshots" / COMMIT
    assert (encoder / "config.json").read_bytes() == FILES["config.json"]
    assert not (encoder / "checkpoint.pt").exists()
    assert_no_token_leak(world, run.stdout, run.stderr, argv=argv)
    # the human view: sizes, what is cached, progress; --score adds the judge
    run = world.cli("--cpu", "--prefetch", "--score")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "model facebook/sam-audio-large (facebook/sam-audio-large): " in run.stderr
    assert "cached" in run.stderr and "free in" in run.stderr
    assert "done: judge (quality scores) facebook/sam-audio-judge" in run.stderr, run.stderr
    judge = world.hf_home / "hub" / "models--facebook--sam-audio-judge"
    assert (judge / "refs" / "sam_audio").exists()
    refused = world.cli("--score")  # a prefetch choice without --prefetch
    assert refused.returncode == 4 and "--prefetch" in refused.stderr


def test_ensure_provisioned_and_a_changed_plan_reruns_only_what_changed(world: World):
    profile = profiles.get_profile("gpu", world.hosts)
    with connect(profile) as host:
        ensure_provisioned(host, profile)  # matches: no error
        profile.pins = ["soxr>=0.3"]  # a changed plan
        with pytest.raises(NotProvisioned) as err:
            ensure_provisioned(host, profile)
        assert "remote-sep bootstrap gpu" in str(err.value)
        assert host.round_trips == 2
    write_hosts_file(world.hosts, {"gpu": {**world.entry, "pins": ["soxr>=0.3"]}})
    run = world.cli("--cpu", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    steps = {s["step"]: s["status"] for s in json.loads(run.stdout)["result"]["steps"]}
    assert steps["venv"] == steps["torch"] == "skipped"
    assert steps["sam_audio"] == steps["payload_deps"] == steps["verify"] == "done"
    with connect(profile) as host:
        ensure_provisioned(host, profile)


def test_a_failed_step_leaves_the_host_rerunnable(world: World):
    broken = {**world.entry, "sam_audio_spec": str(world.root / "no such sam_audio")}
    write_hosts_file(world.hosts, {"gpu": broken})
    run = world.cli("--cpu")
    assert run.returncode == 9, run.stderr
    assert "bootstrap step 'sam_audio' failed" in run.stderr and "rerun" in run.stderr
    profile = profiles.get_profile("gpu", world.hosts)
    with connect(profile) as host, pytest.raises(NotProvisioned, match="did not finish"):
        ensure_provisioned(host, profile)
    write_hosts_file(world.hosts, {"gpu": world.entry})  # fixed: resume
    requests_before = len(world.hub.requests)
    run = world.cli("--cpu", "--json", token=None)  # no local token: the host's file is used
    assert run.returncode == 0, run.stdout + run.stderr
    steps = {s["step"]: s for s in json.loads(run.stdout)["result"]["steps"]}
    assert steps["venv"]["status"] == steps["torch"]["status"] == "skipped"
    assert steps["sam_audio"]["status"] == "done"
    assert "keeping the one already in" in steps["token"]["detail"]
    assert world.hub.requests[requests_before:] == [{
        "path": "/api/models/facebook/sam-audio-large/auth-check",
        "authorization": f"Bearer {GOOD_TOKEN}"}]


def test_no_gpu_without_cpu_flag_is_a_clear_error(world: World, tmp_path: Path):
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": {
        **profile_for(world.server, tmp_path / "base"), "hf_home": str(tmp_path / "hf")}})
    env = {**world.env(GOOD_TOKEN), "REMOTE_SEP_HOSTS": str(hosts)}
    run = subprocess.run([sys.executable, "-c", "from remote_sep.cli.main import main; main()",
                          "bootstrap", "gpu"], env=env, capture_output=True, text=True)
    assert run.returncode == 13, run.stderr
    assert "no NVIDIA GPU" in run.stderr and "--cpu" in run.stderr
    assert not (tmp_path / "base").exists()
