"""A tiny REAL SAM Audio ``-tv``-style model folder whose video path is live (real-sam python).

    REAL_PY tests/real_sam_tiny_tv.py OUT_DIR

Like tests/real_sam_tiny.py, plus what a visual prompt needs to reach the output:
- ``vision_encoder.dim`` is the encoder's real output width (512 for PE-Core-T16-384, the
  smallest PE): ``AlignModalities`` is built with ``cfg.vision_encoder.dim`` input channels,
  so any other value crashes on the first video (``align.py``, a conv of the wrong width);
- ``align_masked_video.gate`` is 1: it is initialised to 0 and the video enters as
  ``tanh(gate) * features``, so a random model would ignore every video.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from real_sam_tiny import build_t5, tiny_config

VISION = {"dim": 512, "name": "PE-Core-T16-384", "image_size": 384}


def build(out: Path, seed: int = 0) -> Path:
    import torch
    from sam_audio import SAMAudio
    from sam_audio.model.config import SAMAudioConfig

    out.mkdir(parents=True, exist_ok=True)
    build_t5(out / "t5")
    config = {**tiny_config(str(out / "t5")), "vision_encoder": VISION}
    torch.manual_seed(seed)
    model = SAMAudio(SAMAudioConfig(**{**config, "span_predictor": None}))
    (out / "config.json").write_text(json.dumps(config, indent=1))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("text_encoder.")}
    state["align_masked_video.gate"] = torch.ones(1)
    torch.save(state, out / "checkpoint.pt")
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
