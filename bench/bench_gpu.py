"""The payload's Engine on a GPU at SAM Audio's released sizes: real-time factor and peak VRAM
against chunk length x batch size x dtype (JSON + a table), then the fit of the engine's batch
sizing (remote_payload/vram_fit.py). One command, bounded by ``--budget-seconds``.

    python bench/bench_gpu.py                      (CUDA; large, base, small; bf16 + fp16; 10/30 s;
                                                    batches 1/2/4; about 5 minutes)
    python bench/bench_gpu.py --write-fit          (also rewrites remote_payload/vram_fit.py)
    python bench/bench_gpu.py --device cpu --tiny  (smoke mode: a tiny config, seconds on a CPU)

Run it with the python of a host bootstrapped for the real sam_audio (or the stand-in, whose
"model" is a FIR filter: only the smoke test uses it). The model is built with the REAL
classes at the released sizes (bench/sam_sizes.py says where each number comes from) with
random weights: the gated checkpoints are not needed and the compute is the same. It is
built the way the payload's lean load builds it (remote_payload/loading.py: no vision encoder
for text prompts), cast to the dtype, moved to the device, then separated through
``Engine.separate`` (the payload's own batching, dtype cast, seeding and trimming), with the
payload's default solver (midpoint, step 2/32: 32 model evaluations per pass).

Per point: ``seconds`` (wall, CUDA synchronised), ``rtf`` = seconds / audio seconds in the
batch (lower is better; 1/rtf = x real time), ``peak_vram_mb`` = peak allocated during the
call minus what was allocated before it (the weights), ``reserved_mb`` (allocator's peak).
The fit: least squares of peak bytes = a + b x (chunk seconds x batch) per (size, dtype).
Anchors (published, wrappers around the same model; printed next to the results): A100-80GB
bf16 stripped large, 30 s in 4.37 s (RTF 0.146); RTX 4090 large, 6.5x real time (RTF 0.154).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

ANCHORS = [
    {"name": "A100-80GB bf16 stripped large, 30 s", "size": "large", "dtype": "bf16",
     "chunk_s": 30.0, "seconds": 4.37, "rtf": round(4.37 / 30, 3)},
    {"name": "RTX 4090 large, 6.5x real time", "size": "large", "dtype": None, "chunk_s": None,
     "seconds": None, "rtf": round(1 / 6.5, 3)},
]
FIT_MODULE = ROOT / "remote_payload" / "vram_fit.py"


def is_standin() -> bool:
    import sam_audio

    return bool(getattr(sam_audio, "IS_STANDIN", False))


def model_config(size: str, work: Path) -> dict:
    """config.json for ``size``: tiny (real classes or stand-in) or a released size."""
    if is_standin():
        return {"audio_codec": {"sample_rate": 48_000, "hop_length": 1920}, "text_ranker": None,
                "visual_ranker": None, "span_predictor": None}
    sys.path.insert(0, str(ROOT / "tests"))
    if size == "tiny":
        from real_sam_tiny import build_t5, tiny_config

        build_t5(work / "t5")
        config = tiny_config(str(work / "t5"))
    else:
        from sam_sizes import build_t5, sam_config

        t5 = cached_t5()
        if t5 is None and not (work / "t5" / "config.json").is_file():
            build_t5(work / "t5")  # random, t5-base's shape; one for every size
        config = sam_config(size, t5 or str(work / "t5"))
    return {**config, "span_predictor": None}


def cached_t5() -> str | None:
    """The real t5-base when this host's HF cache has it (a prefetched box does), else None
    (then a random one of its shape is built: sentencepiece and protobuf needed)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    def cached(repo: str, name: str) -> bool:
        return isinstance(try_to_load_from_cache(repo, name), str)

    for repo in ("t5-base", "google-t5/t5-base"):
        if cached(repo, "config.json") and cached(repo, "spiece.model") and (
                cached(repo, "model.safetensors") or cached(repo, "pytorch_model.bin")):
            return repo
    return None


def build_model(size: str, work: Path, dtype, device: str):
    """The lean-built model with random weights, in ``dtype`` on ``device``, plus processor."""
    import torch
    from sam_audio import SAMAudio, SAMAudioProcessor

    from remote_payload.loading import build_without_weights, cast_then_move

    config = model_config(size, work)
    folder = work / f"model-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    model = build_without_weights(SAMAudio, SAMAudio.config_cls(**config))
    model.eval()
    cast_then_move(model, dtype, device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():  # random weights on the device (built uninitialised above)
        for name, param in model.named_parameters():
            if name.startswith("text_encoder."):
                continue  # loaded from its own (random) folder already
            if param.dim() >= 2:
                param.normal_(0.0, 0.02, generator=generator)
            else:
                param.fill_(1.0 if name.endswith("weight") or name.endswith("_g") else 0.0)
    processor = SAMAudioProcessor.from_pretrained(str(folder))
    params = sum(p.numel() for p in model.parameters())
    return model, processor, params


def measure(engine, chunk_s: float, batch: int, device: str) -> dict:
    import numpy as np
    import torch

    from remote_payload.engine import OutOfMemory

    rate = engine.sample_rate
    rng = np.random.default_rng(batch)
    signals = [(0.1 * rng.standard_normal(round(chunk_s * rate))).astype(np.float32)
               for _ in range(batch)]
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    started = time.monotonic()
    try:
        engine.separate(signals, ["speech"] * batch, seed=0)
    except OutOfMemory as exc:
        return {"oom": str(exc)[:200]}
    if cuda:
        torch.cuda.synchronize()
    seconds = time.monotonic() - started
    point = {"seconds": round(seconds, 3), "rtf": round(seconds / (chunk_s * batch), 4)}
    if cuda:
        point["peak_vram_mb"] = round((torch.cuda.max_memory_allocated() - before) / 2**20)
        point["reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20)
    return point


def fit(points: list[dict]) -> dict:
    """peak bytes = a + b * (seconds * batch), least squares, per (size, dtype)."""
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for p in points:
        if "peak_vram_mb" in p:
            groups.setdefault((p["size"], p["dtype"]), []).append(
                (p["chunk_s"] * p["batch"], p["peak_vram_mb"] * 2**20))
    result = {}
    for (size, dtype), xy in groups.items():
        n = len(xy)
        mean_x = sum(x for x, _ in xy) / n
        mean_y = sum(y for _, y in xy) / n
        var = sum((x - mean_x) ** 2 for x, _ in xy)
        b = sum((x - mean_x) * (y - mean_y) for x, y in xy) / var if var else mean_y / mean_x
        a = max(0.0, mean_y - b * mean_x)
        worst = max(y / (a + b * x) for x, y in xy)  # > 1: the line underestimates a point
        result[f"{size}/{dtype}"] = {"a_bytes": int(a), "b_bytes_per_audio_second": int(b),
                                     "points": n, "worst_ratio": round(worst, 3)}
    return result


def write_fit_module(fits: dict, gpu: str, report_path: str | None) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    entries = "\n".join(f'    "{k}": ({v["a_bytes"]}, {v["b_bytes_per_audio_second"]}),'
                        for k, v in sorted(fits.items()))
    text = FIT_MODULE.read_text()
    start, end = text.index("# -- fit start"), text.index("# -- fit end")
    block = (f"# -- fit start (written by bench/bench_gpu.py --write-fit, {stamp}, {gpu}"
             f"{', report ' + report_path if report_path else ''})\n"
             f"MEASURED_ON = {gpu!r}\nFIT: dict[str, tuple[int, int]] = {{\n{entries}\n}}\n")
    FIT_MODULE.write_text(text[:start] + block + text[end:])


def table(points: list[dict]) -> str:
    head = (f"{'size':6} {'dtype':5} {'chunk s':>7} {'batch':>5} {'seconds':>8} {'rtf':>7} "
            f"{'x rt':>6} {'peak MB':>8}")
    lines = [head, "-" * len(head)]
    for p in points:
        if "oom" in p or "skipped" in p:
            what = "OOM" if "oom" in p else f"skipped ({p['skipped']})"
            lines.append(f"{p['size']:6} {p['dtype']:5} {p['chunk_s']:7.1f} {p['batch']:5d} {what}")
            continue
        lines.append(f"{p['size']:6} {p['dtype']:5} {p['chunk_s']:7.1f} {p['batch']:5d} "
                     f"{p['seconds']:8.2f} {p['rtf']:7.3f} {1 / p['rtf']:6.1f} "
                     f"{p.get('peak_vram_mb', '-')!s:>8}")
    for anchor in ANCHORS:
        lines.append(f"anchor: {anchor['name']}: rtf {anchor['rtf']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a tiny config (smoke mode)")
    parser.add_argument("--sizes", default="large,base,small",
                        help="largest first: the anchors are for large")
    parser.add_argument("--dtypes", default="bf16,fp16")
    parser.add_argument("--chunks", default="10,30", help="chunk lengths, seconds")
    parser.add_argument("--batches", default="1,2,4")
    parser.add_argument("--budget-seconds", type=float, default=300.0)
    parser.add_argument("--json-out", help="also write the report here")
    parser.add_argument("--write-fit", action="store_true",
                        help="rewrite the FIT table in remote_payload/vram_fit.py")
    args = parser.parse_args(argv)
    import torch

    from remote_payload.engine import Engine
    from remote_payload.manifest import Settings

    started = time.monotonic()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device visible to torch; use --device cpu --tiny "
                          "for the smoke mode"}))
        return 2
    sizes = ["tiny"] if args.tiny else args.sizes.split(",")
    chunks = [float(c) for c in args.chunks.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    gpu = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
           else "cpu")
    points: list[dict] = []
    report = {"device": args.device, "gpu": gpu, "torch": torch.__version__,
              "standin": is_standin(), "budget_seconds": args.budget_seconds,
              "anchors": ANCHORS, "points": points}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as temp:
        work = Path(temp)
        for size in sizes:
            for dtype_name in args.dtypes.split(","):
                left = args.budget_seconds - (time.monotonic() - started)
                if left <= 0:
                    points += [{"size": size, "dtype": dtype_name, "chunk_s": c, "batch": b,
                                "skipped": "budget"} for c in chunks for b in batches]
                    continue
                settings = Settings(model=f"bench-{size}", device=args.device,
                                    dtype=dtype_name)
                engine = Engine(settings)
                t0 = time.monotonic()
                engine.model, engine.processor, params = build_model(
                    size, work, names[dtype_name], engine.device)
                build_s = round(time.monotonic() - t0, 1)
                measure(engine, min(chunks), 1, engine.device)  # warm-up: kernels, allocator
                for chunk_s in chunks:
                    for batch in batches:
                        point = {"size": size, "dtype": dtype_name, "chunk_s": chunk_s,
                                 "batch": batch, "params": params, "build_s": build_s}
                        if time.monotonic() - started > args.budget_seconds:
                            points.append({**point, "skipped": "budget"})
                            continue
                        point.update(measure(engine, chunk_s, batch, engine.device))
                        points.append(point)
                        print(json.dumps(point), file=sys.stderr, flush=True)
                        if "oom" in point:
                            break  # bigger batches of this chunk length will not fit either
                engine.model = engine.processor = None
                engine.release_memory()
    report["fit"] = fit(points)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    if args.write_fit and report["fit"]:
        write_fit_module(report["fit"], gpu, args.json_out)
    print(table(points), file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
