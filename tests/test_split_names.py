"""A stem split's names (jobs/split.py) and its batch units (batch/plan.py). Pure: no SSH."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from remote_payload.manifest import Item, ManifestError
from remote_sep.batch.plan import plan_batch
from remote_sep.errors import ConfigError, RemoteSepError
from remote_sep.jobs.split import output_kinds, split_prefix, stem_names


def test_stem_names_are_file_name_slugs_checked_up_front():
    assert stem_names(["Lead vocals!", "drums", "bass_2"]) == ["lead-vocals", "drums", "bass-2"]
    assert output_kinds(["a", "b"]) == ["a", "b", "other"]
    for bad in (["other"], ["A b", "a-b"], ["人声"]):
        with pytest.raises(ConfigError):
            stem_names(bad)
    with pytest.raises(RemoteSepError, match="non-empty"):
        stem_names(["drums", " "])
    # the payload checks the same names again (a hand-written manifest)
    Item("i", "a.wav", ["x"], ["out/p"], stems=stem_names(["Lead vocals!"])).validate()
    with pytest.raises(ManifestError, match="exactly one prefix"):
        Item("i", "a.wav", ["x"], ["out/p", "out/q"], stems=["x"]).validate()


def test_split_prefix_follows_out_like_separate(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    song = tmp_path / "in" / "song.wav"
    assert split_prefix(song, None) == tmp_path / "in" / "song"
    assert split_prefix(song, "x/mix") == tmp_path / "x" / "mix"
    assert split_prefix(song, "stems/") == tmp_path / "stems" / "song"


def test_batch_units_of_a_split(tmp_path: Path):
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros(800, np.float32), 16000)
    plan = plan_batch([str(song)], [], tmp_path / "o", stems=["Vocals", "drums"])
    (unit,) = plan.units
    assert unit.stems == ("Vocals", "drums") and unit.stem_names == ["vocals", "drums"]
    assert {role: p.name for role, p in unit.outputs.items()} == {
        "vocals": "song_vocals.wav", "drums": "song_drums.wav", "other": "song_other.wav"}
    plain = plan_batch([str(song)], ["Vocals > drums"], tmp_path / "o")
    assert plain.units[0].key != unit.key  # a split never shares a description's state
    with pytest.raises(ConfigError, match="not both"):
        plan_batch([str(song)], ["x"], tmp_path / "o", stems=["y"])
    with pytest.raises(ConfigError):
        plan_batch([str(song)], [], tmp_path / "o", stems=["other"])
