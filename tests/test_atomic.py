"""write_text_atomic: the final name holds the old or the new text, never a part."""

from __future__ import annotations

import os

import pytest

from remote_sep.atomic import write_text_atomic


def test_replaces_and_keeps_the_mode(tmp_path):
    file = tmp_path / "hosts.yaml"
    file.write_text("old")
    os.chmod(file, 0o600)
    write_text_atomic(file, "new")
    assert file.read_text() == "new" and file.stat().st_mode & 0o777 == 0o600
    fresh = write_text_atomic(tmp_path / "sub" / "known_hosts", "x", new_mode=0o600)
    assert fresh.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts.yaml", "sub"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    file = tmp_path / "state.json"
    file.write_text("complete old version")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_text_atomic(file, "new")
    assert file.read_text() == "complete old version"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
