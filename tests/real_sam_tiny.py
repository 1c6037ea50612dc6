"""Build a tiny, randomly initialised REAL SAM Audio model folder (run with the real-sam python).

    REAL_PY tests/real_sam_tiny.py OUT_DIR

    REAL_PY tests/real_sam_tiny.py --judge OUT_DIR T5_DIR [MAX_POSITIONS]   (a tiny judge)

writes ``OUT_DIR/config.json`` + ``OUT_DIR/checkpoint.pt`` (what ``SAMAudio.from_pretrained``
reads from a local folder) and ``OUT_DIR/t5`` (a tiny T5 encoder + sentencepiece tokenizer
trained here on a few sentences: the real config names a Hub model, unreachable offline, and
``T5TextEncoder`` accepts a local folder as the name). Nothing is downloaded.

Every size is shrunk except what the payload's facts depend on: the codec keeps its real
encoder rates (hop 1920 samples at 48 kHz) and the DiT keeps RoPE and 10000 positions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from real_sam_spans import build_span_predictor

SENTENCES = [
    "speech", "female vocals", "male speech", "drums", "a dog barking", "piano music",
    "bass guitar", "background noise", "the sound of rain", "a man talking over music",
    "crowd applause", "birds singing", "a car engine", "violin", "whistling",
]

ANCHOR_GATE = 1.0  # EmbedAnchors.gate: non-zero, so span prompts change the output
CODEBOOK_DIM = 8  # the codec latent; the model sees it doubled (target + residual)
DIM = 32


def tiny_config(t5_dir: str) -> dict:
    """Every key the released configs carry, so from_pretrained overrides reach them."""
    return {
        "in_channels": 6 * CODEBOOK_DIM,  # noisy (2C) + zeros (2C) + features (2C)
        "audio_codec": {"encoder_dim": 4, "encoder_rates": [2, 8, 10, 12], "latent_dim": 16,
                        "decoder_dim": 1536, "decoder_rates": [12, 10, 8, 2],
                        "n_codebooks": 2, "codebook_size": 16, "codebook_dim": CODEBOOK_DIM,
                        "sample_rate": 48_000},
        "text_encoder": {"name": t5_dir, "max_length": 32, "pad_mode": "longest", "dim": 16},
        "vision_encoder": {"dim": 8, "name": "PE-Core-T16-384"},  # smallest PE; no video here
        "transformer": {"dim": DIM, "n_heads": 2, "n_layers": 2, "context_dim": DIM,
                        "out_channels": 2 * CODEBOOK_DIM, "frequency_embedding_dim": 16,
                        "multiple_of": 16},
        "num_anchors": 3,
        "anchor_embedding_dim": 8,
        "visual_ranker": None,
        "text_ranker": None,
        # present (like in the released configs) so span_predictor=None can switch it off;
        # left on, it would download PE-A-Frame weights
        "span_predictor": "pe-a-frame-large",
    }


def build_t5(folder: Path) -> None:
    import sentencepiece as spm
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 20) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "spiece"), vocab_size=40,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        minloglevel=2)
    tokenizer = T5TokenizerFast(vocab_file=str(folder / "spiece.model"), extra_ids=0)
    tokenizer.save_pretrained(folder)
    config = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                      num_heads=2, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(folder)


# The judge's score scale: SAMAudioJudgeModel de-normalises its pooled head output with
# ``pooled * std + mean``. A tiny random judge gets mean 3 (scores a few units, like the
# real one's) so that bf16's resolution there (1/64) is what it is for the released judge.
JUDGE_MEAN = 3.0


def tiny_judge_config(max_positions: int = 10_000) -> dict:
    """A SAMAudioJudgeConfig with every part shrunk; the codec keeps its real rates (hop
    1920 at 48 kHz) and the PE transformers their RoPE table (``max_positions``)."""
    pe = {"hidden_size": DIM, "intermediate_size": 2 * DIM, "num_hidden_layers": 1,
          "num_attention_heads": 2, "max_position_embeddings": max_positions}
    return {
        "audio_codec": {"encoder_dim": 4, "encoder_rates": [2, 8, 10, 12], "latent_dim": 16,
                        "n_codebooks": 2, "codebook_size": 16, "codebook_dim": CODEBOOK_DIM,
                        "sample_rate": 48_000},
        "transformer": pe,
        "finetune_transformer": pe,
        "text_model": {"vocab_size": 64, "hidden_size": DIM, "intermediate_size": 2 * DIM,
                       "num_hidden_layers": 2, "num_attention_heads": 2,
                       "global_attn_every_n_layers": 1, "pad_token_id": 0,
                       "bos_token_id": 1, "eos_token_id": 1, "cls_token_id": 1,
                       "sep_token_id": 1, "max_position_embeddings": 64},
        "nth_text_layer": 1,
        "bottleneck_dim": 16,
    }


def build_judge(out: Path, t5_dir: Path, seed: int = 0, max_positions: int = 10_000) -> Path:
    """A tiny random SAMAudioJudgeModel folder: config.json, checkpoint.pt, tokenizer."""
    import torch
    from sam_audio.model.config import SAMAudioJudgeConfig
    from sam_audio.model.judge import SAMAudioJudgeModel
    from transformers import AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    config = tiny_judge_config(max_positions)
    torch.manual_seed(seed)
    model = SAMAudioJudgeModel(SAMAudioJudgeConfig(**config))
    with torch.no_grad():
        model.mean.fill_(JUDGE_MEAN)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    torch.save(model.state_dict(), out / "checkpoint.pt")
    AutoTokenizer.from_pretrained(t5_dir).save_pretrained(out)  # any tokenizer AutoTokenizer reads
    return out


def build(out: Path, seed: int = 0) -> Path:
    import torch
    from sam_audio import SAMAudio
    from sam_audio.model.config import SAMAudioConfig

    out.mkdir(parents=True, exist_ok=True)
    build_t5(out / "t5")
    config = tiny_config(str(out / "t5"))
    # a tiny PE-A-Frame of our own (real classes, random weights), so predict_spans loads
    config["span_predictor"] = str(build_span_predictor(out / "pe-a-frame", out / "t5"))
    torch.manual_seed(seed)
    # span_predictor=None here: it is not part of the checkpoint (loaded from its folder)
    model = SAMAudio(SAMAudioConfig(**{**config, "span_predictor": None}))
    with torch.no_grad():  # anchors act through tanh(gate), 0 at init: set like a trained one
        model.embed_anchors.gate.fill_(ANCHOR_GATE)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    # the text encoder is loaded from its own folder, not from the checkpoint (like upstream)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("text_encoder.")}
    torch.save(state, out / "checkpoint.pt")
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--judge":  # --judge OUT_DIR T5_DIR [MAX_POSITIONS]
        extra = [int(sys.argv[4])] if len(sys.argv) > 4 else []
        print(build_judge(Path(sys.argv[2]), Path(sys.argv[3]), 0, *extra))
    else:
        print(build(Path(sys.argv[1])))
