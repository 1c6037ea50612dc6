"""Two batches sharing an --out-dir: two real processes write the one state file at the
same time. Each change is merged under the folder's flock, so no record is lost."""

from __future__ import annotations

import json
import subprocess
import sys

from remote_sep.batch.state import STATE_NAME

RECORDS = 25
WRITER = f"""
import sys, time
from pathlib import Path
from remote_sep.batch.plan import Unit
from remote_sep.batch.state import BatchState

out, tag, meet = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
state = BatchState(out)
(meet / tag).touch()  # both have loaded the file before either writes
deadline = time.monotonic() + 30
while len(list(meet.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.001)
for i in range({RECORDS}):
    unit = Unit(key=f"{{tag}}-{{i}}", index=i, input=Path(f"/in/{{tag}}{{i}}.wav"),
                description="d", outputs={{}})
    state.mark_sent_many([(unit, "fp", f"u{{i}}")], "gpu", f"job-{{tag}}")
    if i % 2 == 0:
        state.mark_done(unit, "fp", {{"target": "0" * 64}}, "gpu")
"""


def test_two_batches_writing_one_state_file_lose_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    meet = tmp_path / "meet"
    meet.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(out), tag, str(meet)],
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    body = json.loads((out / STATE_NAME).read_text())
    for tag in ("a", "b"):
        done = {f"{tag}-{i}" for i in range(0, RECORDS, 2)}
        sent = {f"{tag}-{i}" for i in range(1, RECORDS, 2)}
        assert done <= set(body["done"]), f"records of batch {tag} were lost"
        assert sent <= set(body["sent"]) and not done & set(body["sent"])
        assert all(body["sent"][key]["job"] == f"job-{tag}" for key in sent)
    assert sorted(p.name for p in out.iterdir()) == [STATE_NAME]  # no temp, no lock file
