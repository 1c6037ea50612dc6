"""Which PyTorch wheel index fits a host: DESIGN.md §5 as one table, plus the GPU rules.

`nvidia-smi`'s "CUDA Version" is the newest CUDA the driver supports; a wheel built for CUDA
X.Y needs a driver that supports X.Y at least. Rows are tried newest first; a row is taken
when the driver is new enough and the GPU's compute capability is one that wheel builds for.
A profile's `torch_index` / `torch_spec` override the choice (DESIGN §5: "overridable per host").
"""

from __future__ import annotations

from dataclasses import dataclass

from remote_sep.errors import RemoteSepError

PYTORCH_WHL = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class WheelRow:
    tag: str  # "cu128"
    min_cuda: tuple[int, int]  # the driver must support at least this CUDA version
    min_cc: tuple[int, int]  # oldest GPU architecture these wheels are built for
    torch: str  # newest torch line published for this tag (the default torch spec)
    # sam_audio requires torchvision: from PyPI it would be built for another CUDA major
    # (cu128 on a cu130 host), so it comes from the same index, at torch's matching version.
    torchvision: str
    torchaudio: str
    torchcodec: str  # must match torch (torchcodec's compatibility table)
    note: str


# Newest first. torch 2.9 is the newest line with cu126/cu128/cu130 wheels; cu124 stopped at
# torch 2.6 and cu118 at 2.7. cu128 (torch >= 2.8) and cu130 dropped Maxwell/Pascal/Volta,
# so GPUs below sm_75 fall through to cu126.
WHEEL_TABLE: tuple[WheelRow, ...] = (
    WheelRow("cu130", (13, 0), (7, 5), "torch==2.9.1",
             "torchvision==0.24.1", "torchaudio==2.9.1", "torchcodec==0.8.*",
             "driver supports CUDA >= 13.0"),
    WheelRow("cu128", (12, 8), (7, 5), "torch==2.9.1",
             "torchvision==0.24.1", "torchaudio==2.9.1", "torchcodec==0.8.*",
             "driver supports CUDA 12.8-12.9"),
    WheelRow("cu126", (12, 6), (5, 0), "torch==2.9.1",
             "torchvision==0.24.1", "torchaudio==2.9.1", "torchcodec==0.8.*",
             "driver supports CUDA 12.6-12.7 (or a GPU older than sm_75)"),
    WheelRow("cu124", (12, 4), (5, 0), "torch==2.6.0",
             "torchvision==0.21.0", "torchaudio==2.6.0", "torchcodec==0.2.*",
             "driver supports CUDA 12.4-12.5 (torch <= 2.6)"),
    WheelRow("cu118", (11, 8), (3, 7), "torch==2.7.1",
             "torchvision==0.22.1", "torchaudio==2.7.1", "torchcodec==0.4.*",
             "driver supports CUDA 11.8-12.3 (torch <= 2.7)"),
)
CPU_ROW = WheelRow("cpu", (0, 0), (0, 0), "torch==2.9.1",
                   "torchvision==0.24.1", "torchaudio==2.9.1", "torchcodec==0.8.*",
                   "CPU wheels (--cpu), separation is very slow")

BLACKWELL_CC = (10, 0)  # sm_100 (B200) and sm_120 (RTX 50xx) need cu128 or newer
BLACKWELL_MIN_CUDA = (12, 8)


@dataclass(frozen=True)
class TorchChoice:
    index_url: str | None  # None: pip's default index (a profile override)
    tag: str
    torch_packages: tuple[str, ...]  # requirement strings installed together in one pip call
    with_torchcodec: bool  # torchcodec (hence FFmpeg) is part of the plan
    why: str


def parse_version(text: str | None) -> tuple[int, int] | None:
    """'12.8' -> (12, 8); '8.6' -> (8, 6); anything else -> None."""
    if not text:
        return None
    parts = text.strip().split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def choose_row(cuda: tuple[int, int], cc: tuple[int, int] | None) -> tuple[WheelRow, str]:
    """The table row for a driver's CUDA version and a GPU's compute capability, and why."""
    cc_known = cc if cc is not None else (7, 5)  # unknown (old nvidia-smi): assume a modern GPU
    if cc_known >= BLACKWELL_CC and cuda < BLACKWELL_MIN_CUDA:
        raise RemoteSepError(
            f"this GPU (compute capability {cc_known[0]}.{cc_known[1]}, Blackwell) needs CUDA "
            f">= 12.8 wheels, but the driver supports only CUDA {cuda[0]}.{cuda[1]}",
            hint="update the NVIDIA driver to 570 or newer, then rerun bootstrap",
            kind="no_gpu",
        )
    for row in WHEEL_TABLE:
        if cuda >= row.min_cuda and cc_known >= row.min_cc:
            why = f"{row.note}; GPU sm_{cc_known[0]}{cc_known[1]}"
            if cc_known >= BLACKWELL_CC:
                why += " (Blackwell: cu128 or newer)"
            elif cuda >= (12, 8) and row.tag == "cu126":
                why += " (older than sm_75: newer wheels dropped it)"
            return row, why
    raise RemoteSepError(
        f"the NVIDIA driver supports only CUDA {cuda[0]}.{cuda[1]}; PyTorch wheels need >= 11.8",
        hint="update the NVIDIA driver (or set torch_index/torch_spec for this host)",
        kind="no_gpu",
    )


def choose_torch(
    cuda: tuple[int, int] | None,
    cc: tuple[int, int] | None,
    *,
    cpu: bool = False,
    index_override: str | None = None,
    spec_override: str | None = None,
) -> TorchChoice:
    """Pick the wheel index and torch packages. Overrides win over the table.

    ``spec_override`` replaces the whole torch-family line (space-separated requirements):
    a host that sets it installs exactly that, so torchvision/torchaudio/torchcodec are
    its to list.
    """
    if cpu:
        row, why = CPU_ROW, CPU_ROW.note
    elif cuda is None:
        # Only reached with a blocker in the plan (no GPU and no --cpu): say what --cpu would do.
        row, why = CPU_ROW, "no GPU found; CPU wheels only if you pass --cpu (blocked below)"
    else:
        row, why = choose_row(cuda, cc)
    index: str | None = f"{PYTORCH_WHL}/{row.tag}"
    if index_override is not None:
        index = index_override.strip() or None
        if index is None or index.lower() == "none":
            index, why = None, f"{why}; index overridden by the profile: pip's default index"
        else:
            why = f"{why}; index overridden by the profile"
    if spec_override:
        packages = tuple(spec_override.split())
        why += "; torch spec overridden by the profile"
    else:
        packages = (row.torch, row.torchvision, row.torchaudio, row.torchcodec)
    with_codec = any(p.lower().startswith("torchcodec") for p in packages)
    return TorchChoice(index, row.tag, packages, with_codec, why)
