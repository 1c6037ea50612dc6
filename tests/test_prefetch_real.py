"""The prefetch against the REAL loaders: what `python -m remote_payload prefetch` puts in the
cache is exactly what the real `SAMAudio.from_pretrained` (and transformers' T5 loader) read
with the Hub gone. Skipped unless REMOTE_SEP_REAL_SAM_PYTHON is set (as the contract test).

The tiny real model (tests/real_sam_tiny.py) is served by the Hub stand-in as
facebook/sam-audio-small, its config naming its text encoder by a Hub id (t5-base, the tiny
T5 folder served as that repo), then prefetched with the real venv's huggingface_hub.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hub_standin import GOOD_TOKEN, HubStandin
from payload_util import ROOT, of, write_audio
from test_payload_contract import TIMEOUT, real_python, run_real, tiny_model  # noqa: F401

from remote_payload.manifest import Item, Settings

pytestmark = [pytest.mark.timeout(2 * TIMEOUT)]


def test_the_real_loader_runs_offline_from_a_prefetched_cache(real_python: str,  # noqa: F811
                                                               tiny_model: Path,  # noqa: F811
                                                               tmp_path: Path):
    config = json.loads((tiny_model / "config.json").read_text())
    config["text_encoder"]["name"] = "t5-base"
    t5 = {p.name: p for p in (tiny_model / "t5").iterdir() if p.is_file()}
    home = tmp_path / "hf"
    home.mkdir()
    (home / "token").write_text(GOOD_TOKEN)
    with HubStandin() as hub:
        hub.repos["facebook/sam-audio-small"] = {"config.json": json.dumps(config).encode(),
                                                 "checkpoint.pt": tiny_model / "checkpoint.pt"}
        hub.repos["t5-base"] = t5
        proc = subprocess.run([real_python, "-m", "remote_payload", "prefetch", "--model", "small"],
                              env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(home),
                                   "HF_ENDPOINT": hub.url}, capture_output=True, text=True,
                              timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    (plan,) = [e for e in events if e["event"] == "prefetch_plan"]
    assert [c["name"] for c in plan["components"]] == ["model facebook/sam-audio-small",
                                                       "text encoder t5-base"]
    source = write_audio(tmp_path / "in.wav", seconds=0.5)
    item = [Item("r", str(source), ["speech"], ["out/r"])]
    for name, env in [("declared", {"HF_HUB_OFFLINE": "1"}),
                      ("dead hub", {"HF_ENDPOINT": "http://127.0.0.1:9"})]:
        proc, events = run_real(real_python, tmp_path / name.replace(" ", "-"),
                                Settings(model="small", device="cpu"), item,
                                env={"HF_HOME": str(home), **env})
        assert of(events, "item_done") and not of(events, "error"), proc.stderr[-3000:]
        assert "Retrying in" not in proc.stderr  # all cached: loaded offline, no Hub retries
