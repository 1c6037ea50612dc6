"""``scores.csv`` beside a batch's outputs (``--score``): one row per (input, description),
the judge's four scores of its target (empty cells for a unit without scores: failed, not
run). Written atomically once the batch settles, so a reader never sees half a file; a
resumed batch rewrites it whole from its state (scores of earlier runs included)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from remote_payload.protocol import SCORE_NAMES
from remote_sep.atomic import write_text_atomic
from remote_sep.jobs.outputs import local_error

SCORES_NAME = "scores.csv"
COLUMNS = ("input", "description", "target", "status", *SCORE_NAMES)


def scores_csv(items: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for item in items:
        scores = item.get("scores") or {}
        target = (item.get("outputs") or {}).get("target", {}).get("path", "")
        writer.writerow([item["input"], item["description"], target, item["status"],
                         *(scores.get(name, "") for name in SCORE_NAMES)])
    return out.getvalue()


def write_scores(out_dir: Path, items: list[dict[str, Any]]) -> Path:
    """Write (replace) ``out_dir/scores.csv``; a local write error is DiskFull/Unwritable."""
    path = out_dir / SCORES_NAME
    try:
        return write_text_atomic(path, scores_csv(items))
    except OSError as exc:
        raise local_error(exc, path, "free space or fix the folder, then run the same "
                          "command again: it resumes and writes scores.csv") from None
