"""`--preview`: one PNG with the spectrograms of the input and every stem, stacked on one
time axis, so a person can see what was taken out without listening to every file.

Time in m:ss, frequency in kHz on a log scale, one colour scale shared by every panel (a
quiet stem looks quiet), spans shaded (given: green "+" / red "-"; predicted: blue), the
prompt and any scores in the title. matplotlib is an optional extra
(`pip install 'remote-sep[preview]'`); without it --preview is refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from remote_sep.errors import ConfigError

FFT = 2048
MAX_COLUMNS = 1600  # time resolution of the picture; long files get a larger hop
FLOOR_DB = 90.0  # the colour scale spans this far below the loudest bin of all panels
MIN_HZ = 40.0


@dataclass
class Span:
    start_s: float
    end_s: float
    kind: str = "+"  # "+" the sound is there, "-" it is not, "predicted"


@dataclass
class Preview:
    """What was drawn (the PNG's panels, in order), for callers and tests."""
    path: Path
    panels: list[str] = field(default_factory=list)
    seconds: float = 0.0
    db_range: tuple[float, float] = (0.0, 0.0)


def require_matplotlib() -> None:
    """Refuse --preview up front when the optional extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--preview needs matplotlib, which is not installed",
                          hint="pip install 'remote-sep[preview]' (or: pip install matplotlib)"
                          ) from None


def preview_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}_preview.png")


def _mono(path: Path) -> tuple[np.ndarray, int]:
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def spectrogram_db(signal: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(dB magnitudes [freq, time], bin frequencies in Hz, seconds per column)."""
    hop = max(FFT // 4, int(np.ceil(len(signal) / MAX_COLUMNS)))
    padded = np.pad(signal, (FFT // 2, FFT // 2 + hop))
    count = max(1, (len(padded) - FFT) // hop + 1)
    frames = np.lib.stride_tricks.sliding_window_view(padded, FFT)[::hop][:count]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(FFT), axis=1)).T
    db = 20.0 * np.log10(np.maximum(spectrum, 1e-10))
    return db, np.fft.rfftfreq(FFT, 1.0 / rate), hop / rate


def _mmss(seconds: float, _pos: Any = None) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes)}:{rest:04.1f}" if rest % 1 else f"{int(minutes)}:{int(rest):02d}"


def _khz(hz: float, _pos: Any = None) -> str:
    return f"{hz / 1000:g}"


def write_preview(png: Path, audio: Path, stems: Sequence[tuple[str, Path]], *,
                  title: str, spans: Sequence[Span] = (),
                  scores: dict[str, float] | None = None) -> Preview:
    """Draw AUDIO and each (label, file) in STEMS into PNG (written to a temp name, then
    renamed: a finished-looking PNG is never half written)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = [("input", Path(audio)), *[(label, Path(p)) for label, p in stems]]
    layers = []
    for label, path in panels:
        signal, rate = _mono(path)
        db, freqs, step = spectrogram_db(signal, rate)
        layers.append((label, db, freqs, step, len(signal) / rate))
    top = max(float(layer[1].max()) for layer in layers)
    vmin, vmax = top - FLOOR_DB, top
    seconds = max(layer[4] for layer in layers)

    fig, axes = plt.subplots(len(layers), 1, sharex=True, figsize=(12, 2.2 * len(layers) + 0.8),
                             squeeze=False, constrained_layout=True)
    image = None
    for ax, (label, db, freqs, step, _) in zip(axes[:, 0], layers, strict=True):
        keep = freqs >= MIN_HZ
        times = np.arange(db.shape[1] + 1) * step
        edges = np.concatenate([freqs[keep], [freqs[keep][-1] * 1.01]])
        image = ax.pcolormesh(times, edges, db[keep], shading="flat", cmap="magma",
                              vmin=vmin, vmax=vmax, rasterized=True)
        ax.set_yscale("log")
        ax.set_ylim(MIN_HZ, freqs[-1])
        ax.yaxis.set_major_formatter(FuncFormatter(_khz))
        ax.set_ylabel(f"{label}\nkHz")
        for span in spans:
            color = {"+": "#2ecc71", "-": "#e74c3c"}.get(span.kind, "#3498db")
            ax.axvspan(span.start_s, span.end_s, color=color, alpha=0.18, lw=0)
    if spans:
        from matplotlib.patches import Patch
        names = {"+": "span: present", "-": "span: absent", "predicted": "span: predicted"}
        colors = {"+": "#2ecc71", "-": "#e74c3c", "predicted": "#3498db"}
        kinds = list(dict.fromkeys(s.kind for s in spans))
        axes[0, 0].legend(handles=[Patch(color=colors.get(k, "#3498db"), alpha=0.4,
                                         label=names.get(k, k)) for k in kinds],
                          loc="upper right", fontsize="small", framealpha=0.8)
    bottom = axes[-1, 0]
    bottom.set_xlim(0, seconds)
    bottom.xaxis.set_major_formatter(FuncFormatter(_mmss))
    bottom.set_xlabel("time (m:ss)")
    heading = title
    if scores:
        heading += "  |  " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
    fig.suptitle(heading)
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="dB", pad=0.01, aspect=40)

    png = Path(png)
    tmp = png.with_name(f".{png.name}.part")
    try:
        fig.savefig(tmp, format="png", dpi=100)
        tmp.replace(png)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return Preview(png, [label for label, *_ in layers], seconds, (vmin, vmax))


def previews_for(audio: Path, outputs: Sequence[dict[str, Any]], where: str,
                 spans: Sequence[Span] = ()) -> list[Path]:
    """One PNG per separated description, next to its stems: `<prefix>_preview.png`, where
    OUTPUTS are {description, target, residual, [scores]} (paths of pulled files)."""
    written = []
    for entry in outputs:
        target, residual = entry.get("target"), entry.get("residual")
        if not target or not residual:
            continue
        prefix = str(target).rsplit("_target.", 1)[0]
        title = f'"{entry.get("description") or ""}" out of {Path(audio).name} ({where})'
        drawn = write_preview(preview_path(prefix), Path(audio),
                              [("target", Path(target)), ("residual", Path(residual))],
                              title=title, spans=spans, scores=entry.get("scores"))
        written.append(drawn.path)
    return written
