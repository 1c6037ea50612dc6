"""The one settings builder (remote_sep/jobs/settings.py) over the one table of settings
(remote_sep/setting_table.py): every option reaches its Settings field, precedence is
option > --quality > hosts.yaml field > hosts.yaml quality > default, and every bad value is
a ConfigError naming the option or the hosts.yaml file:line:field, before any connection.
No SSH."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import write_hosts_file
from sshd import free_port
from typer.testing import CliRunner

from remote_payload.manifest import Settings
from remote_sep.cli.main import app
from remote_sep.errors import ConfigError
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs.settings import build_settings, requested_settings
from remote_sep.profiles import load_hosts
from remote_sep.setting_table import QUALITY_PRESETS, ROW_BY_NAME, ROWS


def settings(profile: HostProfile | None = None, **options) -> Settings:
    return build_settings(profile, requested_settings(options))


# row -> (a value a user gives, the Settings field it sets, the value that field gets)
GOOD = {
    "quality": ("fast", "ode_method", "euler"),
    "model": ("small", "model", "facebook/sam-audio-small"),
    "dtype": ("fp16", "dtype", "fp16"),
    "device": ("cuda:1", "device", "cuda:1"),
    "require_gpu": (True, "require_gpu", True),
    "chunk_seconds": (12, "chunk_seconds", 12.0),
    "overlap": (1.5, "overlap_seconds", 1.5),
    "min_chunk_seconds": (1, "min_chunk_seconds", 1.0),
    "batch_size": (4, "batch_size", 4),
    "solver": ("euler", "ode_method", "euler"),
    "steps": (8, "ode_step_size", 0.125),
    "rerank": (3, "rerank", 3),
    "predict_spans": (True, "predict_spans", True),
    "seed": (7, "seed", 7),
    "format": ("flac", "format", "flac"),
    "bit_depth": ("24", "subtype", "PCM_24"),
    "sample_rate": (44100, "sample_rate", 44100),
    "stereo": ("channels", "stereo", "channels"),
    "score": (True, "score", True),
    "judge_model": ("/data/judge", "judge_model", "/data/judge"),
}
# row -> a value its check refuses (typed as the command line would type it)
BAD = {
    "quality": "ultra", "model": " ", "dtype": "int3", "device": "gpu0", "require_gpu": "yes",
    "chunk_seconds": 401, "overlap": -1.0, "min_chunk_seconds": 0, "batch_size": -1,
    "solver": "rk4", "steps": 0, "rerank": 0, "predict_spans": "yes", "seed": -1,
    "format": "mp3", "bit_depth": "20", "sample_rate": 100, "stereo": "left", "score": "yes",
    "judge_model": " ",
}


def test_the_tables_cover_every_row():
    assert {row.name for row in ROWS} <= set(GOOD) and {row.name for row in ROWS} <= set(BAD)


@pytest.mark.parametrize("row", [row.name for row in ROWS])
def test_every_option_reaches_its_field(row):
    value, field, expected = GOOD[row]
    built = settings(**{row: value})
    assert getattr(built, field) == expected
    assert getattr(Settings(), field) != expected  # a real change, not the default


@pytest.mark.parametrize("row", [row.name for row in ROWS])
def test_every_hosts_yaml_field_reaches_its_field(tmp_path, row):
    value, field, expected = GOOD[row]
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": {"host": "h", row: value}})
    assert getattr(build_settings(load_hosts(hosts)["gpu"], {}), field) == expected


@pytest.mark.parametrize("row", [row.name for row in ROWS])
def test_every_bad_option_names_itself(row):
    with pytest.raises(ConfigError, match=f"^{ROW_BY_NAME[row].option} "):
        settings(**{row: BAD[row]})


@pytest.mark.parametrize("row", [row.name for row in ROWS])
def test_every_bad_hosts_yaml_value_names_its_file_line_and_field(tmp_path, row):
    path = tmp_path / "hosts.yaml"
    path.write_text(f"hosts:\n  gpu:\n    host: h\n    {row}: {json.dumps(BAD[row])}\n")
    with pytest.raises(ConfigError) as err:
        load_hosts(path)
    assert err.value.message.startswith(f"{path}:4: field '{row}': "), err.value.message


def test_steps_bit_depth_and_solver_are_the_payload_fields():
    built = settings(steps=32, bit_depth="32f", solver="euler")
    assert (built.ode_step_size, built.subtype, built.ode_method) == (1 / 32, "FLOAT", "euler")
    assert settings(format="flac").subtype == "PCM_16"  # the format's own default
    with pytest.raises(ConfigError, match="^--bit-depth 32f: flac has no float samples"):
        settings(format="flac", bit_depth="32f")  # the payload's check, named as the option


def test_the_defaults_are_30_s_chunks_sharing_3_s_and_short_chunks_shrink_the_overlap():
    built = settings()
    assert (built.chunk_seconds, built.overlap_seconds) == (30.0, 3.0)
    for chunk in (0.5, 2.0, 8.0, 400):
        built = settings(chunk_seconds=chunk)
        assert built.chunk_seconds == chunk and built.overlap_seconds == min(3.0, chunk / 4)
    assert settings(chunk_seconds=2, overlap=1.5).overlap_seconds == 1.5  # given: kept
    with pytest.raises(ConfigError, match="^--overlap must be >= 0 and < chunk_seconds"):
        settings(chunk_seconds=2, overlap=2)


@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, 400.5])
def test_chunk_seconds_that_is_not_a_length_the_model_takes_is_refused(value):
    with pytest.raises(ConfigError, match="--chunk-seconds"):
        settings(chunk_seconds=value)


def test_balanced_is_the_default_and_every_preset_builds_with_any_chunk():
    assert settings(quality="balanced") == settings()
    for name, preset in QUALITY_PRESETS.items():
        built = settings(quality=name)
        assert (built.chunk_seconds, built.overlap_seconds, built.rerank) == (
            preset["chunk_seconds"], preset["overlap"], preset["rerank"])
        assert built.ode_step_size == 1 / preset["steps"]
        # a chunk given beside a preset: the preset's overlap shrinks to a quarter of it
        assert settings(quality=name, chunk_seconds=2).overlap_seconds == 0.5
    assert settings(quality="best").rerank > settings(quality="fast").rerank
    assert settings(quality="fast").ode_method == "euler"


def test_precedence_option_over_preset_over_profile_field_over_profile_preset():
    profile = HostProfile(name="gpu1", source_file="/etc/hosts.yaml", source_line=3,
                          setting_defaults={"quality": "best", "steps": 24, "rerank": 2,
                                            "seed": 5})
    alone = settings(profile)
    assert (alone.ode_step_size, alone.rerank, alone.overlap_seconds, alone.seed) == (
        1 / 24, 2, 5.0, 5)  # hosts.yaml fields over its own preset (overlap: best's 5 s)
    preset = settings(profile, quality="fast")
    assert (preset.ode_method, preset.ode_step_size, preset.rerank, preset.seed) == (
        "euler", 1 / 16, 1, 5)  # --quality over every hosts.yaml field it sets
    both = settings(profile, quality="fast", steps=4, rerank=6)
    assert (both.ode_method, both.ode_step_size, both.rerank) == ("euler", 1 / 4, 6)
    # a chunk given on the command line shrinks a hosts.yaml preset's overlap too
    assert settings(profile, chunk_seconds=4).overlap_seconds == 1.0


def test_profile_defaults_fill_in_and_options_win():
    profile = HostProfile(name="gpu1", model="base", dtype="bf16", chunk_seconds=2.0,
                          source_file="/etc/hosts.yaml", source_line=3)
    built = settings(profile)
    assert (built.model, built.dtype, built.chunk_seconds, built.overlap_seconds) == (
        "facebook/sam-audio-base", "bf16", 2.0, 0.5)
    assert settings(profile, dtype="fp32", chunk_seconds=6).dtype == "fp32"
    assert settings(profile, chunk_seconds=6).overlap_seconds == 1.5
    # A bad default given by code names the host and its line, not a payload field.
    bad = HostProfile(name="gpu2", dtype="bf17", source_file="/etc/hosts.yaml", source_line=9)
    with pytest.raises(ConfigError, match=r"host 'gpu2' \(/etc/hosts.yaml:9\) field 'dtype'"):
        settings(bad)
    with pytest.raises(ConfigError, match="field 'chunk_seconds'"):
        settings(HostProfile(name="gpu3", chunk_seconds=math.nan))


def test_a_hosts_yaml_value_that_clashes_with_an_option_names_its_own_line(tmp_path):
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("hosts:\n  gpu:\n    host: h\n    steps: 8\n    overlap: 5\n")
    profile = load_hosts(hosts)["gpu"]
    assert settings(profile).overlap_seconds == 5.0
    with pytest.raises(ConfigError, match=rf"host 'gpu' \({hosts}:5\) field 'overlap' must be "
                                          r">= 0 and < chunk_seconds"):
        settings(profile, chunk_seconds=4)


def test_unknown_settings_are_refused():
    with pytest.raises(ConfigError, match="no_such_setting"):
        requested_settings({"no_such_setting": 1})
    with pytest.raises(ConfigError, match="ode_steps"):
        build_settings(None, {"ode_steps": 3})
    # code (a batch worker) may pass any Settings field, a row or not
    assert build_settings(None, {"worker_idle_timeout": 5}).worker_idle_timeout == 5


# ---------------------------------------------------------------- both commands alike


def unreachable_hosts(tmp_path: Path, **defaults) -> Path:
    """A host whose port is closed: reaching the network would exit 'unreachable'."""
    return write_hosts_file(tmp_path / "hosts.yaml", {"gpu": {
        "host": "127.0.0.1", "port": free_port(), "known_hosts": str(tmp_path / "kh"),
        "python": sys.executable, **defaults}})


def make_wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    return path


def both_commands(tmp_path: Path, hosts: Path, *option: str) -> dict[str, tuple[int, dict]]:
    audio = make_wav(tmp_path / "in" / "a.wav")
    runs = {
        "separate": ["separate", str(audio), "-d", "x", "--host", "gpu", "--hosts", str(hosts)],
        "batch": ["batch", str(audio), "-d", "x", "--hosts", "gpu", "--hosts-file", str(hosts),
                  "-o", str(tmp_path / "out")],
        "split": ["split", str(audio), "--stem", "x", "--host", "gpu", "--hosts", str(hosts),
                  "--out", str(tmp_path / "out" / "s")],
    }
    results = {}
    for command, argv in runs.items():
        result = CliRunner().invoke(app, [*argv, *option, "--json"])
        results[command] = (result.exit_code, json.loads(result.stdout.splitlines()[-1]))
    assert not (tmp_path / "out").exists()
    return results


@pytest.mark.parametrize("option", [
    ("--chunk-seconds", "0"), ("--chunk-seconds", "-2"), ("--chunk-seconds", "nan"),
    ("--chunk-seconds", "500"), ("--steps", "0"), ("--rerank", "0"), ("--dtype", "int3"),
    ("--format", "mp3"), ("--bit-depth", "20"), ("--sample-rate", "10"), ("--solver", "rk4"),
    ("--overlap", "-1"), ("--batch-size", "-2"), ("--stereo", "left"), ("--quality", "max"),
    ("--device", "tpu"), ("--seed", "-3"), ("--min-chunk-seconds", "0"),
])
def test_separate_and_batch_refuse_the_same_values_before_connecting(tmp_path, option):
    for command, (code, body) in both_commands(tmp_path, unreachable_hosts(tmp_path),
                                               *option).items():
        assert code == 4, (command, body)
        assert body["error"]["kind"] == "bad_config"
        assert body["error"]["message"].startswith(f"{option[0]} "), body["error"]


def test_separate_and_batch_refuse_a_bad_hosts_yaml_default_with_its_line(tmp_path):
    hosts = unreachable_hosts(tmp_path, steps=8, overlap=5)
    line = hosts.read_text().splitlines().index("    overlap: 5") + 1
    for command, (code, body) in both_commands(tmp_path, hosts, "--chunk-seconds",
                                               "4").items():
        assert code == 4, (command, body)
        assert f"({hosts}:{line}) field 'overlap'" in body["error"]["message"], body["error"]


def test_batch_refuses_hosts_whose_hosts_yaml_formats_differ_before_connecting(tmp_path):
    entry = {"host": "127.0.0.1", "known_hosts": str(tmp_path / "kh"), "python": sys.executable}
    hosts = write_hosts_file(tmp_path / "hosts.yaml", {
        "a": {**entry, "port": free_port(), "format": "flac"},
        "b": {**entry, "port": free_port()}})
    audio = make_wav(tmp_path / "in" / "a.wav")
    result = CliRunner().invoke(app, ["batch", str(audio), "-d", "x", "--hosts", "a,b",
                                      "--hosts-file", str(hosts), "-o", str(tmp_path / "out"),
                                      "--json"])
    body = json.loads(result.stdout.splitlines()[-1])
    assert result.exit_code == 4 and "a: flac, b: wav" in body["error"]["message"], body
    assert not (tmp_path / "out").exists()


def test_a_command_gets_every_row_as_an_option_and_cannot_declare_one_by_hand():
    """split (and any new command) takes the whole table through the one decorator."""
    import typer

    from remote_sep.cli.setting_options import setting_options

    seen = {}

    @setting_options("split")
    def split(name: str, settings: dict | None = None) -> None:
        seen.update(settings or {})

    tiny = typer.Typer()
    tiny.command()(split)
    result = CliRunner().invoke(tiny, ["x", "--bit-depth", "24", "--quality", "best",
                                       "--predict-spans"])
    assert result.exit_code == 0, result.output
    assert seen == {"bit_depth": "24", "quality": "best", "predict_spans": True}
    assert build_settings(None, requested_settings(seen)).subtype == "PCM_24"

    with pytest.raises(TypeError, match="steps"):
        @setting_options("split")
        def by_hand(steps: int = 1, settings: dict | None = None) -> None: ...
