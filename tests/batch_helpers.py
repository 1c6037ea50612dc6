"""Shared by the batch end-to-end tests: real audio files, a two-host fleet, checks."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import TESTS, profile_for, write_hosts_file

from remote_sep import profiles


def make_songs(folder: Path, count: int, seconds: float = 0.5, rate: int = 16000) -> list[Path]:
    """Real WAV files: a tone plus noise, different per file (so each has its own sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    t = np.arange(int(seconds * rate)) / rate
    for i in range(count):
        audio = 0.3 * np.sin(2 * np.pi * (110 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"song {i:02d}.wav"
        sf.write(path, audio.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def fleet(tmp_path: Path, servers: dict, **env: str) -> tuple[Path, list]:
    """hosts.yaml for the servers (stand-in model on PYTHONPATH, a load log per host)."""
    hosts = {}
    for name, server in servers.items():
        host_env = {"PYTHONPATH": str(TESTS / "standins"),
                    "SAM_STANDIN_LOAD_LOG": str(tmp_path / f"loads-{name}.jsonl"), **env}
        hosts[name] = profile_for(server, tmp_path / f"remote-{name}", env=host_env,
                                  python=sys.executable)
    hosts_file = write_hosts_file(tmp_path / "hosts.yaml", hosts)
    return hosts_file, [profiles.get_profile(name, hosts_file) for name in servers]


def loads(tmp_path: Path, name: str) -> int:
    log = tmp_path / f"loads-{name}.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_outputs(out_dir: Path, report_items: list[dict], expected_units: int) -> None:
    """Every unit done, both outputs present with the sha256 the remote reported, and
    nothing else in the folder (no duplicate, no temp file left)."""
    assert len(report_items) == expected_units
    wanted = set()
    for item in report_items:
        assert item["status"] in ("done", "skipped"), item
        for output in item["outputs"].values():
            path = Path(output["path"])
            assert sha(path) == output["sha256"]
            wanted.add(path.name)
    present = {p.name for p in out_dir.iterdir() if p.name != ".remote-sep-batch.json"}
    assert present == wanted
    assert len(wanted) == 2 * expected_units


def remote_jobs(tmp_path: Path, name: str) -> list[Path]:
    jobs = tmp_path / f"remote-{name}" / "jobs"
    return sorted(jobs.iterdir()) if jobs.exists() else []


def events(job_dir: Path) -> list[dict]:
    """Complete event lines of a job (none yet when the worker is still starting)."""
    try:
        text = (job_dir / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]
