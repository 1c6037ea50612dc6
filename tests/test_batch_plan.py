"""Batch planning (inputs, templates, YAML manifest) and the resume state: no SSH."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from remote_sep.batch.plan import expand_inputs, plan_batch, slug
from remote_sep.batch.state import BatchState, unit_fingerprint
from remote_sep.errors import BadAudio, ConfigError


def touch(path: Path, data: bytes = b"RIFF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_slug_makes_file_name_parts():
    assert slug("Female vocals!") == "female-vocals"
    assert slug("  $(id) 'x'  ") == "id-x"
    assert slug("???") == "desc"


def test_expand_files_folders_and_globs(tmp_path):
    a = touch(tmp_path / "a.wav")
    b = touch(tmp_path / "sub" / "deep" / "b.FLAC")
    touch(tmp_path / "sub" / "notes.txt")
    c = touch(tmp_path / "g" / "c.mp3")
    found = expand_inputs([str(a), str(tmp_path / "sub"), str(tmp_path / "g" / "*.mp3"),
                           str(a)])
    assert found == [a.resolve(), b.resolve(), c.resolve()]  # deduplicated, in given order


def test_missing_input_and_empty_glob_are_bad_audio(tmp_path):
    with pytest.raises(BadAudio, match="no such file"):
        expand_inputs([str(tmp_path / "nope.wav")])
    with pytest.raises(BadAudio, match="matches no file"):
        expand_inputs([str(tmp_path / "*.wav")])


def test_default_names_follow_the_seed(tmp_path):
    song = touch(tmp_path / "my song.wav")
    plan = plan_batch([str(song)], ["Female vocals", "drums"], tmp_path / "out")
    assert [u.description for u in plan.units] == ["Female vocals", "drums"]
    names = [p.name for u in plan.units for p in u.outputs.values()]
    assert names == ["my song_female-vocals_target.wav", "my song_female-vocals_residual.wav",
                     "my song_drums_target.wav", "my song_drums_residual.wav"]


def test_template_fields_and_errors(tmp_path):
    song = touch(tmp_path / "x" / "s.wav")
    plan = plan_batch([str(song)], ["bass"], tmp_path / "o",
                      template="{parent}/{index}-{role}.{ext}", extension="flac")
    assert plan.units[0].outputs["target"] == (tmp_path / "o" / "x" / "0-target.flac").resolve()
    with pytest.raises(ConfigError, match="unknown field"):
        plan_batch([str(song)], ["bass"], tmp_path / "o", template="{stem}_{nope}_{role}")
    with pytest.raises(ConfigError, match="needs \\{role\\}"):
        plan_batch([str(song)], ["bass"], tmp_path / "o", template="{stem}.{ext}")
    with pytest.raises(ConfigError, match="outside"):
        plan_batch([str(song)], ["bass"], tmp_path / "o", template="../{stem}_{role}.{ext}")


def test_same_stem_in_two_folders_is_refused(tmp_path):
    a = touch(tmp_path / "one" / "take.wav")
    b = touch(tmp_path / "two" / "take.wav")
    with pytest.raises(ConfigError, match="would both write"):
        plan_batch([str(a), str(b)], ["drums"], tmp_path / "o")


def test_empty_description_is_refused(tmp_path):
    song = touch(tmp_path / "s.wav")
    with pytest.raises(ConfigError) as info:
        plan_batch([str(song)], [" "], tmp_path / "o")
    assert info.value.kind == "bad_description"


def test_yaml_manifest_gives_per_file_descriptions(tmp_path):
    touch(tmp_path / "a.wav")
    touch(tmp_path / "more" / "b.wav")
    manifest = tmp_path / "batch.yaml"
    manifest.write_text("items:\n  - input: a.wav\n    descriptions: [vocals, drums]\n"
                        "  - input: more/\n  - input: a.wav\n    desc: bass\n")
    plan = plan_batch([], ["piano"], tmp_path / "o", manifest=manifest)
    got = [(u.input.name, u.description) for u in plan.units]
    assert got == [("a.wav", "vocals"), ("a.wav", "drums"), ("b.wav", "piano"), ("a.wav", "bass")]


def test_bad_yaml_manifest_names_the_entry(tmp_path):
    manifest = tmp_path / "batch.yaml"
    manifest.write_text("items:\n  - {input: a.wav, colour: red}\n")
    with pytest.raises(ConfigError, match=r"items\[0\].*colour"):
        plan_batch([], ["x"], tmp_path / "o", manifest=manifest)
    manifest.write_text("files: []\n")
    with pytest.raises(ConfigError, match="items"):
        plan_batch([], ["x"], tmp_path / "o", manifest=manifest)


def test_resume_state_checks_content_and_fingerprint(tmp_path):
    song = touch(tmp_path / "s.wav")
    out = tmp_path / "o"
    unit = plan_batch([str(song)], ["drums"], out).units[0]
    fp = unit_fingerprint("abc", "drums", {"format": "wav"})
    state = BatchState(out)
    assert not state.is_done(unit, fp)
    shas = {}
    for role, path in unit.outputs.items():
        touch(path, role.encode())
        import hashlib
        shas[role] = hashlib.sha256(role.encode()).hexdigest()
    state.mark_done(unit, fp, shas, "gpu1")
    again = BatchState(out)  # read back from the file
    assert again.is_done(unit, fp)
    assert not again.is_done(unit, unit_fingerprint("abc", "drums", {"format": "flac"}))
    unit.outputs["target"].write_bytes(b"changed")
    assert not again.is_done(unit, fp)
    unit.outputs["target"].unlink()
    assert not again.is_done(unit, fp)


def test_damaged_state_file_counts_nothing_done(tmp_path):
    song = touch(tmp_path / "s.wav")
    out = tmp_path / "o"
    out.mkdir()
    (out / ".remote-sep-batch.json").write_text("{not json")
    unit = plan_batch([str(song)], ["drums"], out).units[0]
    assert not BatchState(out).is_done(unit, "x")


def test_a_newline_in_a_name_never_merges_two_units(tmp_path):
    # With 'path\ndesc' keys, ('a.wav', 'b.wav\nvocals') and ('a.wav\nb.wav', 'vocals') were
    # one key: the second unit was dropped and the batch still exited 0.
    first = touch(tmp_path / "a.wav")
    second = touch(tmp_path / "a.wav\nb.wav")
    plan = plan_batch([str(first), str(second)], ["b.wav\nvocals", "vocals"], tmp_path / "out")
    assert len(plan.units) == 4 and len({u.key for u in plan.units}) == 4
    plain = [u for u in plan.units if "\n" not in str(u.input) and u.description == "vocals"]
    assert [u.key for u in plain] == [f"{first.resolve()}\nvocals"]  # old states still match
    # The keys survive the resume state file.
    unit = next(u for u in plan.units if u.input.name == second.name)
    for path in unit.outputs.values():
        touch(path, b"out")
    state = BatchState(tmp_path / "out")
    state.mark_done(unit, "fp", {role: sha256_hex(b"out") for role in unit.outputs}, "gpu1")
    assert BatchState(tmp_path / "out").is_done(unit, "fp")


def test_output_names_no_folder_can_hold_are_refused_before_anything_runs(tmp_path):
    long_input = touch(tmp_path / f"{'x' * 230}.wav")  # its outputs would be 250+ bytes
    with pytest.raises(ConfigError, match="bytes; at most 240 fit") as info:
        plan_batch([str(long_input)], ["vocals"], tmp_path / "out")
    assert "{index}" in (info.value.hint or "")
    assert plan_batch([str(long_input)], ["vocals"], tmp_path / "out",
                      template="{index}_{role}.{ext}").units  # a shorter template works
    song = touch(tmp_path / "song.wav")
    yaml_file = tmp_path / "batch.yaml"
    yaml_file.write_text('items:\n  - input: song.wav\n    desc: "vo\\0cals"\n')
    with pytest.raises(ConfigError, match="NUL"):
        plan_batch([], [], tmp_path / "out", template="{description}_{role}.{ext}",
                   manifest=yaml_file)
    undecodable = tmp_path / os.fsdecode(b"caf\xe9.wav")  # Latin-1 bytes, not UTF-8
    touch(undecodable)
    with pytest.raises(BadAudio, match="not valid UTF-8"):
        plan_batch([str(undecodable), str(song)], ["vocals"], tmp_path / "out")
