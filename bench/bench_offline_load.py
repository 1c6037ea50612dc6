"""What a cached job pays when the Hub cannot be reached, with and without the preflight.

    python bench/bench_offline_load.py

One run, three measurements, same prefetched HF cache (a Hub stand-in on 127.0.0.1, then a
closed port as the "Hub"), the stand-in sam_audio reading the cache the way the real code
does (SAM_STANDIN_HUB=1):
- reference: the payload job with HF_HUB_OFFLINE=1 set by hand (the best case);
- payload: the same job with the Hub unreachable and nothing declared: the preflight finds
  every component cached and loads offline (hub_cache.go_offline);
- naive: the same load without the preflight (what Engine.load did before), which pays
  huggingface_hub's HEAD retries (1+2+4+8+8 s) for each file the loaders look up.
Prints seconds and ratios to the reference. The real T5 load looks up more files than
the stand-in (tokenizer files too), so the real naive cost is higher.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hub_standin import GOOD_TOKEN, HubStandin  # noqa: E402
from payload_util import run_payload, standin_env, write_audio  # noqa: E402
from test_prefetch_e2e import REPOS  # noqa: E402

from remote_payload.manifest import Item, Settings  # noqa: E402

DEAD = "http://127.0.0.1:9"
NAIVE_LOAD = ("from sam_audio import SAMAudio; SAMAudio.from_pretrained("
              "'facebook/sam-audio-large', span_predictor=None, text_ranker=None, "
              "visual_ranker=None)")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-offline-"))
    home = work / "hf"
    home.mkdir()
    (home / "token").write_text(GOOD_TOKEN)
    with HubStandin() as hub:
        hub.repos.update(REPOS)
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(home), PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, "-m", "remote_payload", "prefetch", "--model", "large"],
                       env=env, check=True, capture_output=True)
    audio = write_audio(work / "a.wav", seconds=1.0)
    settings = Settings(model="large", device="cpu", chunk_seconds=1.0, overlap_seconds=0.25)
    base = dict(HF_HOME=str(home), SAM_STANDIN_HUB="1")

    def job(name: str, **extra: str) -> float:
        started = time.monotonic()
        rc, _, proc = run_payload(work / name, [Item("a", str(audio), ["x"], ["out/a"])],
                                  settings, env=standin_env(**base, **extra))
        assert rc == 0, proc.stderr[-2000:]
        return time.monotonic() - started

    job("warm-up", HF_HUB_OFFLINE="1")  # the first import of torch reads it from disk
    reference = job("reference", HF_HUB_OFFLINE="1")
    payload = job("payload", HF_ENDPOINT=DEAD)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", NAIVE_LOAD], env=standin_env(**base, HF_ENDPOINT=DEAD),
                   check=True, capture_output=True)
    naive = time.monotonic() - started
    print(f"reference (HF_HUB_OFFLINE=1 by hand): {reference:6.2f} s  1.00x")
    print(f"payload, Hub unreachable:              {payload:6.2f} s  {payload / reference:.2f}x")
    print(f"naive load only, Hub unreachable:      {naive:6.2f} s  {naive / reference:.2f}x")


if __name__ == "__main__":
    main()
