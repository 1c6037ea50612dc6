"""CPU cost of one real SAM Audio ``separate`` at the sam-audio-small architecture (prints JSON).

Random weights, so the figures are cost only (load, separation wall time, real-time factor,
peak RSS), never quality. Needs the real sam_audio: ``REMOTE_SEP_REAL_SAM_PYTHON`` names its
python (docs/real-model-check.md, scripts/setup_real_sam.sh); without it this prints
``{"skipped": ...}`` and exits 0.

Sizes: the released config.json of facebook/sam-audio-small is on the Hub only (not in the
GitHub repo). The DiT sizes are those of the sam-audio-small preset in mlx-audio
(mlx_audio/sts/models/sam_audio/config.py: dim 1024, 8 heads, 12 layers, every other key at
the sam_audio default); codec, T5 and vision encoder are the sam_audio defaults
(sam_audio/model/config.py), which the third-party copies of the released configs match.
The T5 encoder is a random one of t5-base's shape (the Hub is unreachable here) with a tiny
local tokenizer; the vision encoder is built (PE-Core-L14-336) but, with no video, only
feeds zeros, as in a real text-prompted run.

Usage: python bench/bench_cpu_real.py [--seconds 10] [--steps 16] [--method midpoint]
           [--model-dir DIR]   (reuse a folder built by an earlier run; else a temp folder)
Steps are midpoint steps over t in [0, 1] (step_size = 1/steps; the payload default is 16).
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
RATE = 48_000

# mlx-audio's SAM_AUDIO_SMALL_CONFIG: only the DiT differs from the sam_audio defaults
SMALL_TRANSFORMER = {"dim": 1024, "n_heads": 8, "n_layers": 12, "context_dim": 1024,
                     "out_channels": 256}
T5_BASE_SHAPE = {"d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_heads": 12,
                 "vocab_size": 32128}


def small_config(t5_dir: str) -> dict:
    return {
        "in_channels": 768,
        "audio_codec": {},  # defaults: encoder_dim 64, latent 1024, decoder 1536, hop 1920
        "text_encoder": {"name": t5_dir, "dim": 768},
        "vision_encoder": {},  # default PE-Core-L14-336, dim 1024
        "transformer": dict(SMALL_TRANSFORMER),
        "num_anchors": 3,
        "anchor_embedding_dim": 128,
        "visual_ranker": None,
        "text_ranker": None,
        "span_predictor": "pe-a-frame-large",  # present so span_predictor=None turns it off
    }


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def build(folder: Path) -> dict:
    """Child 1 (real python): write config.json + checkpoint.pt + t5/ with random weights."""
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from real_sam_tiny import build_t5  # the tokenizer trainer; its T5 is replaced below
    from sam_audio import SAMAudio
    from sam_audio.model.config import SAMAudioConfig
    from transformers import T5Config, T5EncoderModel

    started = time.monotonic()
    build_t5(folder / "t5")
    T5EncoderModel(T5Config(**T5_BASE_SHAPE, decoder_start_token_id=0)).save_pretrained(
        folder / "t5")
    config = small_config(str(folder / "t5"))
    torch.manual_seed(0)
    model = SAMAudio(SAMAudioConfig(**{**config, "span_predictor": None}))
    counts = {name: sum(p.numel() for p in getattr(model, name).parameters())
              for name in ("transformer", "audio_codec", "text_encoder", "vision_encoder")}
    counts["total"] = sum(p.numel() for p in model.parameters())
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("text_encoder.")}
    torch.save(state, folder / "checkpoint.pt")
    return {"params": counts, "build_s": round(time.monotonic() - started, 1),
            "checkpoint_gb": round((folder / "checkpoint.pt").stat().st_size / 1e9, 2)}


def measure(folder: Path, seconds: float, steps: int, method: str) -> dict:
    """Child 2 (real python): load like the payload, then time one separate."""
    started = time.monotonic()
    import torch
    from sam_audio import SAMAudio, SAMAudioProcessor
    imported = time.monotonic()
    model = SAMAudio.from_pretrained(str(folder), text_ranker=None, visual_ranker=None,
                                     span_predictor=None).eval().float()
    processor = SAMAudioProcessor.from_pretrained(str(folder))
    loaded = time.monotonic()
    rss_after_load_mb = vm_kb("VmRSS") / 1024
    peak_load_mb = vm_kb("VmHWM") / 1024

    nfe, ode_s, decode_s = [0], [0.0], [0.0]
    forward, decode = model.forward, model.audio_codec.decode

    def counted_forward(*args, **kwargs):
        t0 = time.monotonic()
        out = forward(*args, **kwargs)
        nfe[0] += 1
        ode_s[0] += time.monotonic() - t0
        return out

    def timed_decode(*args, **kwargs):
        t0 = time.monotonic()
        out = decode(*args, **kwargs)
        decode_s[0] += time.monotonic() - t0
        return out

    model.forward, model.audio_codec.decode = counted_forward, timed_decode
    gen = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(1, int(seconds * RATE), generator=gen)
    reset = reset_peak_rss()
    t0 = time.monotonic()
    batch = processor(descriptions=["speech"], audios=[audio])
    torch.manual_seed(0)
    with torch.inference_mode():
        result = model.separate(batch, ode_opt={"method": method,
                                                "options": {"step_size": 1 / steps}})
    wall = time.monotonic() - t0
    return {
        "audio_seconds": seconds, "ode": f"{method}, step_size 1/{steps}", "nfe": nfe[0],
        "torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": "float32",
        "import_s": round(imported - started, 1), "load_s": round(loaded - imported, 1),
        "separate_s": round(wall, 1), "rtf": round(wall / seconds, 2),
        "dit_s": round(ode_s[0], 1), "decode_s": round(decode_s[0], 1),
        "encode_other_s": round(wall - ode_s[0] - decode_s[0], 1),
        "out_samples": int(result.target[0].numel()),
        "rss_after_load_mb": round(rss_after_load_mb), "peak_rss_load_mb": round(peak_load_mb),
        # VmHWM is reset before separating, so this is the peak while separating alone
        "peak_rss_separate_mb": round(vm_kb("VmHWM") / 1024) if reset else None,
        "peak_rss_mb": round(max(peak_load_mb, vm_kb("VmHWM") / 1024)),
    }


def child_main(argv: list[str]) -> None:
    args = parse(argv)
    folder = Path(args.model_dir)
    if args.child == "build":
        out = build(folder)
    else:
        out = measure(folder, args.seconds, args.steps, args.method)
    print(json.dumps(out))


def run_child(python: str, stage: str, args: argparse.Namespace, folder: Path) -> dict:
    cmd = [python, __file__, "--child", stage, "--model-dir", str(folder), "--seconds",
           str(args.seconds), "--steps", str(args.steps), "--method", args.method]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # reaped here, for the child's own peak RSS
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{stage} failed (exit {code})")
    result = json.loads(out.strip().splitlines()[-1])
    if stage == "build":  # the measuring child resets its peak (clear_refs): not comparable
        result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    return result


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--method", default="midpoint")
    parser.add_argument("--model-dir")
    parser.add_argument("--child", choices=("build", "measure"))
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    if args.child:
        return child_main(argv)
    python = os.environ.get(ENV_VAR)
    if not python:
        print(json.dumps({"skipped": f"{ENV_VAR} is not set (the real sam_audio; see "
                                     "docs/real-model-check.md)"}))
        return
    report: dict = {"load_average_before": [round(x, 2) for x in os.getloadavg()],
                    "cpus": os.cpu_count(), "sizes": SMALL_TRANSFORMER}
    temp = None
    if args.model_dir and (Path(args.model_dir) / "checkpoint.pt").is_file():
        folder = Path(args.model_dir)
    else:
        folder = Path(args.model_dir) if args.model_dir else Path(
            temp := tempfile.mkdtemp(prefix="sam-small-random-"))
        folder.mkdir(parents=True, exist_ok=True)
        report["build"] = run_child(python, "build", args, folder)
    try:
        report["measure"] = run_child(python, "measure", args, folder)
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
