"""SAM Audio at its released sizes, built with the REAL classes (random weights), for the benches.

Where the sizes come from: the released config.json files of facebook/sam-audio-{small,base,
large} are on the gated Hub only, not in the GitHub repo. Codec, T5, vision encoder and
every DiT key but four are the sam_audio defaults (sam_audio/model/config.py at 68b48d4).
The DiT's dim / heads / layers (and context_dim = dim) are the presets of the mlx-audio port
(mlx_audio/sts/models/sam_audio/config.py: small 1024/8/12, base 1536/12/16, large
2816/22/22). Cross-checks against published figures: this large config has 3,715.2 M
parameters in its checkpoint, exactly the 3,715,221,638 the AEmotionStudio/sam-audio-models
card gives for large-tv; the codec (107.67 M, 430.7 MB fp32) matches the 430,723,572-byte
audio_codec.safetensors of audioghostai/sam-audio-shared. The source's own DiT default
(2048/16/16) is kept as "default" (1.15 B DiT parameters), matching no release.

The T5 is a random encoder of t5-base's shape (the Hub is unreachable offline) with a tiny
local sentencepiece tokenizer (tests/real_sam_tiny.py's trainer): the same compute per token.

    python bench/sam_sizes.py            (real sam_audio's python) prints parameters and
                                         fp32 bytes per component for every size, as JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DIT = {  # dim, n_heads, n_layers
    "small": (1024, 8, 12),
    "base": (1536, 12, 16),
    "large": (2816, 22, 22),
    "default": (2048, 16, 16),
}
T5_BASE_SHAPE = {"d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_heads": 12,
                 "vocab_size": 32128}


def sam_config(size: str, t5_dir: str) -> dict:
    """The config.json of ``size`` (see the module docstring for where each number is from)."""
    dim, heads, layers = DIT[size]
    return {
        "in_channels": 768,  # 6 x codebook_dim 128
        "audio_codec": {},  # defaults: encoder_dim 64, latent 1024, decoder 1536, hop 1920
        "text_encoder": {"name": t5_dir, "dim": 768},
        "vision_encoder": {},  # default PE-Core-L14-336, dim 1024
        "transformer": {"dim": dim, "n_heads": heads, "n_layers": layers, "context_dim": dim,
                        "out_channels": 256},
        "num_anchors": 3,
        "anchor_embedding_dim": 128,
        "visual_ranker": None,
        "text_ranker": None,
        "span_predictor": "pe-a-frame-large",  # present so span_predictor=None turns it off
    }


def build_t5(folder: Path) -> None:
    """A random t5-base-shaped encoder + a tiny tokenizer, saved where the config names it."""
    sys.path.insert(0, str(ROOT / "tests"))
    from real_sam_tiny import build_t5 as tiny_t5  # trains the small sentencepiece model
    from transformers import T5Config, T5EncoderModel

    tiny_t5(folder)
    T5EncoderModel(T5Config(**T5_BASE_SHAPE, decoder_start_token_id=0)).save_pretrained(folder)


def build_folder(size: str, folder: Path, seed: int = 0) -> dict:
    """config.json + checkpoint.pt (random weights, upstream's layout) + t5/ in ``folder``."""
    import torch
    from sam_audio import SAMAudio
    from sam_audio.model.config import SAMAudioConfig

    folder.mkdir(parents=True, exist_ok=True)
    build_t5(folder / "t5")
    config = sam_config(size, str(folder / "t5"))
    torch.manual_seed(seed)
    model = SAMAudio(SAMAudioConfig(**{**config, "span_predictor": None}))
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    # the text encoder loads from its own folder, not from the checkpoint (like upstream)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("text_encoder.")}
    torch.save(state, folder / "checkpoint.pt")
    return {"size": size, "checkpoint_bytes": (folder / "checkpoint.pt").stat().st_size}


def component_sizes(size: str) -> dict:
    """Parameters and fp32 bytes per component, counted on the meta device (no RAM)."""
    import importlib

    import torch
    from sam_audio.model.config import SAMAudioConfig
    from transformers import T5Config, T5EncoderModel

    sam = importlib.import_module("sam_audio.model.model")
    cfg = SAMAudioConfig(**{**sam_config(size, "t5-base"), "span_predictor": None})
    with torch.device("meta"):
        parts = {"transformer (DiT)": sam.DiT(cfg.transformer),
                 "audio_codec (DACVAE)": sam.DACVAE(cfg.audio_codec),
                 "vision_encoder (PE-Core-L14-336)": sam.PerceptionEncoder(cfg.vision_encoder),
                 "text_encoder (T5-base encoder)": T5EncoderModel(T5Config(**T5_BASE_SHAPE))}
        dim, in_ch = cfg.transformer.dim, cfg.in_channels
        glue = (in_ch * dim + dim) + (1024 * dim + dim + 2 * dim + 1) + (
            4 * 128 + 128 * dim + 1) + (768 * dim + dim)  # proj, align, anchors, memory_proj
    out = {name: {"params": sum(p.numel() for p in m.parameters())} for name, m in parts.items()}
    out["glue (proj, align, anchors, memory_proj)"] = {"params": glue}
    for entry in out.values():
        entry["fp32_bytes"] = entry["params"] * 4
    return out


if __name__ == "__main__":
    report = {}
    for name in ("small", "base", "large", "default"):
        parts = component_sizes(name)
        checkpoint = sum(v["params"] for k, v in parts.items() if not k.startswith("text_"))
        text_only = sum(v["params"] for k, v in parts.items() if not k.startswith("vision_"))
        report[name] = {"components": parts, "checkpoint_params": checkpoint,
                        "text_only_run_params": text_only}
    print(json.dumps(report, indent=1))
