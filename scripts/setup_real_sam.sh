#!/usr/bin/env bash
# Builds the python that runs the REAL sam_audio on CPU (steps 2-3 of docs/real-model-check.md):
# a venv with the PyPI dependencies, the three source trees installed without their
# dependencies, and shims for the pieces the audio path never runs.
#
# Usage: bash scripts/setup_real_sam.sh SRC_SAM SRC_PM SRC_DACVAE
#   SRC_SAM     facebookresearch/sam-audio checkout (sam_audio/ pyproject.toml README.md)
#   SRC_PM      facebookresearch/perception_models, branch unpin-deps (core/ setup.py ...)
#   SRC_DACVAE  a tree with Meta's dacvae package and a setup.py (kadirnar/fast-dacvae)
# Environment: REALSAM_VENV (default /tmp/realsam-venv), REALSAM_SHIMS (default
# /tmp/realsam-shims), PYTHON (default python3, >= 3.11). An existing venv is reused.
# Then: REMOTE_SEP_REAL_SAM_PYTHON=$REALSAM_VENV/bin/python pytest tests/test_payload_contract.py
set -euo pipefail

if [ $# -ne 3 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
SRC_SAM=$(realpath "$1"); SRC_PM=$(realpath "$2"); SRC_DACVAE=$(realpath "$3")
for d in "$SRC_SAM/sam_audio" "$SRC_PM/core" "$SRC_DACVAE/dacvae"; do
  [ -d "$d" ] || { echo "missing $d" >&2; exit 2; }
done
VENV=${REALSAM_VENV:-/tmp/realsam-venv}
SHIMS=${REALSAM_SHIMS:-/tmp/realsam-shims}
PYTHON=${PYTHON:-python3}

# 2. the venv (no system site-packages) and its packages
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
pip_log=$(mktemp)  # pip's chatter, shown only when an install fails
pip_install() { "$PY" -m pip install -q "$@" >"$pip_log" 2>&1 || { cat "$pip_log"; exit 1; }; }
pip_install torch==2.13.0 "transformers<5" "huggingface_hub<1" einops torchdiffeq \
  soundfile soxr numpy timm ftfy regex safetensors tokenizers sentencepiece protobuf
# the packages themselves, without their git-only / CUDA-bound dependency lists
pip_install --no-deps "$SRC_SAM" "$SRC_PM" "$SRC_DACVAE"
rm -f "$pip_log"

# 3. shims, each standing in only for code the audio path never runs
rm -rf "$SHIMS"
mkdir -p "$SHIMS/torchaudio" "$SHIMS/torchcodec" "$SHIMS/xformers/ops" \
  "$SHIMS/torchcodec-0.0.0+shim.dist-info"

# torchaudio: no wheel matches torch 2.13. sam_audio.processor calls load/resample only for
# audio given as file paths; the payload passes tensors.
cat >"$SHIMS/torchaudio/__init__.py" <<'EOF'
"""Shim (remote-sep real-model check): no torchaudio wheel matches this torch."""
from . import functional  # noqa: F401

__version__ = "0.0.0+shim"


def load(*args, **kwargs):
    raise RuntimeError("torchaudio shim: loading audio files is not available here")
EOF
cat >"$SHIMS/torchaudio/functional.py" <<'EOF'
"""Shim (remote-sep real-model check)."""


def resample(*args, **kwargs):
    raise RuntimeError("torchaudio shim: resample is not available here")
EOF

# torchcodec: the wheel needs FFmpeg shared libraries. Used only to decode files and video
# and by the sound-activity ranker. transformers reads its version, hence the dist-info.
cat >"$SHIMS/torchcodec/__init__.py" <<'EOF'
"""Shim (remote-sep real-model check): the real wheel needs FFmpeg shared libraries."""
from . import decoders, encoders  # noqa: F401

__version__ = "0.0.0+shim"
EOF
cat >"$SHIMS/torchcodec/decoders.py" <<'EOF'
"""Shim (remote-sep real-model check)."""


class AudioDecoder:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchcodec shim: decoding files is not available here")


class VideoDecoder:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchcodec shim: decoding video is not available here")
EOF
cat >"$SHIMS/torchcodec/encoders.py" <<'EOF'
"""Shim (remote-sep real-model check)."""


class AudioEncoder:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchcodec shim: encoding audio is not available here")
EOF
printf 'Metadata-Version: 2.1\nName: torchcodec\nVersion: 0.0.0+shim\n' \
  >"$SHIMS/torchcodec-0.0.0+shim.dist-info/METADATA"

# xformers: core.transformer imports xformers.ops (a CUDA wheel); only its fmha attention
# path uses it, which serves the span predictor and judge (off here).
cat >"$SHIMS/xformers/__init__.py" <<'EOF'
"""Shim (remote-sep real-model check): xformers is a CUDA wheel."""
__version__ = "0.0.0+shim"
EOF
cat >"$SHIMS/xformers/ops/__init__.py" <<'EOF'
"""Shim (remote-sep real-model check)."""
from . import fmha  # noqa: F401


class AttentionBias:
    pass
EOF
cat >"$SHIMS/xformers/ops/fmha.py" <<'EOF'
"""Shim (remote-sep real-model check)."""


def memory_efficient_attention(*args, **kwargs):
    raise RuntimeError("xformers shim: fmha attention is not available here")


def __getattr__(name):
    raise RuntimeError(f"xformers shim: fmha.{name} is not available here")
EOF

# torchvision: its C ops are CUDA-linked and do not load with the CPU torch, and
# `import torchvision` then fails registering fakes for torchvision::nms / qnms. Declaring
# the two schemas first lets the pure-Python parts import. No torchvision op is called.
cat >"$SHIMS/realsam_torchvision_ops.py" <<'EOF'
"""Shim (remote-sep real-model check): declare torchvision::nms/qnms before torchvision loads."""
import torch

try:
    _LIB = torch.library.Library("torchvision", "DEF")
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
except RuntimeError:  # already declared (the real C ops loaded after all)
    pass
EOF

SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\nimport realsam_torchvision_ops\n' "$SHIMS" >"$SITE/realsam-shims.pth"

# check: the real package imports, and it is not the test stand-in
"$PY" - <<'EOF'
import sam_audio
from sam_audio import SAMAudio, SAMAudioProcessor  # noqa: F401
import dacvae, core.transformer, torch, torchvision  # noqa: F401,E401
assert not getattr(sam_audio, "IS_STANDIN", False)
print(f"ok: sam_audio from {sam_audio.__file__}, torch {torch.__version__}, "
      f"torchvision {torchvision.__version__}")
EOF
echo "REMOTE_SEP_REAL_SAM_PYTHON=$PY"
