"""--preview: one PNG of stacked spectrograms (input, target, residual) on one time axis,
one shared colour scale, spans shaded; refused up front without matplotlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_separate_e2e import hosts_yaml, invoke, make_audio

from remote_sep.cli.preview import Span, spectrogram_db, write_preview


def tone(path: Path, hz: float, seconds: float, rate: int = 16000, gain: float = 0.3) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, gain * np.sin(2 * np.pi * hz * t), rate)
    return path


def test_the_png_has_one_panel_per_signal_on_a_shared_scale(tmp_path):
    import matplotlib.image

    mix, hum, whistle = (tone(tmp_path / f"{n}.wav", hz, 70) for n, hz in
                         (("mix", 110), ("hum", 110), ("whistle", 3000)))
    quiet = tone(tmp_path / "quiet.wav", 3000, 70, gain=0.003)
    drawn = write_preview(tmp_path / "x_preview.png", mix, [("target", hum),
                          ("residual", whistle), ("quiet", quiet)], title='"hum"',
                          spans=[Span(5, 9, "+"), Span(20, 30, "predicted")],
                          scores={"overall": 0.5})
    assert drawn.panels == ["input", "target", "residual", "quiet"]
    assert drawn.seconds == pytest.approx(70.0)
    pixels = matplotlib.image.imread(str(drawn.path))
    assert pixels.shape[0] > 4 * 150 and pixels.shape[1] >= 1000  # four panels stacked
    assert not list(tmp_path.glob(".*part"))  # written to a temp name, then renamed
    # One colour scale: the quiet copy of the whistle sits 40 dB under the loud one.
    loud, _, _ = spectrogram_db(sf.read(whistle)[0], 16000)
    soft, _, _ = spectrogram_db(sf.read(quiet)[0], 16000)
    assert loud.max() - soft.max() == pytest.approx(40.0, abs=0.5)
    assert drawn.db_range[1] == pytest.approx(max(loud.max(), soft.max()), abs=1.0)


def test_time_labels_read_as_minutes_and_seconds():
    from remote_sep.cli.preview import _khz, _mmss

    assert [_mmss(s) for s in (0, 9, 75, 600.5)] == ["0:00", "0:09", "1:15", "10:00.5"]
    assert [_khz(h) for h in (100, 1000, 12000)] == ["0.1", "1", "12"]


@pytest.mark.e2e
def test_separate_preview_writes_the_png_beside_the_stems(ssh_server, tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))
    hosts = hosts_yaml(tmp_path, ssh_server)
    audio = make_audio(tmp_path / "mix.wav")
    result, body = invoke("separate", audio, "--desc", "bass hum", "--host", "gpu",
                          "--hosts", hosts, "--preview")
    assert result.exit_code == 0, result.output
    (png,) = body["result"]["previews"]
    assert Path(png) == tmp_path / "mix_bass-hum_preview.png" and Path(png).stat().st_size > 0


def test_preview_without_matplotlib_is_refused_before_anything_runs(tmp_path):
    audio = make_audio(tmp_path / "mix.wav")
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from remote_sep.cli.main import main; main()")
    run = subprocess.run([sys.executable, "-c", code, "separate", str(audio), "--desc", "x",
                          "--host", "nowhere-host", "--preview", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 4 and "matplotlib" in run.stdout and "preview" in run.stdout


@pytest.mark.e2e
def test_batch_preview_one_png_per_unit(tmp_path, monkeypatch):
    import json

    from batch_helpers import make_songs, write_hosts_file
    from conftest import TESTS
    from typer.testing import CliRunner

    from remote_sep.cli.main import app

    monkeypatch.setenv("REMOTE_SEP_STATE_DIR", str(tmp_path / "state"))
    make_songs(tmp_path / "in", 2)
    hosts_file = write_hosts_file(tmp_path / "hosts.yaml", {"local": {
        "path": str(tmp_path / "remote-local"), "python": sys.executable,
        "env": {"PYTHONPATH": str(TESTS / "standins")}}})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "batch", str(tmp_path / "in"), "-d", "vocals", "--hosts", "local", "--preview",
        "--hosts-file", str(hosts_file), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)["result"]["items"]
    pngs = sorted(p.name for p in out.glob("*_preview.png"))
    assert len(pngs) == 2 and all(len(item["previews"]) == 1 for item in items)
