"""remote_sep/jobs/spans.py (the --span and YAML syntax) and --predict-spans in the builder."""

from __future__ import annotations

import pytest

from remote_sep.errors import ConfigError
from remote_sep.jobs.settings import build_settings, requested_settings
from remote_sep.jobs.spans import (
    check_not_predicted,
    check_spans_fit,
    describe,
    parse_span,
    parse_time,
    spans_from_yaml,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("12", 12.0), ("15.5", 15.5), (".5", 0.5), ("3.", 3.0), ("1:02.5", 62.5), ("0:59", 59.0),
    ("10:00", 600.0), ("1:60", None), ("1:5", None), ("-1", None), ("1e3", None), ("", None),
    ("a", None), ("1:02:03", None)])
def test_times_are_seconds_or_minutes_and_two_digit_seconds(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize(("text", "span"), [
    ("+12:15.5", ["+", 12.0, 15.5]), ("-0:1", ["-", 0.0, 1.0]),
    ("-1:02.5:1:10", ["-", 62.5, 70.0]), ("+59:1:02", ["+", 59.0, 62.0]),
    ("+1:30:95", ["+", 90.0, 95.0]), (" +1:2 ", ["+", 1.0, 2.0])])
def test_spans_parse(text, span):
    assert parse_span(text) == span


@pytest.mark.parametrize(("text", "words"), [
    ("1:2", "starts with +"), ("", "starts with +"), ("+1", "not a span"),
    ("+a:b", "not a span"), ("+1:30:45", "more than one way"), ("+2:1", "reversed"),
    ("-2:2", "empty"), ("+1:2:3:4:5", "not a span")])
def test_bad_spans_name_themselves(text, words):
    with pytest.raises(ConfigError) as caught:
        parse_span(text)
    assert words in caught.value.message and "--span" in caught.value.message


def test_yaml_spans_take_texts_and_lists():
    assert spans_from_yaml(["+1:2", ["-", 3, 4.5]], "b.yaml: items[0]") == \
        [["+", 1.0, 2.0], ["-", 3.0, 4.5]]
    for raw, words in (("+1:2", "must be a list"), ([["+", 2, 1]], "spans[0]"),
                       ([["x", 1, 2]], "sign 'x'"), (["+9"], "items[0]: spans[0]")):
        with pytest.raises(ConfigError) as caught:
            spans_from_yaml(raw, "b.yaml: items[0]")
        assert words in caught.value.message, caught.value.message


def test_spans_must_fit_the_file_and_not_be_predicted_too():
    check_spans_fit([["+", 0, 2.68]], 2.68, "--span")
    with pytest.raises(ConfigError, match=r"--span: span \+2:3 lies outside the file "
                                          r"\(2\.680 s long\)"):
        check_spans_fit([["+", 0, 1], ["+", 2, 3]], 2.68, "--span")
    check_not_predicted([], True)
    check_not_predicted([["+", 0, 1]], False)
    with pytest.raises(ConfigError, match="exclude each other"):
        check_not_predicted([["+", 0, 1]], True)


def test_summary_text():
    assert describe([["+", 1, 62.5], ["-", 0, 0.04]]) == "+0:01.00-1:02.50, -0:00.00-0:00.04"
    assert describe([[0.4, 0.8]]) == "0:00.40-0:00.80"
    assert describe([]) == ""


def test_predict_spans_is_a_setting_of_the_one_builder():
    asked = requested_settings({"predict_spans": True})
    assert asked == {"predict_spans": True}
    assert build_settings(None, asked).predict_spans is True
    assert requested_settings({"predict_spans": None}) == {}


def test_batch_plan_gives_cli_spans_to_inputs_without_their_own(tmp_path):
    import numpy as np
    import soundfile as sf
    import yaml

    from remote_sep.batch.plan import plan_batch
    from remote_sep.batch.state import unit_fingerprint

    for name, seconds in (("a.wav", 3.0), ("b.wav", 1.0)):
        sf.write(str(tmp_path / name), np.zeros(round(seconds * 8000)), 8000)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"items": [{"input": "b.wav", "spans": ["-0:0.5"]}]}))
    plan = plan_batch([str(tmp_path / "a.wav")], ["x"], tmp_path / "out", manifest=manifest,
                      spans=(("+", 1.0, 2.5),))
    assert {u.input.name: u.spans for u in plan.units} == {
        "a.wav": (("+", 1.0, 2.5),), "b.wav": (("-", 0.0, 0.5),)}
    with pytest.raises(ConfigError, match=r"b\.wav: span \+1:2\.5 lies outside the file"):
        plan_batch([str(tmp_path / "b.wav")], ["x"], tmp_path / "out",
                   spans=(("+", 1.0, 2.5),))
    # the resume fingerprint: unchanged without spans, different with them
    assert unit_fingerprint("s", "x", {}) == unit_fingerprint("s", "x", {}, ())
    assert unit_fingerprint("s", "x", {}) != unit_fingerprint("s", "x", {}, plan.units[0].spans)


def test_spans_and_stem_splits_are_refused_together(tmp_path):
    import numpy as np
    import soundfile as sf
    import yaml

    from remote_payload.manifest import Item, ManifestError
    from remote_sep.batch.plan import plan_batch

    with pytest.raises(ManifestError, match="spans do not work with stems"):
        Item("s", "in.wav", ["vocals"], ["out/s"], stems=["vocals"],
             spans=[["+", 0, 1]]).validate()
    sf.write(str(tmp_path / "a.wav"), np.zeros(8000), 8000)
    with pytest.raises(ConfigError, match="--span does not work with --stem"):
        plan_batch([str(tmp_path / "a.wav")], [], tmp_path / "out", stems=["vocals"],
                   spans=(("+", 0.0, 0.5),))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"items": [
        {"input": "a.wav", "stems": ["vocals"], "spans": ["+0:0.5"]}]}))
    with pytest.raises(ConfigError, match="'spans' do not work with 'stems'"):
        plan_batch([], [], tmp_path / "out", manifest=manifest)
    # a split item in a YAML beside --span: the split gets none
    manifest.write_text(yaml.safe_dump({"items": [{"input": "a.wav", "stems": ["vocals"]}]}))
    (unit,) = plan_batch([], ["x"], tmp_path / "out", manifest=manifest,
                         spans=(("+", 0.0, 0.5),)).units
    assert unit.stems and unit.spans == ()
