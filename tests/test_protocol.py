"""Contract tests: the event envelope, the exit-code table and the manifest round trip.

These pin what the other side of the wire relies on; changing them is a protocol change.
"""

from __future__ import annotations

import io
import json

import pytest

from remote_payload import manifest as mf
from remote_payload import protocol as pr


def test_event_envelope_keys_and_sequence(tmp_path):
    path = tmp_path / "events.jsonl"
    mirror = io.StringIO()
    writer = pr.EventWriter(str(path), mirror=mirror)
    writer.emit(pr.HELLO, payload_version="1", device="cpu")
    writer.emit(pr.CHUNK, item="i0", desc=0, done=1, total=3)
    writer.close()
    lines = path.read_text().splitlines()
    assert lines == mirror.getvalue().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert list(first)[:4] == ["v", "seq", "t", "event"]
    assert (first["v"], first["seq"], first["event"]) == (1, 0, "hello")
    assert (second["seq"], second["done"], second["total"]) == (1, 1, 3)


def test_event_writer_appends_after_a_restart(tmp_path):
    path = tmp_path / "events.jsonl"
    pr.EventWriter(str(path)).emit(pr.HELLO)
    pr.EventWriter(str(path), start_seq=1).emit(pr.BYE, ok=True)
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert seqs == [0, 1]


@pytest.mark.parametrize(
    "line, problem",
    [("", "empty line"), ("{not json", "not JSON"), ("[1, 2]", "not an event object"),
     ('{"v": 1}', "not an event object")],
)
def test_bad_lines_are_reported_not_raised(line, problem):
    parsed = pr.parse_event_line(line)
    assert parsed.event is None
    assert parsed.problem.startswith(problem)


def test_unknown_fields_and_newer_versions_are_read():
    parsed = pr.parse_event_line('{"v": 2, "event": "chunk", "done": 1, "future": true}')
    assert parsed.event["done"] == 1
    assert "newer protocol" in parsed.problem


def test_line_buffer_joins_split_chunks():
    buffer = pr.LineBuffer()
    assert buffer.feed(b'{"a"') == []
    assert buffer.feed(b':1}\n{"b":2}\n{"c"') == ['{"a":1}', '{"b":2}']
    assert buffer.pending_bytes == 4


def test_exit_codes_are_distinct_and_pinned():
    codes = list(pr.EXIT_CODES.values())
    assert len(codes) == len(set(codes)), "two failure kinds share an exit code"
    assert pr.EXIT_OK not in codes
    # Pinned: scripts depend on these numbers.
    assert pr.EXIT_CODES["bad_audio"] == 3
    assert pr.EXIT_CODES["gated"] == 10
    assert pr.EXIT_CODES["oom"] == 12
    assert pr.EXIT_CODES["interrupted"] == 130
    assert pr.exit_code_for("no-such-kind") == pr.EXIT_CODES["internal"]


def test_manifest_round_trip():
    item = mf.Item(id="i0", input="/c/ab.wav", descriptions=["drums", "bass"],
                   prefixes=["out/d0", "out/d1"])
    manifest = mf.Manifest(job_id="j1", settings=mf.Settings(seed=7, format="flac"), items=[item])
    again = mf.Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.settings.extension == "flac"
    assert mf.item_from_json(mf.item_to_json(item)) == item


@pytest.mark.parametrize(
    "patch, field",
    [({"dtype": "int8"}, "settings.dtype"), ({"format": "mp3"}, "settings.format"),
     ({"overlap_seconds": 30}, "overlap_seconds"), ({"rerank": 0}, "rerank"),
     ({"colour": "red"}, "unknown field")],
)
def test_manifest_errors_name_the_field(patch, field):
    body = json.loads(mf.Manifest(job_id="j").to_json())
    body["settings"].update(patch)
    with pytest.raises(mf.ManifestError, match=field):
        mf.Manifest.from_json(json.dumps(body))


def test_manifest_rejects_mismatched_prefixes_and_duplicates():
    body = json.loads(mf.Manifest(job_id="j").to_json())
    body["items"] = [{"id": "a", "input": "x", "descriptions": ["d"], "prefixes": []}]
    with pytest.raises(mf.ManifestError, match="one prefix per description"):
        mf.Manifest.from_json(json.dumps(body))
    body["items"] = [{"id": "a", "input": "x", "descriptions": ["d"], "prefixes": ["p"]}] * 2
    with pytest.raises(mf.ManifestError, match="duplicate item id"):
        mf.Manifest.from_json(json.dumps(body))


def test_model_aliases():
    assert mf.resolve_model("small") == "facebook/sam-audio-small"
    assert mf.resolve_model("/weights/dir") == "/weights/dir"
