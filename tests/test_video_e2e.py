"""`remote-sep separate` with a visual prompt, end to end through the CLI: a real loopback
sshd, the real payload, the stand-in sam_audio (whose target moves by a known amount per
latent frame with the masked video it is given, tests/standins/sam_audio/_video.py), and
videos written by PyAV in the test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import write_hosts_file
from test_separate_e2e import hosts_yaml, invoke, state_dir  # noqa: F401
from test_video_payload import expected_term, frame_features
from typer.testing import CliRunner
from video_util import box_masks, level_frames, write_video

from remote_payload.audio_io import probe
from remote_payload.manifest import Settings
from remote_payload.protocol import EXIT_CODES
from remote_payload.separation import make_plan
from remote_sep.cli.main import app
from remote_sep.jobs.video_decode import extract_audio

pytestmark = pytest.mark.e2e


def _clip(path: Path, seconds: float = 1.2, fps: int = 30, audio: bool = True) -> Path:
    rate = 48_000
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
    frames = level_frames(round(seconds * fps), 72, 96, step=7)
    return write_video(path, frames, fps, audio=np.stack([tone, 0.5 * tone], 1).astype(
        np.float32) if audio else None)


def _job_item(tmp_path: Path, job_id: str) -> tuple[dict, dict]:
    manifest = json.loads((tmp_path / "remote" / "jobs" / job_id / "manifest.json").read_text())
    return manifest["settings"], manifest["items"][0]


def test_video_prompt_reaches_the_model_and_its_files_are_cached(ssh_server, tmp_path):
    hosts = hosts_yaml(tmp_path, ssh_server)
    clip = _clip(tmp_path / "clip.mkv")
    # mid: the mono estimate on every channel, so its difference is checked exactly (the
    # default 'image' stereo applies the estimate's time-frequency mask: not linear)
    common = ("--host", "gpu", "--hosts", hosts, "--model", "large-tv", "--format", "wav",
              "--stereo", "mid")
    result, body = invoke("separate", clip, "--desc", "whistle", "--box", "10,8,60,50", *common)
    assert result.exit_code == 0, result.output
    job = body["result"]
    assert job["video"] == {"video": str(clip), "frames": 30, "fps": 25.0, "size": 336,
                            "mask": None, "box": [10, 8, 60, 50]}
    target = Path(job["outputs"][0]["target"])
    assert target == tmp_path / "clip_whistle_target.wav"
    settings, item = _job_item(tmp_path, job["job_id"])
    assert settings["video"] is True and settings["model"] == "facebook/sam-audio-large-tv"
    assert item["video"]["fps"] == 25.0
    frames, masks = (np.load(item["video"][k]) for k in ("frames", "masks"))
    assert frames.shape == (30, 3, 336, 336)

    # The same audio with no video (the track extracted here), same seed: the difference of
    # the targets is the video's share, computed from the files the host received.
    wav = extract_audio(clip, tmp_path / "track.w64")
    plain, plain_body = invoke("separate", wav, "--desc", "whistle", *common)
    assert plain.exit_code == 0, plain.output
    _, plain_item = _job_item(tmp_path, plain_body["result"]["job_id"])
    assert plain_item["input"] == item["input"]  # the track went through the same cache
    with_video = sf.read(target)[0][:, 0]
    without = sf.read(plain_body["result"]["outputs"][0]["target"])[0][:, 0]
    unpacked = np.unpackbits(masks, axis=-1, count=336)
    plan = make_plan(probe(str(wav)), Settings(**settings), settings["chunk_seconds"])
    want = expected_term(len(with_video), plan, frame_features(frames, unpacked), 25.0)
    np.testing.assert_allclose(with_video - without, want, atol=2.5 / 32768)  # PCM_16 twice
    assert np.abs(want).max() > 0.01

    # Again (another box): the audio and frames are cached, only the new masks go up
    cache = tmp_path / "remote" / "cache"
    before = {p.name: p.stat().st_ino for p in cache.iterdir()}
    again, body2 = invoke("separate", clip, "--desc", "whistle", "--box", "0,0,96,72",
                          "--out", tmp_path / "other", *common)
    assert again.exit_code == 0, again.output
    after = {p.name: p.stat().st_ino for p in cache.iterdir()}
    assert set(before) < set(after) and len(after) == len(before) + 1, (before, after)
    assert {n: after[n] for n in before} == before  # not sent again
    assert not list(Path(tmp_path).glob("remote-sep-video-*"))


def test_audio_file_with_a_mask_video_and_no_text(ssh_server, tmp_path):
    hosts = hosts_yaml(tmp_path, ssh_server)
    clip = _clip(tmp_path / "clip.mp4", audio=False)
    mask = write_video(tmp_path / "mask.mp4", box_masks(36, 72, 96, (20, 10, 50, 40)), 30)
    song = tmp_path / "song.wav"
    sf.write(song, 0.2 * np.random.default_rng(0).standard_normal((48_000, 2)), 48_000)
    result, body = invoke("separate", song, "--video", clip, "--mask", mask,
                          "--model", "small-tv", "--host", "gpu", "--hosts", hosts)
    assert result.exit_code == 0, result.output
    entry = body["result"]["outputs"][0]
    assert Path(entry["target"]).name == "song_source_target.wav" and entry["description"] == ""
    assert sf.info(entry["target"]).frames == 48_000
    settings, item = _job_item(tmp_path, body["result"]["job_id"])
    assert item["descriptions"] == [""] and settings["video"]
    # the human summary says what the prompt was
    human = CliRunner().invoke(app, list(map(str, (
        "separate", song, "--video", clip, "--mask", mask, "--model", "small-tv", "--force",
        "--host", "gpu", "--hosts", hosts))))
    assert human.exit_code == 0, human.output
    assert "visual prompt: clip.mp4, mask mask.mp4, 30 frames at 25 fps" in human.output


def test_visual_mistakes_fail_before_any_connection(tmp_path):
    from sshd import free_port

    hosts = write_hosts_file(tmp_path / "hosts.yaml", {"gpu": {
        "host": "127.0.0.1", "port": free_port(), "known_hosts": str(tmp_path / "kh"),
        "python": sys.executable, "model": "base"}})
    clip = _clip(tmp_path / "clip.mp4")
    silent = _clip(tmp_path / "silent.mp4", audio=False)
    short = write_video(tmp_path / "short.mp4", box_masks(20, 72, 96, (0, 0, 9, 9)), 30)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really")
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((4800, 1)), 48_000)
    tv = ("--model", "large-tv")
    cases = [
        ((clip, "--box", "0,0,10,10"), "bad_config", "needs a -tv model"),  # host: base
        ((clip, "--box", "0,0,97,10", *tv), "bad_config", "not inside the 96x72"),
        ((clip, "--mask", short, *tv), "bad_config", "ends after 20 frames"),
        ((song, "--video", broken, "--box", "0,0,1,1", *tv), "bad_config", "not a video"),
        ((silent, "--box", "0,0,10,10", *tv), "bad_audio", "no audio track"),
        ((song, "--box", "0,0,10,10", *tv), "bad_config", "needs a video"),
        ((song, "--video", clip, *tv), "bad_config", "needs the object"),
        ((song, "--video", clip, "--box", "1,2", *tv), "bad_config", "X0,Y0,X1,Y1"),
    ]
    for args, kind, words in cases:
        result, body = invoke("separate", *args, "--host", "gpu", "--hosts", hosts)
        assert (result.exit_code, body["error"]["kind"]) == (EXIT_CODES[kind], kind), args
        assert words in body["error"]["message"], (args, body["error"])
        assert "Traceback" not in result.output
    result, _ = invoke("separate", song, "--host", "gpu", "--hosts", hosts)
    assert result.exit_code == 2 and "--desc" in result.output  # no text, no video
    # all checks passed: the closed port is what fails
    result, body = invoke("separate", clip, "--box", "0,0,10,10", *tv, "--host", "gpu",
                          "--hosts", hosts)
    assert result.exit_code == EXIT_CODES["unreachable"], result.output
