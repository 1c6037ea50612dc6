"""The payload's Ray mode on a real Ray cluster (tests/ray_lab.py: a network namespace with
only lo, fake GPUs, token auth on): a long file over two GPUs identical to a plain run, a
batch with one model load per actor, an actor and a whole node killed mid-batch with every
output delivered once and sha256-correct, a driver without the token refused, stale
actors of another payload version replaced, `ray status` / `ray down`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray_lab
from payload_util import read_events, standin_env, write_audio

from remote_payload.manifest import Item, Manifest, Settings, item_to_json

pytestmark = pytest.mark.e2e

PY = sys.executable
RUN = [PY, "-m", "remote_payload", "run", "--manifest", "manifest.json",
       "--events", "events.jsonl"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _settings(**kw) -> Settings:
    return Settings(device="cpu", chunk_seconds=4.0, overlap_seconds=1.0,
                    worker_idle_timeout=0, **kw)


def _job(root: Path, items: list[Item], settings: Settings | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(root.name, settings or _settings(), items)
    (root / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    return root


def _ray_argv(lab) -> list[str]:
    return [*RUN, "--ray", lab.address, "--ray-call-timeout", "60"]


def _fill_inbox(job: Path, items: list[Item]) -> None:
    inbox = job / "inbox"
    inbox.mkdir(exist_ok=True)
    for n, item in enumerate(items):
        (inbox / f"{n:04d}-{item.id}.json").write_text(item_to_json(item), encoding="utf-8")
    (inbox / "CLOSE").write_text("", encoding="utf-8")


def _batch_items(job: Path, count: int, seconds: float) -> list[Item]:
    items = []
    for n in range(count):
        write_audio(job / f"in{n}.wav", seconds=seconds, rate=44100)
        items.append(Item(id=f"i{n}", input=f"in{n}.wav", descriptions=["bass", "treble"],
                          prefixes=[f"out/in{n}_bass", f"out/in{n}_treble"]))
    return items


def _delivered_once(job: Path, events: list[dict], items: list[Item]) -> None:
    """Every (item, description) has exactly one item_done, and every output named there
    is on disk with that sha256 and its .sha256 record."""
    done = [e for e in events if e["event"] == "item_done"]
    keys = sorted((e["item"], e["desc"]) for e in done)
    assert keys == sorted((i.id, d) for i in items for d in range(len(i.descriptions)))
    for event in done:
        for output in event["outputs"].values():
            path = Path(output["path"])
            assert _sha(path) == output["sha256"]
            assert path.with_name(path.name + ".sha256").read_text().split()[0] == \
                output["sha256"]
    assert not list((job / "out").glob(".*")), "a temp output was left behind"


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _events_so_far(job: Path) -> list[dict]:
    path = job / "events.jsonl"
    return read_events(path) if path.exists() else []


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    load_log = tmp_path_factory.mktemp("loads") / "loads.log"
    env = standin_env(SAM_STANDIN_LOAD_LOG=str(load_log),
                      SAM_STANDIN_SECONDS_PER_SECOND="0.05")
    with ray_lab.ray_cluster(gpus=[1, 1], env=env) as cluster:
        cluster.load_log = load_log
        yield cluster


def _admin(lab, action: str) -> dict:
    done = lab.run([PY, "-m", "remote_payload", "ray", action, "--address", lab.address],
                   capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ray_and_plain(lab, tmp_path: Path, items: list[Item], audio: str, seconds: float,
                   channels: int = 1, settings: Settings | None = None) -> tuple[Path, Path]:
    """The same job run on the cluster and by the plain payload; both must succeed."""
    ray_job = _job(tmp_path / "ray", items, settings)
    plain_job = _job(tmp_path / "plain", items, settings)
    write_audio(ray_job / audio, seconds=seconds, rate=44100, channels=channels)
    (plain_job / audio).write_bytes((ray_job / audio).read_bytes())
    done = lab.run(_ray_argv(lab), cwd=ray_job, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    plain = subprocess.run(RUN, cwd=plain_job, env=standin_env(), capture_output=True,
                           text=True, timeout=240)
    assert plain.returncode == 0, plain.stderr[-2000:]
    return ray_job, plain_job


def test_a_long_file_over_two_gpus_is_identical_to_one_plain_run(lab, tmp_path):
    items = [Item(id="long", input="long.wav", descriptions=["bass"],
                  prefixes=["out/long"])]
    ray_job, plain_job = _ray_and_plain(lab, tmp_path, items, "long.wav", 40, channels=2)
    for stem in ("target", "residual"):
        assert _sha(ray_job / f"out/long_{stem}.wav") == _sha(plain_job / f"out/long_{stem}.wav")
    events = read_events(ray_job / "events.jsonl")
    hello = events[0]
    assert hello["event"] == "hello" and hello["slots"] == 2 and hello["ray"]["gpus"] == 2
    # both GPUs served this one file: its chunks were spread over the cluster
    actors = _admin(lab, "status")["actors"]
    assert len(actors) == 2 and all(a["calls"] > 0 and a["loaded"] for a in actors), actors


def test_a_stem_split_on_the_cluster_is_identical_to_one_plain_run(lab, tmp_path):
    items = [Item("s", "song.wav", ["bass", "treble"], ["out/song"], stems=["bass", "treble"])]
    ray_job, plain_job = _ray_and_plain(lab, tmp_path, items, "song.wav", 14, channels=2)
    stems = ("bass", "treble", "other")
    assert [_sha(ray_job / f"out/song_{s}.wav") for s in stems] == \
        [_sha(plain_job / f"out/song_{s}.wav") for s in stems]


def test_rerank_and_scores_over_ray_match_a_plain_run(lab, tmp_path):
    settings = Settings(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25, batch_size=2,
                        rerank=2, score=True, worker_idle_timeout=0)
    items = [Item("a", "mix.wav", ["voice", "bass"], ["out/a0", "out/a1"])]
    ray_job, plain_job = _ray_and_plain(lab, tmp_path, items, "mix.wav", 3.5,
                                        settings=settings)

    def quality(job: Path) -> list:
        return [(e["item"], e["desc"], e["rerank"], e["scores"],
                 {k: o["sha256"] for k, o in e["outputs"].items()})
                for e in read_events(job / "events.jsonl") if e["event"] == "item_done"]

    ours, theirs = quality(ray_job), quality(plain_job)
    assert ours == theirs and len(ours) == 2 and ours[0][2], ours


def test_a_batch_survives_an_actor_killed_mid_item(lab, tmp_path):
    job = _job(tmp_path / "batch", [])
    items = _batch_items(job, count=6, seconds=12)
    _fill_inbox(job, items)
    driver = lab.popen([*_ray_argv(lab), "--inbox", "inbox"], cwd=job,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: any(e["event"] == "chunk" for e in _events_so_far(job)), 120,
                  "the first chunk")
        victim = lab.actor_pids()[0]
        os.kill(victim, 9)
        assert driver.wait(timeout=240) == 0, driver.stderr.read().decode()[-2000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    events = read_events(job / "events.jsonl")
    _delivered_once(job, events, items)
    codes = [e.get("code") for e in events if e["event"] == "warning"]
    assert "ray_actor_lost" in codes, codes
    assert events[-1]["event"] == "bye" and events[-1]["ok"] is True


def _loads(lab) -> int:
    path = lab.load_log
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_one_model_load_per_actor_across_runs(lab, tmp_path):
    _admin(lab, "down")  # cold actors: this run creates them
    before = _loads(lab)
    job = _job(tmp_path / "cold", [])
    items = _batch_items(job, count=4, seconds=6)
    _fill_inbox(job, items)
    first = lab.run([*_ray_argv(lab), "--inbox", "inbox"], cwd=job, capture_output=True,
                    text=True, timeout=240)
    assert first.returncode == 0, first.stderr[-2000:]
    assert _loads(lab) - before == 2  # two actors, one load each, for 8 outputs
    load = next(e for e in read_events(job / "events.jsonl") if e["event"] == "load")
    assert load["actors"] == 2 and load["loaded_now"] == 2

    again = _job(tmp_path / "warm", [])
    _fill_inbox(again, _batch_items(again, count=2, seconds=6))
    second = lab.run([*_ray_argv(lab), "--inbox", "inbox"], cwd=again, capture_output=True,
                     text=True, timeout=240)
    assert second.returncode == 0, second.stderr[-2000:]
    assert _loads(lab) - before == 2  # the next run found them warm
    load = next(e for e in read_events(again / "events.jsonl") if e["event"] == "load")
    assert load["warm"] == 2 and load["loaded_now"] == 0


def test_a_driver_without_the_token_is_refused_with_one_clear_error(lab, tmp_path):
    job = _job(tmp_path / "notoken", [Item(id="a", input="a.wav", descriptions=["bass"],
                                          prefixes=["out/a"])])
    write_audio(job / "a.wav", seconds=2)
    env = {k: v for k, v in lab.env().items() if not k.startswith("RAY_AUTH_TOKEN")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
    done = lab.run(_ray_argv(lab), cwd=job, env=env, capture_output=True, text=True,
                   timeout=180)
    assert done.returncode == 21, done.stderr[-2000:]
    errors = [e for e in read_events(job / "events.jsonl") if e["event"] == "error"]
    assert [e["kind"] for e in errors] == ["cluster"]
    assert "cannot join the Ray cluster" in errors[0]["message"]
    assert "Traceback" not in done.stdout
    assert not list((job / "out").glob("*"))


def test_actors_of_another_payload_version_are_replaced(lab, tmp_path):
    # Start actors as an older payload would (another version string), holding the GPUs.
    script = ("from remote_payload.ray_pool import connect, ensure_actors\n"
              f"ray = connect({lab.address!r})\n"
              "ensure_actors(ray, 'old-version', print)\n")
    old = lab.run([PY, "-c", script], capture_output=True, text=True, timeout=180)
    assert old.returncode == 0, old.stderr[-2000:]
    assert {a["version"] for a in _admin(lab, "status")["actors"]} == {"old-version"}
    job = _job(tmp_path / "new", [Item(id="a", input="a.wav", descriptions=["bass"],
                                       prefixes=["out/a"])])
    write_audio(job / "a.wav", seconds=3)
    done = lab.run(_ray_argv(lab), cwd=job, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    versions = {a["version"] for a in _admin(lab, "status")["actors"]}
    assert len(versions) == 1 and "old-version" not in versions
    assert _admin(lab, "down")["killed"] == ["sam-gpu-0", "sam-gpu-1"]
    assert _admin(lab, "status")["actors"] == []


def test_a_worker_node_killed_mid_batch_loses_nothing(tmp_path):
    env = standin_env(SAM_STANDIN_SECONDS_PER_SECOND="0.05")
    with ray_lab.ray_cluster(gpus=[1, 1], env=env) as lab:
        job = _job(tmp_path / "node", [])
        items = _batch_items(job, count=6, seconds=12)
        _fill_inbox(job, items)
        driver = lab.popen([*_ray_argv(lab), "--inbox", "inbox"], cwd=job,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for(lambda: sum(e["event"] == "chunk" for e in _events_so_far(job)) >= 4,
                      120, "chunks on both GPUs")
            lab.kill_node(1)  # the worker node: raylet, its actor, everything
            assert driver.wait(timeout=300) == 0, driver.stderr.read().decode()[-2000:]
        finally:
            if driver.poll() is None:
                driver.kill()
        events = read_events(job / "events.jsonl")
        _delivered_once(job, events, items)
        assert "ray_actor_lost" in [e.get("code") for e in events if e["event"] == "warning"]


def test_a_warm_model_nobody_uses_is_unloaded(lab, tmp_path):
    _admin(lab, "down")  # actors made by the next driver, with a 2 s idle limit
    job = _job(tmp_path / "idle", [Item(id="a", input="a.wav", descriptions=["bass"],
                                        prefixes=["out/a"])])
    write_audio(job / "a.wav", seconds=3)
    env = {**lab.env(), "REMOTE_SEP_RAY_IDLE_UNLOAD": "2"}
    done = lab.run(_ray_argv(lab), cwd=job, env=env, capture_output=True, text=True,
                   timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    _wait_for(lambda: not any(a["loaded"] for a in _admin(lab, "status")["actors"]), 60,
              "the idle actors to unload their model")
    assert len(_admin(lab, "status")["actors"]) == 2  # the actors stay, their GPUs' memory free
    _admin(lab, "down")


def test_a_driver_stopped_mid_batch_says_so_once_and_leaves_no_temp_file(lab, tmp_path):
    job = _job(tmp_path / "term", [])
    items = _batch_items(job, count=4, seconds=12)
    _fill_inbox(job, items)
    driver = lab.popen([*_ray_argv(lab), "--inbox", "inbox"], cwd=job,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: sum(e["event"] == "chunk" for e in _events_so_far(job)) >= 2, 120,
                  "items running on both actors")
        driver.terminate()  # what `clean` does to a worker nobody feeds (TERM, then KILL)
        assert driver.wait(timeout=60) == 130
    finally:
        if driver.poll() is None:
            driver.kill()
    events = read_events(job / "events.jsonl")
    errors = [e for e in events if e["event"] == "error"]
    assert [(e["kind"], e["item"]) for e in errors] == [("interrupted", None)], errors
    assert events[-1]["event"] == "bye" and events[-1]["exit_code"] == 130
    assert not list((job / "out").glob(".*")), "a temp output was left behind"
