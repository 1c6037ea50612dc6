"""Model load, naive vs lean, in the same run: wall time and host peak RSS (prints JSON + a table).

Needs the real sam_audio (``REMOTE_SEP_REAL_SAM_PYTHON`` names its python, see
docs/real-model-check.md); without it this prints ``{"skipped": ...}`` and exits 0.

1. A child writes a model folder at a released size (bench/sam_sizes.py: real classes,
   random weights, upstream's layout: config.json + checkpoint.pt + a t5-base-shaped T5),
   unless ``--model-dir`` names one already written.
2. The checkpoint is read once (page cache warm for both ways: the comparison is RAM and
   CPU, not the disk).
3. For each way (naive = ``SAMAudio.from_pretrained`` + ``.to()``, what the payload did
   before; lean = remote_payload/loading.py) and each dtype, a fresh child runs the payload's
   ``Engine.load`` on the CPU and reports: seconds, RSS before the load (imports), peak RSS
   of the load (VmHWM), and peak RSS once every kept weight has been read once (what the
   first forward pass would touch: a CPU fp32 lean load maps the file and reads nothing
   until then). ``weights`` = bytes of the tensors the loaded model keeps.
   Goal: lean peak (after the first read) - imports <= 1.2 x weights.

    REAL_PY bench/bench_load.py [--size base] [--dtypes fp32,bf16] [--ways naive,lean]
                                [--model-dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = "REMOTE_SEP_REAL_SAM_PYTHON"


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child_load(folder: str, dtype: str) -> dict:
    """One load in this (fresh) process, the payload's way (REMOTE_SEP_NAIVE_LOAD picks)."""
    sys.path.insert(0, str(ROOT))
    import torch  # noqa: F401  (imports are measured before the load)
    from sam_audio import SAMAudio, SAMAudioProcessor  # noqa: F401

    from remote_payload.engine import Engine
    from remote_payload.manifest import Settings

    before = vm_kb("VmRSS")
    warnings: list[str] = []
    engine = Engine(Settings(model=folder, device="cpu", dtype=dtype), warn=warnings.append)
    started = time.monotonic()
    info = engine.load()
    seconds = time.monotonic() - started
    peak_load = vm_kb("VmHWM")
    kept = [*engine.model.parameters(), *engine.model.buffers()]
    weights = sum(t.numel() * t.element_size() for t in kept)
    for tensor in kept:  # what the first forward pass reads
        float(tensor.reshape(-1)[:: max(1, 4096 // tensor.element_size())].float().sum())
    return {"loader": info["loader"], "components_off": info["components_off"],
            "warnings": warnings, "seconds": round(seconds, 2),
            "rss_imports_mb": round(before / 1024), "peak_load_mb": round(peak_load / 1024),
            "peak_after_first_read_mb": round(vm_kb("VmHWM") / 1024),
            "weights_mb": round(weights / 2**20)}


def run_child(python: str, args: list[str], env: dict[str, str], timeout: float) -> dict:
    proc = subprocess.run([python, __file__, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = (f"{'way':6} {'dtype':5} {'load s':>7} {'imports MB':>10} {'peak MB':>8} "
            f"{'peak+read MB':>12} {'weights MB':>10} {'ratio':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['way']:6} {r['dtype']:5} error: {r['error']}")
            continue
        lines.append(f"{r['way']:6} {r['dtype']:5} {r['seconds']:7.1f} {r['rss_imports_mb']:10d} "
                     f"{r['peak_load_mb']:8d} {r['peak_after_first_read_mb']:12d} "
                     f"{r['weights_mb']:10d} {r['ratio']:6.2f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="base", help="small | base | large | default")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--ways", default="naive,lean")
    parser.add_argument("--model-dir", help="a folder written by an earlier run (reused)")
    parser.add_argument("--keep", action="store_true", help="keep the temp model folder")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    python = os.environ.get(ENV_VAR)
    if not python:
        print(json.dumps({"skipped": f"{ENV_VAR} is not set (the real sam_audio is needed)"}))
        return 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    temp = None
    folder = Path(args.model_dir) if args.model_dir else None
    report: dict = {"size": args.size, "cpu_count": os.cpu_count()}
    if folder is None or not (folder / "checkpoint.pt").is_file():
        if folder is None:
            temp = Path(tempfile.mkdtemp(prefix="bench-load-"))
            folder = temp / "model"
        started = time.monotonic()
        built = run_child(python, ["--child-build", args.size, str(folder)], env, args.timeout)
        if "error" in built:
            print(json.dumps({**report, "error": f"build: {built['error']}"}))
            return 1
        report["build_s"] = round(time.monotonic() - started, 1)
    report["checkpoint_mb"] = round((folder / "checkpoint.pt").stat().st_size / 2**20)
    with open(folder / "checkpoint.pt", "rb") as fin:  # warm the page cache for both ways
        while fin.read(64 * 2**20):
            pass
    rows = []
    try:
        for dtype in args.dtypes.split(","):
            for way in args.ways.split(","):
                child_env = {**env, "REMOTE_SEP_NAIVE_LOAD": "1" if way == "naive" else "0"}
                row = {"way": way, "dtype": dtype,
                       **run_child(python, ["--child-load", str(folder), dtype], child_env,
                                   args.timeout)}
                if "error" not in row:
                    row["ratio"] = round((row["peak_after_first_read_mb"] - row["rss_imports_mb"])
                                         / max(1, row["weights_mb"]), 2)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        if temp and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)
    report["runs"] = rows
    for dtype in args.dtypes.split(","):
        by_way = {r["way"]: r for r in rows if r["dtype"] == dtype and "error" not in r}
        if {"naive", "lean"} <= by_way.keys():
            naive, lean = by_way["naive"], by_way["lean"]
            report[f"{dtype}_lean_vs_naive"] = {
                "load_time_ratio": round(lean["seconds"] / max(naive["seconds"], 1e-9), 2),
                "peak_rss_ratio": round(lean["peak_after_first_read_mb"]
                                        / max(1, naive["peak_after_first_read_mb"]), 2)}
    print(table(rows), file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-build":
        sys.path.insert(0, str(ROOT / "bench"))
        from sam_sizes import build_folder

        print(json.dumps(build_folder(sys.argv[2], Path(sys.argv[3]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-load":
        print(json.dumps(child_load(sys.argv[2], sys.argv[3])))
    else:
        sys.exit(main())
