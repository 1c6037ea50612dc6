"""--score / --judge-model through the one settings builder, and scores.csv's rows (pure)."""

from __future__ import annotations

import csv
import io

import pytest

from remote_payload.judge import windows
from remote_payload.manifest import ManifestError, Settings
from remote_sep.batch.scores import scores_csv
from remote_sep.errors import ConfigError
from remote_sep.jobs.settings import build_settings, requested_settings


def test_score_options_become_settings():
    asked = requested_settings({"score": True, "judge_model": " /data/judge "})
    assert asked == {"score": True, "judge_model": "/data/judge"}
    built = build_settings(None, asked)
    assert (built.score, built.judge_model) == (True, "/data/judge")
    assert build_settings(None, {}).judge_model == "facebook/sam-audio-judge"
    with pytest.raises(ConfigError, match="--judge-model"):
        requested_settings({"judge_model": "  "})
    with pytest.raises(ManifestError, match="settings.score"):
        Settings(score="yes").validate()


def test_scores_csv_has_one_row_per_unit_and_empty_cells_without_scores():
    items = [
        {"input": "a.wav", "description": "bass", "status": "done",
         "outputs": {"target": {"path": "out/a_bass_target.wav"}},
         "scores": {"overall": 3.1, "recall": 3.5, "precision": 2.9, "faithfulness": 3.3,
                    "windows": 1}},
        {"input": "b, \"odd\".wav", "description": "voice", "status": "failed",
         "outputs": {"target": {"path": "out/b_voice_target.wav"}}, "scores": None},
    ]
    rows = list(csv.reader(io.StringIO(scores_csv(items))))
    assert rows[0] == ["input", "description", "target", "status", "overall", "recall",
                       "precision", "faithfulness"]
    assert rows[1] == ["a.wav", "bass", "out/a_bass_target.wav", "done", "3.1", "3.5", "2.9",
                       "3.3"]
    assert rows[2] == ["b, \"odd\".wav", "voice", "out/b_voice_target.wav", "failed", "", "",
                       "", ""]


@pytest.mark.parametrize("size,window", [(1000, 5000), (5000, 5000), (12_345, 3840),
                                         (9_999_999, 1920 * 9999)])
def test_judge_windows_are_whole_frames_within_the_limit_and_cover_the_item(size, window):
    spans = windows(size, window, 1920)
    assert spans[0][0] == 0 and spans[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert all(end - start <= window for start, end in spans)
    assert all((end - start) % 1920 == 0 for start, end in spans[:-1])
    assert len(spans) == -(-size // window)  # the fewest that fit
