"""A tiny, randomly initialised REAL span predictor folder (PE-A-Frame, perception_models).

Used by real_sam_tiny.py (run with the real-sam python). ``PEAudioFrame.from_config`` and
``PEAudioFrameTransform.from_config`` accept a folder holding ``config.json``,
``model.safetensors`` and a tokenizer, so the tiny model's config names this folder as its
``span_predictor`` and nothing is downloaded. Sizes follow the tiny SAM Audio: the predictor
reads the model's codec features (``audio_features[:, :, :128]``: 2 x 8 channels here),
so its ``codebook_dim`` is 16; the DAC config keeps hop 1920 at 48 kHz (its spans are
frame index x hop / rate). ``logit_scale`` and ``logit_bias`` are set so the random
logits cross the 0.3 threshold on some frames and not on others (with their initial 0,
sigmoid(0) = 0.5 makes every frame a span); measured: for "speech" on the contract test's
tone mix the unscaled logits sit around 0.1, so about half of its frames pass.
"""

from __future__ import annotations

import json
from pathlib import Path

FEATURES = 16  # the tiny model's audio_features width (2 x CODEBOOK_DIM)


def span_config() -> dict:
    return {
        "audio_model": {
            "dac_vae_encoder": {"encoder_hidden_size": 4, "downsampling_ratios": [2, 8, 10, 12],
                                "decoder_hidden_size": 8, "n_codebooks": 2, "codebook_size": 16,
                                "codebook_dim": FEATURES, "quantizer_dropout": 0,
                                "sampling_rate": 48_000},
            "audio_transformer": {"hidden_size": 16, "intermediate_size": 32,
                                  "num_hidden_layers": 1, "num_attention_heads": 2},
        },
        "text_model": {"model_type": "modernbert", "vocab_size": 64, "hidden_size": 16,
                       "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "pad_token_id": 0, "eos_token_id": 1,
                       "bos_token_id": 2, "cls_token_id": 2, "sep_token_id": 1,
                       "global_attn_every_n_layers": 1, "local_attention": 16},
        "output_dim": 16,
        "nth_text_layer": None,
    }


def build_span_predictor(folder: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    import torch
    from core.audio_visual_encoder.config import PEAudioFrameConfig
    from core.audio_visual_encoder.pe import PEAudioFrame
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    config = span_config()
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(folder))
    torch.manual_seed(seed)
    model = PEAudioFrame(PEAudioFrameConfig(**config))
    with torch.no_grad():
        model.logit_scale.fill_(40.0)
        model.logit_bias.fill_(-4.85)  # 40 * 0.1 + logit(0.3)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    return folder
