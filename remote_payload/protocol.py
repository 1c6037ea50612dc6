"""The one event protocol between the GPU-side payload and the laptop.

The payload writes one JSON object per line to ``events.jsonl`` (append, flush per line)
and mirrors it to stdout. The laptop imports this module to read them. Standard library
only: this file ships to the GPU box and must not import torch, numpy or remote_sep.

Every event carries ``v`` (protocol version), ``seq`` (0, 1, 2, … per job: a reader
resumes after the last seq it saw), ``t`` (unix time) and ``event`` (its name).
Readers ignore fields they do not know. Events never carry secrets.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

PROTOCOL_VERSION = 1

# Event names, in the order a job normally emits them.
HELLO = "hello"  # payload_version, device, gpu_name, vram_free_mb, torch, cuda, pid
# load: model, dtype, device, seconds, components_off, candidates, (ranker),
#   (judge, judge_shared, judge_window_s: settings.score)
LOAD = "load"
# item_start: item, desc, description, input, duration_s, sample_rate, channels, chunks,
#   passes (model passes: chunks x stereo lanes [x stems]); a stem split adds stems;
#   (spans: the item's span prompts [[sign, start_s, end_s], …] when it has any)
ITEM_START = "item_start"
CHUNK = "chunk"  # item, desc, done, total
# item_done: item, desc, outputs{target,residual: {path, sha256, bytes}}, seconds, skipped,
#   (scores{overall, recall, precision, faithfulness, windows}: settings.score, judge.py),
#   (rerank[{ranker, picked, scores[N]}]: one per chunk (and lane) with --rerank N > 1),
#   (predicted_spans: [[start_s, end_s], …] in seconds of the input, with predict_spans)
ITEM_DONE = "item_done"
WARNING = "warning"  # item|None, message, (code)
ERROR = "error"  # item|None, desc|None, kind, message
BYE = "bye"  # ok, items_done, items_failed, exit_code, (retired: "idle")
# The judge's scores of a target (item_done ``scores``), in the order they are shown.
SCORE_NAMES = ("overall", "recall", "precision", "faithfulness")
EVENT_NAMES = (HELLO, LOAD, ITEM_START, CHUNK, ITEM_DONE, WARNING, ERROR, BYE)
# `python -m remote_payload prefetch` (prefetch.py), then error/bye as above:
PREFETCH_PLAN = "prefetch_plan"  # cache, free_bytes, total_bytes, missing_bytes, backend,
#   components[{name, where, files, bytes, missing_bytes, partial_bytes}], skipped[...]
DOWNLOAD = "download"  # component, done, total (bytes still to get), rate_bps
DOWNLOADED = "downloaded"  # component, where, bytes, seconds, resumed, rate_bps
PREFETCH_EVENTS = (PREFETCH_PLAN, DOWNLOAD, DOWNLOADED)

# Batch workers (runner.py --inbox): the laptop keeps ``<job dir>/heartbeat`` fresh (its mtime)
# every HEARTBEAT_S seconds while it follows the worker's events; a worker whose heartbeat
# is older than ``settings.worker_idle_timeout`` retires (``bye`` with ``retired: idle``).
HEARTBEAT_FILE = "heartbeat"
HEARTBEAT_S = 20.0

# Failure kinds and the exit code each maps to. One table for both sides: the payload
# exits with it, the laptop CLI exits with the same number for the same failure.
EXIT_OK = 0
EXIT_CODES: dict[str, int] = {
    "internal": 1,
    "bad_audio": 3,  # missing, unreadable, empty or non-audio input
    "bad_config": 4,  # malformed hosts.yaml / manifest / options
    "unknown_host": 5,
    "unreachable": 6,
    "auth": 7,  # SSH auth failure or bad Hugging Face token
    "host_key": 8,  # unknown or changed host key
    "not_provisioned": 9,
    "gated": 10,  # no access to the gated SAM Audio weights
    "disk_full": 11,
    "oom": 12,  # CUDA out of memory below the chunk floor
    "no_gpu": 13,
    "unknown_model": 14,
    "bad_description": 15,  # empty text prompt
    "output_exists": 16,  # refusing to overwrite without --force
    "transfer": 17,  # checksum mismatch, broken transfer
    "job_failed": 18,  # remote job died without a final event
    "partial": 19,  # a batch where some items failed
    "output_unwritable": 20,  # a local output folder/file cannot be written (not disk full)
    "cluster": 21,  # the Ray cluster cannot be reached, refuses us, or has no GPU for an actor
    "interrupted": 130,  # Ctrl-C: detached, the remote job runs on
}
ERROR_KINDS = tuple(EXIT_CODES)


def exit_code_for(kind: str) -> int:
    """Exit code of a failure kind; unknown kinds are internal errors."""
    return EXIT_CODES.get(kind, EXIT_CODES["internal"])


class EventWriter:
    """Appends events to a file (flushed per line) and mirrors them to a stream."""

    def __init__(self, path: str | None, mirror: IO[str] | None = None, start_seq: int = 0):
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self._mirror = mirror
        self.seq = start_seq
        self._lock = threading.Lock()  # Ray mode emits from one thread per item in flight

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            record: dict[str, Any] = {"v": PROTOCOL_VERSION, "seq": self.seq}
            record["t"] = round(time.time(), 3)
            record["event"] = event
            record.update(fields)
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            for stream in (self._file, self._mirror):
                if stream is not None:
                    stream.write(line)
                    stream.flush()
            self.seq += 1
            return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class ParsedLine:
    """One line of an event stream: an event, or the reason it could not be read."""

    event: dict[str, Any] | None
    problem: str | None = None
    raw: str = ""


def parse_event_line(line: str) -> ParsedLine:
    """Parse one JSON line; a bad line is reported, never raised."""
    text = line.strip()
    if not text:
        return ParsedLine(None, "empty line", line)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return ParsedLine(None, f"not JSON: {exc.msg}", line)
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return ParsedLine(None, "not an event object", line)
    if obj.get("v", PROTOCOL_VERSION) > PROTOCOL_VERSION:
        return ParsedLine(obj, f"newer protocol v{obj.get('v')}; reading what is known", line)
    return ParsedLine(obj, None, line)


class LineBuffer:
    """Turns arbitrary byte chunks (SSH reads, file tails) into complete text lines."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        return [raw.decode("utf-8", errors="replace") for raw in lines]

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)
