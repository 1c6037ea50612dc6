"""The one settings builder (remote_sep/jobs/settings.py) of `separate` and `batch`, and
both commands refusing a bad value before any connection. No SSH."""

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
from remote_sep.jobs.settings import SettingsOptions, build_settings, requested_settings


def settings(profile: HostProfile | None = None, **options) -> Settings:
    return build_settings(profile, requested_settings(SettingsOptions(**options)))


def test_short_chunks_shrink_the_overlap_so_any_valid_chunk_is_a_valid_job():
    for chunk in (0.5, 2.0, 8.0):
        built = settings(chunk_seconds=chunk)
        assert built.chunk_seconds == chunk and built.overlap_seconds == min(2.0, chunk / 4)
    assert settings().overlap_seconds == 2.0  # the default 10 s chunk keeps the 2 s overlap


@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf])
def test_chunk_seconds_that_is_not_a_positive_length_is_refused(value):
    with pytest.raises(ConfigError, match="--chunk-seconds"):
        settings(chunk_seconds=value)


def test_every_option_flows_into_the_settings():
    built = settings(model="small", dtype="fp16", chunk_seconds=4, rerank=3, seed=7, steps=8,
                     format="flac")
    assert (built.model, built.dtype, built.chunk_seconds, built.rerank, built.seed) == (
        "facebook/sam-audio-small", "fp16", 4.0, 3, 7)
    assert built.ode_step_size == 1 / 8 and (built.format, built.subtype) == ("flac", "PCM_16")
    assert settings(extra={"batch_size": 2}).batch_size == 2  # pass-through fields
    assert settings(stereo="mid").stereo == "mid" and settings().stereo == "image"


@pytest.mark.parametrize(("options", "named"), [
    ({"dtype": "int3"}, "--dtype"), ({"rerank": 0}, "--rerank"), ({"steps": 0}, "--steps"),
    ({"format": "mp3"}, "--format"), ({"model": " "}, "--model"), ({"stereo": "wide"}, "--stereo"),
    ({"extra": {"no_such_field": 1}}, "no_such_field"),
    ({"extra": {"batch_size": -1}}, "batch_size"),
])
def test_bad_options_name_themselves(options, named):
    with pytest.raises(ConfigError, match=named):
        settings(**options)


def test_profile_defaults_fill_in_and_options_win():
    profile = HostProfile(name="gpu1", model="base", dtype="bf16", chunk_seconds=2.0,
                          source_file="/etc/hosts.yaml", source_line=3)
    built = settings(profile)
    assert (built.model, built.dtype, built.chunk_seconds, built.overlap_seconds) == (
        "facebook/sam-audio-base", "bf16", 2.0, 0.5)
    assert settings(profile, dtype="fp32", chunk_seconds=6).dtype == "fp32"
    assert settings(profile, chunk_seconds=6).overlap_seconds == 1.5
    # A bad hosts.yaml default names the host and its line, not a payload field.
    bad = HostProfile(name="gpu2", dtype="bf17", source_file="/etc/hosts.yaml", source_line=9)
    with pytest.raises(ConfigError, match=r"host 'gpu2' \(/etc/hosts.yaml:9\) field 'dtype'"):
        settings(bad)
    with pytest.raises(ConfigError, match="field 'chunk_seconds'"):
        settings(HostProfile(name="gpu3", chunk_seconds=math.nan))


# ---------------------------------------------------------------- both commands alike


def unreachable_hosts(tmp_path: Path) -> Path:
    """A host whose port is closed: reaching the network would exit 'unreachable'."""
    return write_hosts_file(tmp_path / "hosts.yaml", {"gpu": {
        "host": "127.0.0.1", "port": free_port(), "known_hosts": str(tmp_path / "kh"),
        "python": sys.executable}})


def make_wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    return path


@pytest.mark.parametrize("option", [
    ("--chunk-seconds", "0"), ("--chunk-seconds", "-2"), ("--chunk-seconds", "nan"),
    ("--steps", "0"), ("--rerank", "0"), ("--dtype", "int3"), ("--format", "mp3"),
    ("--stereo", "wide"),
])
def test_separate_and_batch_refuse_the_same_values_before_connecting(tmp_path, option):
    hosts = unreachable_hosts(tmp_path)
    audio = make_wav(tmp_path / "in" / "a.wav")
    runs = {
        "separate": ["separate", str(audio), "-d", "x", "--host", "gpu", "--hosts", str(hosts)],
        "batch": ["batch", str(audio), "-d", "x", "--hosts", "gpu", "--hosts-file", str(hosts),
                  "-o", str(tmp_path / "out")],
        "split": ["split", str(audio), "--stem", "x", "--host", "gpu", "--hosts", str(hosts),
                  "--out", str(tmp_path / "out" / "s")],
    }
    for command, argv in runs.items():
        result = CliRunner().invoke(app, [*argv, *option, "--json"])
        body = json.loads(result.stdout.splitlines()[-1])
        assert result.exit_code == 4, (command, result.output)
        assert body["error"]["kind"] == "bad_config" and option[0] in body["error"]["message"]
    assert not (tmp_path / "out").exists()
