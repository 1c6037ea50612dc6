"""Helpers for payload tests: write a manifest, run ``python -m remote_payload``, read events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from remote_payload.manifest import Item, Manifest, Settings

ROOT = Path(__file__).resolve().parents[1]
STANDINS = ROOT / "tests" / "standins"


def tone_mix(seconds: float, rate: int, channels: int = 1, seed: int = 1,
             noise: float = 0.01) -> np.ndarray:
    """Bass + treble + a little noise: (frames, channels) float32, real audio content."""
    t = np.arange(round(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    cols = []
    for c in range(channels):
        bass = 0.3 * np.sin(2 * np.pi * (80 + 20 * c) * t)
        treble = 0.15 * np.sin(2 * np.pi * (2500 + 300 * c) * t)
        cols.append(bass + treble + noise * rng.standard_normal(len(t)))
    return np.stack(cols, axis=1).astype(np.float32)


def write_audio(path: Path, seconds: float = 3.0, rate: int = 44100, channels: int = 1,
                noise: float = 0.01, **kwargs) -> Path:
    sf.write(str(path), tone_mix(seconds, rate, channels, noise=noise), rate, **kwargs)
    return path


def standin_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM_STANDIN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(STANDINS)])
    env.update(extra)
    return env


def run_payload(job: Path, items: list[Item], settings: Settings | None = None,
                env: dict[str, str] | None = None, inbox: str | None = None,
                timeout: float = 240) -> tuple[int, list[dict], subprocess.CompletedProcess]:
    """Write job/manifest.json, run the payload in job/, return (exit code, events, process)."""
    job.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("job", settings or Settings(device="cpu"), items)
    (job / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    argv = [sys.executable, "-m", "remote_payload", "run", "--manifest", "manifest.json",
            "--events", "events.jsonl"]
    if inbox:
        argv += ["--inbox", inbox]
    proc = subprocess.run(argv, cwd=job, env=env or standin_env(), capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, read_events(job / "events.jsonl"), proc


def drop(inbox: Path, name: str, text: str) -> None:
    """Put an item file into a worker's inbox atomically, as the protocol asks."""
    tmp = inbox / f".{name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, inbox / name)


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def of(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]
