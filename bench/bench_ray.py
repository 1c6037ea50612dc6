"""Ray mode benchmark (prints figures; not a test): real Ray clusters of tests/ray_lab.py (a
network namespace with only lo, token auth, fake GPUs) and the stand-in model, whose compute
is a fixed sleep (SAM_STANDIN_SECONDS_PER_SECOND), so the figures are Ray's own costs.

1. Per-item overhead: K short items through a batch worker (`run --inbox`), once with
   `--ray` on a 1-GPU cluster, once as the plain payload (the reference, same run, same
   items, alternated over a few rounds: medians). Per-item time is the spacing of
   `item_done` events after the first (model loads and process starts excluded; the
   startups are printed apart):
   overhead = ray_per_item - plain_per_item, in ms.
2. Speed-up of one long file (30 s chunks, 3 s shared: 8 chunks in 219 s, 4 in 111 s; an
   even count, so 2 GPUs can reach 2x) with `--ray` on 1 vs 2 fake GPUs (a head and a
   worker node): item_start -> item_done on 1 GPU / on 2 GPUs, and the outputs' sha256,
   which must be identical.

Usage: python bench/bench_ray.py [--quick]      (needs root, `ip`, `nft` and ray)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from payload_util import read_events, standin_env, write_audio  # noqa: E402
from ray_lab import RayLab, ray_cluster  # noqa: E402

from remote_payload.manifest import Item, Manifest, Settings, item_to_json  # noqa: E402

RUN = [sys.executable, "-m", "remote_payload", "run", "--manifest", "manifest.json",
       "--events", "events.jsonl"]
RATE = 44100
CHUNK_S = 30.0
RUN_TIMEOUT_S = 600
# The stand-in's "GPU" time. It must dominate its CPU work (a 255-tap FIR: ~0.065 s per
# audio second on one core here, and the two fake GPUs share the machine's 2 cores), else
# the speed-up measures the cores, not Ray.
SLEEP_PER_AUDIO_S = 0.2
OVERLAP_S = 3.0


def settings() -> Settings:
    return Settings(device="cpu", chunk_seconds=CHUNK_S, overlap_seconds=OVERLAP_S, batch_size=1,
                    worker_idle_timeout=0)


def batch_job(job: Path, count: int, seconds: float) -> list[Item]:
    """A job with no manifest items and COUNT items waiting in its inbox (then CLOSE)."""
    inbox = job / "inbox"
    inbox.mkdir(parents=True)
    (job / "manifest.json").write_text(Manifest(job.name, settings(), []).to_json())
    items = []
    for n in range(count):
        write_audio(job / f"in{n}.wav", seconds=seconds, rate=RATE)
        item = Item(id=f"i{n}", input=f"in{n}.wav", descriptions=["bass"],
                    prefixes=[f"out/in{n}"])
        (inbox / f"{n:04d}-{item.id}.json").write_text(item_to_json(item))
        items.append(item)
    (inbox / "CLOSE").write_text("")
    return items


def long_job(job: Path, audio: Path) -> None:
    job.mkdir(parents=True)
    (job / "long.wav").write_bytes(audio.read_bytes())
    item = Item(id="long", input="long.wav", descriptions=["bass"], prefixes=["out/long"])
    (job / "manifest.json").write_text(Manifest(job.name, settings(), [item]).to_json())


def run(job: Path, argv: list[str], runner: Callable[..., subprocess.CompletedProcess],
        **kw) -> tuple[float, list[dict]]:
    """Run the payload in JOB; (wall seconds, events, with a "launch" pseudo-event first:
    the moment it was started). A failed run stops the bench."""
    launched, started = time.time(), time.monotonic()
    done = runner(argv, cwd=job, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, **kw)
    wall = time.monotonic() - started
    events = [{"event": "launch", "t": launched}, *read_events(job / "events.jsonl")]
    errors = [e for e in events if e["event"] == "error"]
    if done.returncode != 0 or errors:
        raise SystemExit(f"payload failed in {job} (rc {done.returncode}): {errors}\n"
                         f"{done.stderr[-3000:]}")
    return wall, events


def times(events: list[dict], name: str) -> list[float]:
    return [e["t"] for e in events if e["event"] == name]


def per_item_s(events: list[dict]) -> float:
    """Mean spacing of item_done events after the first: one item's cost, warm."""
    done = sorted(times(events, "item_done"))
    return (done[-1] - done[0]) / (len(done) - 1)


def startup_s(events: list[dict]) -> float:
    """Process launch to its first item started (imports, joining the cluster, loads)."""
    return min(times(events, "item_start")) - times(events, "launch")[0]


def item_span_s(events: list[dict]) -> float:
    return max(times(events, "item_done")) - min(times(events, "item_start"))


def output_sha256(job: Path) -> str:
    [done] = [e for e in read_events(job / "events.jsonl") if e["event"] == "item_done"]
    shas = sorted(out["sha256"] for out in done["outputs"].values())
    for out in done["outputs"].values():  # the bytes on disk, not only the claim
        assert hashlib.sha256(Path(out["path"]).read_bytes()).hexdigest() == out["sha256"]
    return ",".join(s[:12] for s in shas)


def ray_argv(lab: RayLab) -> list[str]:
    return [*RUN, "--ray", lab.address, "--ray-call-timeout", "120"]


def overhead(lab: RayLab, work: Path, count: int, seconds: float, rounds: int) -> dict:
    """ROUNDS of (ray, plain) runs of the same batch, alternated so that the machine's
    load (2 cores shared) hits both alike; medians of each figure."""
    figures: dict[str, list[float]] = {}
    for n in range(rounds):
        ray_job, plain_job = work / f"batch-ray-{n}", work / f"batch-plain-{n}"
        batch_job(ray_job, count, seconds)
        batch_job(plain_job, count, seconds)
        ray_wall, ray_events = run(ray_job, [*ray_argv(lab), "--inbox", "inbox"], lab.run)
        plain_wall, plain_events = run(plain_job, [*RUN, "--inbox", "inbox"],
                                       subprocess.run, env=lab.env())
        for events in (ray_events, plain_events):
            assert len(times(events, "item_done")) == count
        for key, value in (("ray_item", per_item_s(ray_events)),
                           ("plain_item", per_item_s(plain_events)),
                           ("ray_start", startup_s(ray_events)),
                           ("plain_start", startup_s(plain_events)),
                           ("ray_wall", ray_wall), ("plain_wall", plain_wall)):
            figures.setdefault(key, []).append(value)
    medians = {key: statistics.median(values) for key, values in figures.items()}
    medians["rounds_ms"] = [round((r - p) * 1000) for r, p in
                            zip(figures["ray_item"], figures["plain_item"], strict=True)]
    return medians


def long_file(lab: RayLab, job: Path, audio: Path) -> tuple[float, str]:
    long_job(job, audio)
    _, events = run(job, ray_argv(lab), lab.run)
    return item_span_s(events), output_sha256(job)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items, a shorter file")
    parser.add_argument("--items", type=int, help="items in the batch (16; quick 8)")
    # short items: the stand-in's CPU work (and so the 2 shared cores' noise) grows with them
    parser.add_argument("--item-seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, help="(ray, plain) batch rounds (3; quick 2)")
    parser.add_argument("--long-seconds", type=float, help="the long file (219; quick 111)")
    args = parser.parse_args()
    count = args.items or (8 if args.quick else 16)
    rounds = args.rounds or (2 if args.quick else 3)
    long_s = args.long_seconds or (111.0 if args.quick else 219.0)
    chunks = math.ceil((long_s - OVERLAP_S) / (CHUNK_S - OVERLAP_S))
    env = standin_env(SAM_STANDIN_SECONDS_PER_SECOND=str(SLEEP_PER_AUDIO_S))
    sleep_item = args.item_seconds * SLEEP_PER_AUDIO_S
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        work = Path(tmp)
        audio = write_audio(work / "long.wav", seconds=long_s, rate=RATE)
        began = time.monotonic()
        try:
            with ray_cluster(gpus=[1], env=env, tmp=work / "lab1") as lab:
                cost = overhead(lab, work, count, args.item_seconds, rounds)
                one_gpu, one_sha = long_file(lab, work / "long-1gpu", audio)
            with ray_cluster(gpus=[1, 1], env=env, tmp=work / "lab2") as lab:
                two_gpu, two_sha = long_file(lab, work / "long-2gpu", audio)
        except BaseException as exc:  # pytest.skip from the lab: no root / ip / ray
            if type(exc).__name__ == "Skipped":
                print(f"bench_ray skipped: {exc}")
                return 2
            raise
        elapsed = time.monotonic() - began
    extra_ms = (cost["ray_item"] - cost["plain_item"]) * 1000
    rows = [
        ("per item, plain payload (reference)", f"{cost['plain_item'] * 1000:8.1f} ms",
         f"stand-in sleep {sleep_item * 1000:.0f} ms"),
        ("per item, --ray on 1 GPU", f"{cost['ray_item'] * 1000:8.1f} ms",
         f"ratio {cost['ray_item'] / cost['plain_item']:.3f}"),
        ("Ray overhead per item", f"{extra_ms:8.1f} ms",
         f"K={count} x {args.item_seconds:g} s, median of rounds {cost['rounds_ms']} ms"),
        ("startup to 1st item, plain / ray", f"{cost['plain_start']:6.1f} s",
         f"{cost['ray_start']:.1f} s"),
        (f"{long_s:g} s file on 1 GPU", f"{one_gpu:8.2f} s", f"sha256 {one_sha}"),
        (f"{long_s:g} s file on 2 GPUs", f"{two_gpu:8.2f} s", f"sha256 {two_sha}"),
        ("speed-up 2 GPUs vs 1", f"{one_gpu / two_gpu:8.2f} x",
         f"ideal {chunks / math.ceil(chunks / 2):.2f} x ({chunks} chunks); "
         + ("outputs identical" if one_sha == two_sha else "OUTPUTS DIFFER")),
    ]
    print(f"bench_ray ({'quick' if args.quick else 'full'}; stand-in compute "
          f"{SLEEP_PER_AUDIO_S} s per audio second; {elapsed:.0f} s in all)")
    for name, value, note in rows:
        print(f"  {name:<36} {value:>12}   {note}")
    print("json " + json.dumps({"overhead_ms_per_item": round(extra_ms, 1),
                                "speedup_2_vs_1": round(one_gpu / two_gpu, 3),
                                "identical": one_sha == two_sha,
                                **{k: v if isinstance(v, list) else round(v, 3)
                                   for k, v in cost.items()}}))
    return 0 if one_sha == two_sha else 1


if __name__ == "__main__":
    sys.exit(main())
