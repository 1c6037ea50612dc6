"""`bootstrap --prefetch`'s download, for real: over the loopback sshd, from a local Hub
stand-in over HTTP (tests/hub_standin.py), into a real Hugging Face cache on the "host".

Then the payload's preflight against that cache with the Hub declared offline: a job whose
components were prefetched runs (the stand-in sam_audio reads the cache the way the real
code does: SAM_STANDIN_HUB=1), one that needs a component not fetched fails before its
first item, naming it and the prefetch command (a separate-style manifest and a batch inbox).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from conftest import profile_for, write_hosts_file
from hub_standin import GOOD_TOKEN, HubStandin
from payload_util import of, run_payload, standin_env, write_audio

from remote_payload.manifest import Item, Settings
from remote_sep import profiles
from remote_sep.errors import RemoteSepError
from remote_sep.hosts.shell import export_lines
from remote_sep.provision.prefetch import PrefetchWants, run_prefetch
from remote_sep.ssh.host import connect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL = "facebook/sam-audio-large"
CONFIG = {"text_encoder": {"name": "t5-base"}, "span_predictor": "pe-a-frame-large",
          "text_ranker": {"kind": "judge"}, "visual_ranker": None}
CHECKPOINT = os.urandom(6 * 2**20)  # 6 MiB: several progress events at 3 MB/s
REPOS = {
    MODEL: {"config.json": json.dumps(CONFIG).encode(), "checkpoint.pt": CHECKPOINT},
    "t5-base": {"config.json": b'{"model_type": "t5"}', "model.safetensors": os.urandom(4096),
                "spiece.model": b"sp", "pytorch_model.bin": os.urandom(4096)},
    "facebook/pe-a-frame-large": {"config.json": b"{}", "model.safetensors": os.urandom(2048)},
    "facebook/sam-audio-judge": {"config.json": b"{}", "checkpoint.pt": os.urandom(2048),
                                 "tokenizer_config.json": b"{}"},
}


class World:
    def __init__(self, root: Path, server, hub: HubStandin, hf_home: Path):
        self.root, self.server, self.hub, self.hf_home = root, server, hub, hf_home
        hf_home.mkdir(parents=True, exist_ok=True)
        # what bootstrap's token step leaves on the host: the token file, never an argument
        (hf_home / "token").write_text(GOOD_TOKEN)
        self.hosts = write_hosts_file(root / "hosts.yaml", {
            "gpu": profile_for(server, root / "base")})
        self.events: list[dict] = []

    def prefetch(self, wants: PrefetchWants | None = None, model: str = MODEL) -> dict:
        self.events = []
        profile = profiles.get_profile("gpu", self.hosts)
        prelude = "\n".join(export_lines([], {"HF_ENDPOINT": self.hub.url})) + "\n"
        with connect(profile) as host:
            return run_prefetch(host, base=str(self.root / "base"), python=sys.executable,
                                hf_home=str(self.hf_home), model=model,
                                wants=wants or PrefetchWants(),
                                report=self.events.append, prelude=prelude,
                                endpoint=self.hub.url, name="gpu")

    def of(self, name: str) -> list[dict]:
        return [e for e in self.events if e["event"] == name]

    def gets(self, name: str) -> list[dict]:
        return [r for r in self.hub.requests if r.get("method") != "HEAD"
                and r["path"].endswith("/" + name) and "/resolve/" in r["path"]]


@pytest.fixture
def world(tmp_path: Path, ssh_server):
    with HubStandin() as hub:
        hub.repos.update(REPOS)
        yield World(tmp_path, ssh_server, hub, tmp_path / "hf home")


def snapshot(hf_home: Path, repo: str) -> Path:
    folder = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    (commit,) = {p.read_text() for p in (folder / "refs").iterdir()}
    return folder / "snapshots" / commit


def test_prefetch_streams_progress_and_fills_the_cache(world: World):
    world.hub.rate = 3e6
    summary = world.prefetch(PrefetchWants(predict_spans=True))
    assert summary["ok"]
    (plan,) = world.of("prefetch_plan")
    assert [c["name"] for c in plan["components"]] == [
        f"model {MODEL}", "text encoder t5-base", "span predictor pe-a-frame-large"]
    assert plan["missing_bytes"] >= len(CHECKPOINT) and plan["free_bytes"] > 0
    # bytes and rate while the model's checkpoint streams, then one result per component
    moving = [e for e in world.of("prefetch_download") if 0 < e["done"] < e["total"]]
    assert moving and all(e["rate_bps"] > 0 for e in moving), world.events
    done = {e["component"]: e for e in world.of("prefetch_downloaded")}
    assert done[f"model {MODEL}"]["bytes"] == len(CHECKPOINT)
    model = snapshot(world.hf_home, MODEL)
    assert (model / "checkpoint.pt").read_bytes() == CHECKPOINT
    t5 = snapshot(world.hf_home, "t5-base")
    assert (t5 / "model.safetensors").exists() and not (t5 / "pytorch_model.bin").exists()
    span = world.hf_home / "hub" / "models--facebook--pe-a-frame-large"
    assert (span / "refs" / "perception_models").exists()  # the revision its loader asks for
    assert not (world.hf_home / "hub" / "models--facebook--sam-audio-judge").exists()
    assert GOOD_TOKEN not in json.dumps(world.events)
    # a second prefetch finds everything cached and downloads nothing
    before = len(world.gets("checkpoint.pt"))
    world.prefetch(PrefetchWants(predict_spans=True))
    assert world.of("prefetch_plan")[0]["missing_bytes"] == 0
    assert len(world.gets("checkpoint.pt")) == before


def test_a_full_disk_is_refused_before_the_download_with_the_figures(world: World, tmp_path):
    from faults.mounts import small_disk

    with small_disk(world.hf_home, "3m"):
        (world.hf_home / "token").write_text(GOOD_TOKEN)
        with pytest.raises(RemoteSepError) as caught:
            world.prefetch()
        assert caught.value.kind == "disk_full"
        message = caught.value.message
        assert "6.3 MB still to download" in message and "free in" in message, message
        assert not world.gets("checkpoint.pt")  # refused up front, not half-way
        assert not list((world.hf_home / "hub").rglob("*.incomplete"))


def test_an_interrupted_download_resumes_where_it_stopped(world: World):
    world.hub.cut_after["checkpoint.pt"] = 3 * 2**20  # the connection dies after 3 MiB
    with pytest.raises(RemoteSepError) as caught:
        world.prefetch()
    assert caught.value.kind == "transfer" and "resumes" in caught.value.message
    assert "rerun `remote-sep bootstrap gpu --prefetch`" in caught.value.message
    (partial,) = (world.hf_home / "hub").rglob("*.incomplete")
    kept = partial.stat().st_size
    assert 0 < kept < len(CHECKPOINT)
    world.prefetch()
    (plan,) = world.of("prefetch_plan")
    assert plan["components"][0]["partial_bytes"] == kept
    resumed = [r for r in world.gets("checkpoint.pt") if r.get("range")]
    assert [r["range"] for r in resumed] == [f"bytes={kept}-"]  # only the rest was asked for
    done = {e["component"]: e for e in world.of("prefetch_downloaded")}
    assert done[f"model {MODEL}"]["resumed"] is True
    data = (snapshot(world.hf_home, MODEL) / "checkpoint.pt").read_bytes()
    assert hashlib.sha256(data).digest() == hashlib.sha256(CHECKPOINT).digest()


def offline_env(hf_home: Path) -> dict[str, str]:
    return standin_env(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", SAM_STANDIN_HUB="1")


def test_offline_jobs_run_from_the_prefetched_cache_or_fail_first_naming_what_is_missing(
        world: World, tmp_path: Path):
    world.prefetch()
    audio = write_audio(tmp_path / "a.wav", seconds=1.0)
    small = dict(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25)
    env = offline_env(world.hf_home)
    rc, events, proc = run_payload(tmp_path / "ok", [Item("a", str(audio), ["x"], ["out/a"])],
                                   Settings(model="large", **small), env=env)
    assert rc == 0 and of(events, "item_done"), proc.stderr[-2000:]
    # --rerank needs the judge ranker, never prefetched: the job stops before item one
    items = [Item("a", str(audio), ["x"], ["out/a"]), Item("b", str(audio), ["y"], ["out/b"])]
    rerank = Settings(model="large", rerank=2, **small)
    rc, events, _ = run_payload(tmp_path / "separate", items, rerank, env=env)
    (error,) = of(events, "error")
    assert error["kind"] == "not_provisioned" and rc == 9
    assert "text ranker judge facebook/sam-audio-judge" in error["message"]
    assert "remote-sep bootstrap HOST --prefetch --rerank" in error["message"]
    assert "the Hub is offline on this host" in error["message"]  # the preflight's words
    assert not of(events, "load") and not of(events, "item_start")
    # a batch worker (inbox) fails the same way before it takes an item
    inbox = tmp_path / "batch" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "0001-a.json").write_text(json.dumps({"id": "a", "input": str(audio),
                                                   "descriptions": ["x"],
                                                   "prefixes": ["out/a"]}))
    rc, events, _ = run_payload(tmp_path / "batch", [], rerank, env=env, inbox=str(inbox))
    assert [e["kind"] for e in of(events, "error")] == ["not_provisioned"] and rc == 9
    assert (inbox / "0001-a.json").exists()  # left for a worker that can run it
    # prefetched with --rerank, the same job runs offline
    world.prefetch(PrefetchWants(rerank=True))
    rc, events, proc = run_payload(tmp_path / "rerank", items, rerank, env=env)
    assert rc == 0 and len(of(events, "item_done")) == 2, proc.stderr[-2000:]


def test_an_unreachable_hub_at_load_names_the_missing_components(world: World, tmp_path: Path):
    """Not declared offline: the load finds no Hub (a closed port) and names from the cache
    what it lacks, instead of "its weights, or the text encoder". Once everything is
    prefetched the job loads offline: none of huggingface_hub's retries (1+2+4+8+8 s per
    file) against the dead Hub."""
    audio = write_audio(tmp_path / "a.wav", seconds=1.0)
    small = dict(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25)
    nowhere = standin_env(HF_HOME=str(world.hf_home), SAM_STANDIN_HUB="1",
                          HF_ENDPOINT="http://127.0.0.1:9")
    item = [Item("a", str(audio), ["x"], ["out/a"])]
    rc, events, proc = run_payload(tmp_path / "empty", item, Settings(model="large", **small),
                                   env=nowhere)
    (error,) = of(events, "error")
    assert error["kind"] == "not_provisioned", proc.stderr[-2000:]
    assert "could not be reached" in error["message"]
    assert f"model {MODEL} ({MODEL})" in error["message"]
    assert "text encoder t5-base" in error["message"]
    world.prefetch(PrefetchWants(rerank=True))
    rc, events, proc = run_payload(tmp_path / "cached", item,
                                   Settings(model="large", rerank=2, **small), env=nowhere)
    assert rc == 0 and of(events, "item_done"), proc.stderr[-2000:]
    assert "Retrying in" not in proc.stderr and "127.0.0.1:9" not in proc.stderr


def test_a_missing_ranker_package_is_named_before_the_first_item(world: World,
                                                                  tmp_path: Path):
    clap = "facebook/sam-audio-small"
    world.hub.repos[clap] = {**REPOS[MODEL], "config.json": json.dumps(
        {**CONFIG, "text_ranker": {"kind": "clap"}}).encode()}
    world.prefetch(model=clap)
    audio = write_audio(tmp_path / "a.wav", seconds=1.0)
    rc, events, _ = run_payload(tmp_path / "job", [Item("a", str(audio), ["x"], ["out/a"])],
                                Settings(model="small", rerank=2, device="cpu"),
                                env=standin_env(HF_HOME=str(world.hf_home), SAM_STANDIN_HUB="1"))
    (error,) = of(events, "error")
    assert error["kind"] == "not_provisioned" and rc == 9
    assert "the Python package laion_clap (for the CLAP text ranker)" in error["message"]
    assert not of(events, "item_start")


def test_offline_with_an_id_that_is_no_repo_id_stays_unknown_model(tmp_path: Path):
    """The preflight leaves a malformed model id to the load's unknown_model (no crash, no
    "download it first" for something that cannot exist)."""
    audio = write_audio(tmp_path / "a.wav", seconds=1.0)
    rc, events, proc = run_payload(tmp_path / "job", [Item("a", str(audio), ["x"], ["out/a"])],
                                   Settings(model="not a repo id!", device="cpu"),
                                   env=offline_env(tmp_path / "empty-hf"))
    assert [e["kind"] for e in of(events, "error")] == ["unknown_model"], proc.stderr[-2000:]


def test_imagebind_is_prefetched_once_into_a_folder_every_job_links(world: World,
                                                                     tmp_path: Path):
    """-tv + --rerank with a video: the visual ranker (ImageBind) reads ./.checkpoints/ of
    the job's cwd. The prefetch puts it in $HF_HOME/remote-sep/checkpoints (resuming a cut
    download) and each job folder's .checkpoints links there: no 4.5 GB per job."""
    from remote_payload import hub_cache

    tv = "facebook/sam-audio-large-tv"
    world.hub.repos[tv] = {**REPOS[MODEL], "config.json": json.dumps(
        {**CONFIG, "visual_ranker": {"kind": "imagebind"}}).encode()}
    weights = os.urandom(3 * 2**20)
    world.hub.urls["/imagebind/imagebind_huge.pth"] = weights
    world.hub.cut_after["imagebind_huge.pth"] = 2**20
    mirror = {"REMOTE_SEP_IMAGEBIND_URL": world.hub.url + "/imagebind/imagebind_huge.pth"}
    profile_env = "\n".join(export_lines([], {"HF_ENDPOINT": world.hub.url, **mirror})) + "\n"

    def prefetch() -> dict:
        world.events = []
        profile = profiles.get_profile("gpu", world.hosts)
        with connect(profile) as host:
            return run_prefetch(host, base=str(world.root / "base"), python=sys.executable,
                                hf_home=str(world.hf_home), model=tv,
                                wants=PrefetchWants(rerank=True, video=True),
                                report=world.events.append, prelude=profile_env)

    with pytest.raises(RemoteSepError) as caught:
        prefetch()
    assert caught.value.kind == "transfer"
    summary = prefetch()
    assert "visual ranker ImageBind" in summary["components"]
    assert not [c for c in summary["components"] if "judge" in c]  # a video: no text ranker
    shared = world.hf_home / "remote-sep" / "checkpoints"
    assert (shared / "imagebind_huge.pth").read_bytes() == weights
    ranged = [r for r in world.hub.requests if r["path"] == "/imagebind/imagebind_huge.pth"
              and r.get("range")]
    assert ranged and ranged[0]["range"].startswith("bytes=")
    # a job folder: the preflight links .checkpoints to the shared folder, nothing missing
    job = tmp_path / "job"
    job.mkdir()
    os.environ["HF_HOME"], saved = str(world.hf_home), os.environ.get("HF_HOME")
    try:
        settings = type("S", (), {"model": tv, "rerank": 2, "video": True})()
        missing, known = hub_cache.missing_components(settings, str(job))
        assert missing == [] and known
        hub_cache.link_checkpoints(str(job))
    finally:
        os.environ.pop("HF_HOME") if saved is None else os.environ.update(HF_HOME=saved)
    assert (job / ".checkpoints").resolve() == shared.resolve()
    assert (job / ".checkpoints" / "imagebind_huge.pth").read_bytes() == weights
