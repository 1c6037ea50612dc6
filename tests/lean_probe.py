"""Child process for the lean-load tests: one load in a fresh process, so peak RSS is its own.

    PY tests/lean_probe.py make-standin FOLDER [BALLAST_MB]
    PY tests/lean_probe.py load FOLDER DTYPE OUT.npy     (REMOTE_SEP_NAIVE_LOAD=1: the naive way)
    PY tests/lean_probe.py video FOLDER                  (lazy vision encoder == eagerly built)
    PY tests/lean_probe.py build FOLDER BIG              (RSS of building, no init; BIG=1: a
                                                          ~330 MB DiT instead of the folder's)

``load`` prints one JSON line: the ``load`` event fields, the warnings, the process's peak
RSS right after the load (VmHWM, kB) and the seeded outputs of one batch (saved to OUT.npy).
PY is the project's python with tests/standins on PYTHONPATH, or the real sam_audio's python.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def vm_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fin:
        for line in fin:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def make_standin(folder: Path, ballast_mb: int) -> None:
    """A stand-in model folder whose checkpoint differs from what __init__ computes (the
    codec kernel is halved), so output shows whether the checkpoint's weights were used."""
    import torch
    from sam_audio import SAMAudio

    config = {"audio_codec": {"sample_rate": 48_000, "hop_length": 1920},
              "ballast_mb": ballast_mb, "vision_encoder": {"ballast_mb": ballast_mb},
              "text_ranker": None, "visual_ranker": None, "span_predictor": "pe-a-frame-large"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    state = SAMAudio(config).state_dict()
    state["codec_in.weight"] = state["codec_in.weight"] * 0.5
    torch.save(state, folder / "checkpoint.pt")


def load(folder: str, dtype: str, out: str) -> None:
    import numpy as np

    from remote_payload.engine import Engine
    from remote_payload.manifest import Settings

    warnings: list[str] = []
    engine = Engine(Settings(model=folder, device="cpu", dtype=dtype, seed=3),
                    warn=warnings.append)
    info = engine.load()
    peak = vm_kb("VmHWM")
    rng = np.random.default_rng(0)
    signal = (0.1 * rng.standard_normal(int(os.environ.get("LEAN_PROBE_SAMPLES", "12000")))
              ).astype(np.float32)
    pairs = engine.separate([signal, signal[::-1].copy()], ["speech", "drums"], seed=7)
    np.save(out, np.stack([np.stack(pair) for pair in pairs]))
    print(json.dumps({"load": info, "warnings": warnings, "peak_kb": peak,
                      "vision": type(engine.model.vision_encoder).__name__}))


def video(folder: str) -> None:
    """The lazily built vision encoder gives what the naive one gives, on random frames."""
    import torch
    from sam_audio import SAMAudio

    from remote_payload.loading import load_model

    lean, info = load_model(SAMAudio, folder, {"span_predictor": None}, torch.float32, "cpu",
                            print)
    assert info["loader"] == "lean", info
    naive, _ = load_model(SAMAudio, folder, {"span_predictor": None}, torch.float32, "cpu",
                          print, lean=False)
    torch.manual_seed(0)
    size = getattr(naive.vision_encoder, "image_size", 8)
    videos = [torch.randint(0, 256, (3, 3, size, size), dtype=torch.uint8)]
    with torch.inference_mode():
        got = lean.vision_encoder(videos)
        want = naive.vision_encoder(videos)
    print(json.dumps({"equal": bool(torch.equal(got, want)), "shape": list(got.shape),
                      "built": type(lean.vision_encoder.encoder).__name__}))


def build(folder: str, big: str) -> None:
    """RSS growth while ``build_without_weights`` builds the folder's config (with a ~330 MB
    DiT if ``big``): the text encoder (transformers) is built before the DiT, as upstream's
    __init__ does."""
    from sam_audio import SAMAudio

    from remote_payload.loading import build_without_weights

    config = json.loads((Path(folder) / "config.json").read_text())
    if big == "1":
        config["transformer"].update(dim=1024, context_dim=1024, n_heads=8, n_layers=4)
    config["span_predictor"] = None
    before = vm_kb("VmRSS")
    model = build_without_weights(SAMAudio, SAMAudio.config_cls(**config))
    dit = sum(p.numel() * p.element_size() for p in model.transformer.parameters())
    print(json.dumps({"dit_kb": dit // 1024, "grown_kb": vm_kb("VmHWM") - before}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "make-standin":
        make_standin(Path(args[0]), int(args[1]) if len(args) > 1 else 0)
    elif command == "load":
        load(*args)
    elif command == "video":
        video(*args)
    elif command == "build":
        build(*args)
    else:
        raise SystemExit(f"unknown command {command!r}")
