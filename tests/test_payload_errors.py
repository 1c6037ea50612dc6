"""Every failure kind: one error event with its kind, its exit code, nothing partial left."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from payload_util import of, run_payload, standin_env, write_audio

from remote_payload.manifest import Item, Settings
from remote_payload.protocol import EXIT_CODES

SMALL = dict(device="cpu", chunk_seconds=1.0, overlap_seconds=0.25, batch_size=2)


def finals(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*") if p.is_file()) if folder.exists() else []


def test_bad_inputs_fail_alone_and_the_good_item_still_runs(tmp_path: Path):
    good = write_audio(tmp_path / "good.wav", seconds=1.0)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), [], 44100)
    items = [Item("missing", str(tmp_path / "nope.wav"), ["voice"], ["out/missing"]),
             Item("text", str(text), ["voice"], ["out/text"]),
             Item("empty", str(empty), ["voice"], ["out/empty"]),
             Item("blank", str(good), ["  ", "voice"], ["out/blank0", "out/blank1"]),
             Item("good", str(good), ["voice"], ["out/good"])]
    rc, events, proc = run_payload(tmp_path / "job", items, Settings(**SMALL))
    kinds = {(e["item"], e["kind"]) for e in of(events, "error")}
    assert kinds == {("missing", "bad_audio"), ("text", "bad_audio"), ("empty", "bad_audio"),
                     ("blank", "bad_description")}
    assert rc == EXIT_CODES["bad_audio"]  # the first error's kind
    done = {(e["item"], e["desc"]) for e in of(events, "item_done")}
    assert done == {("blank", 1), ("good", 0)}
    bye = events[-1]
    assert bye["event"] == "bye" and not bye["ok"] and bye["exit_code"] == rc
    assert bye["items_failed"] == 4 and bye["items_done"] == 1
    assert all(not name.startswith(("missing", "text", "empty")) for name in
               finals(tmp_path / "job/out"))


@pytest.mark.parametrize("fail,model,kind", [("gated", "large", "gated"),
                                             ("auth", "large", "auth"),
                                             ("offline", "large", "not_provisioned"),
                                             ("", "someone/not-a-sam-model", "unknown_model")])
def test_model_access_errors_end_the_job(tmp_path: Path, fail: str, model: str, kind: str):
    audio = write_audio(tmp_path / "m.wav", seconds=1.0)
    items = [Item("a", str(audio), ["voice"], ["out/a"]), Item("b", str(audio), ["x"], ["out/b"])]
    env = standin_env(SAM_STANDIN_FAIL=fail)
    rc, events, _ = run_payload(tmp_path / "job", items, Settings(**SMALL, model=model), env=env)
    errors = of(events, "error")
    assert rc == EXIT_CODES[kind] and [e["kind"] for e in errors] == [kind]
    if kind == "gated":
        assert "https://huggingface.co/facebook/sam-audio-large" in errors[0]["message"]
        assert "request access" in errors[0]["message"]
    if kind == "not_provisioned":  # not "unknown model": the id is fine, the Hub is unreachable
        assert "could not be reached" in errors[0]["message"]
        assert "--prefetch" in errors[0]["message"]
    assert not of(events, "item_done") and finals(tmp_path / "job/out") == []


def test_model_folder_without_checkpoint_names_the_missing_file(tmp_path: Path):
    folder = tmp_path / "my model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    audio = write_audio(tmp_path / "m.wav", seconds=1.0)
    rc, events, _ = run_payload(tmp_path / "job", [Item("a", str(audio), ["x"], ["out/a"])],
                                Settings(**SMALL, model=str(folder)))
    (error,) = of(events, "error")
    assert rc == EXIT_CODES["unknown_model"] and error["kind"] == "unknown_model"
    assert "lacks checkpoint.pt" in error["message"] and str(folder) in error["message"]


def test_no_gpu_when_one_is_required(tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    audio = write_audio(tmp_path / "m.wav", seconds=1.0)
    settings = Settings(chunk_seconds=1.0, overlap_seconds=0.25, require_gpu=True)
    rc, events, _ = run_payload(tmp_path / "job", [Item("a", str(audio), ["v"], ["out/a"])],
                                settings)
    assert rc == EXIT_CODES["no_gpu"] and [e["kind"] for e in of(events, "error")] == ["no_gpu"]
    assert of(events, "hello") == [] and events[-1]["event"] == "bye"


def test_bad_manifest(tmp_path: Path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "manifest.json").write_text('{"v": 1, "settings": {"dtype": "fp8"}, "items": []}')
    proc = subprocess.run([sys.executable, "-m", "remote_payload", "run", "--manifest",
                           "manifest.json", "--events", "events.jsonl"], cwd=job,
                          env=standin_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_CODES["bad_config"]
    assert '"kind":"bad_config"' in (job / "events.jsonl").read_text()
    assert "settings.dtype" in proc.stdout  # events mirrored to stdout


def test_oom_below_the_floor(tmp_path: Path):
    audio = write_audio(tmp_path / "m.wav", seconds=2.0)
    settings = Settings(**{**SMALL, "min_chunk_seconds": 0.5})
    env = standin_env(SAM_STANDIN_OOM_ABOVE="1000")
    rc, events, _ = run_payload(tmp_path / "job", [Item("a", str(audio), ["v"], ["out/a"])],
                                settings, env=env)
    assert rc == EXIT_CODES["oom"] and [e["kind"] for e in of(events, "error")] == ["oom"]
    assert len(of(events, "warning")) == 2  # batch 2 -> 1, chunk 1 s -> 0.5 s, then gives up
    assert finals(tmp_path / "job/out") == []


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_leaves_no_partial_output(tmp_path: Path, tiny_disk: Path):
    audio = write_audio(tmp_path / "m.wav", seconds=3.0)  # 2 stems x 265 kB > 160 kB
    item = Item("a", str(audio), ["voice"], [str(tiny_disk / "a")])
    rc, events, _ = run_payload(tmp_path / "job", [item], Settings(**SMALL))
    assert rc == EXIT_CODES["disk_full"]
    assert [e["kind"] for e in of(events, "error")] == ["disk_full"]
    assert list(tiny_disk.iterdir()) == []  # temp files removed, no final name
