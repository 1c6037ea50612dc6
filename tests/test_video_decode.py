"""Laptop-side video decoding (remote_sep/jobs/video_decode.py, jobs/visual.py) on synthetic
videos written by PyAV in the test: lossless Matroska for exact checks, H.264 + AAC MP4 for
what users have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from video_util import box_masks, level_frames, write_video

from remote_sep.errors import BadAudio, ConfigError
from remote_sep.jobs import video_decode
from remote_sep.jobs.visual import VisualPrompt, check_model, stage, visual_prompt


def _tone(seconds: float, rate: int = 48_000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.4 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 220 * t)], 1)
            ).astype(np.float32)


def _unpack(path: Path, width: int) -> np.ndarray:
    return np.unpackbits(np.load(path), axis=-1, count=width)


def test_frames_are_sampled_at_25_fps_nearest_in_time_with_their_masks(tmp_path: Path):
    frames = level_frames(20, 32, 32)  # 30 fps: 0.667 s
    video = write_video(tmp_path / "v.mkv", frames, 30)
    mask = write_video(tmp_path / "m.mkv", box_masks(20, 32, 32, (4, 4, 12, 12), move=1), 30)
    got = video_decode.decode(video, tmp_path / "f.npy", tmp_path / "k.npy", mask=mask, size=32)
    # output k shows time k/25 until the last frame's end (20/30 s): 17 frames
    assert (got.count, got.source_frames) == (17, 20)
    nearest = [round(k / 25 * 30) for k in range(17)]
    out = np.load(got.frames)
    assert out.shape == (17, 3, 32, 32) and out.dtype == np.uint8
    np.testing.assert_array_equal(out.transpose(0, 2, 3, 1), frames[nearest])
    masks = _unpack(got.masks, 32)
    assert masks.shape == (17, 1, 32, 32)
    for k, source in enumerate(nearest):  # the mask of the same source frame, exactly
        want = np.zeros((32, 32), dtype=np.uint8)
        want[4:12, 4 + source:12 + source] = 1
        np.testing.assert_array_equal(masks[k, 0], want)


def test_box_and_resize_to_the_encoder_size(tmp_path: Path):
    video = write_video(tmp_path / "v.mp4", level_frames(10, 90, 160), 25,
                        audio=_tone(0.4))
    got = video_decode.decode(video, tmp_path / "f.npy", tmp_path / "k.npy",
                              box=(40, 45, 120, 90))
    assert got.size == video_decode.FRAME_SIZE == 336 and got.count == 10
    assert np.load(got.frames).shape == (10, 3, 336, 336)
    masks = _unpack(got.masks, 336)
    rows, cols = np.nonzero(masks[3, 0])
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (168, 336, 84, 252)
    assert (masks == masks[:1]).all()  # a fixed box: the same mask on every frame


def test_lossy_mask_video_is_thresholded(tmp_path: Path):
    video = write_video(tmp_path / "v.mp4", level_frames(12, 64, 64), 24)
    mask = write_video(tmp_path / "m.mp4", box_masks(12, 64, 64, (16, 16, 48, 48)), 24)
    got = video_decode.decode(video, tmp_path / "f.npy", tmp_path / "k.npy", mask=mask, size=64)
    masks = _unpack(got.masks, 64)
    want = np.zeros((64, 64), dtype=np.uint8)
    want[16:48, 16:48] = 1
    for frame in masks[:, 0]:  # h264 blurs the edges by a pixel at most
        assert np.abs(frame.astype(int) - want).sum() <= 4 * 32


def test_audio_track_is_extracted_exactly(tmp_path: Path):
    tone = _tone(0.5, 44_100)
    video = write_video(tmp_path / "v.mkv", level_frames(12, 16, 16), 24, audio=tone,
                        audio_rate=44_100)
    out = video_decode.extract_audio(video, tmp_path / "a.w64")
    data, rate = sf.read(out, dtype="float32")
    assert rate == 44_100 and data.shape == tone.shape
    np.testing.assert_allclose(data, tone, atol=1 / 32767)  # 16-bit PCM in the container
    # an AAC track (what phones write) comes out with its rate and channels too
    mp4 = write_video(tmp_path / "v.mp4", level_frames(12, 16, 16), 24, audio=tone,
                      audio_rate=44_100)
    data, rate = sf.read(video_decode.extract_audio(mp4, tmp_path / "b.w64"))
    assert rate == 44_100 and data.shape[1] == 2 and abs(len(data) - len(tone)) < 2048


def test_every_input_mistake_is_one_clear_bad_config(tmp_path: Path):
    video = write_video(tmp_path / "v.mkv", level_frames(10, 32, 48), 25)
    short = write_video(tmp_path / "short.mkv", box_masks(8, 32, 48, (0, 0, 8, 8)), 25)
    long = write_video(tmp_path / "long.mkv", box_masks(12, 32, 48, (0, 0, 8, 8)), 25)
    other = write_video(tmp_path / "other.mkv", box_masks(10, 48, 32, (0, 0, 8, 8)), 25)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    wav = tmp_path / "a.wav"
    sf.write(wav, _tone(0.2), 48_000)
    out = (tmp_path / "f.npy", tmp_path / "k.npy")
    cases = [
        (lambda: video_decode.decode(video, *out, mask=short), "ends after 8 frames"),
        (lambda: video_decode.decode(video, *out, mask=long), "more frames than the video"),
        (lambda: video_decode.decode(video, *out, mask=other), "is 32x48 but the video"),
        (lambda: video_decode.decode(video, *out, box=(0, 0, 49, 10)), "not inside the 48x32"),
        (lambda: video_decode.decode(video, *out, box=(5, 5, 5, 9)), "0 <= X0 < X1"),
        (lambda: video_decode.decode(text, *out, box=(0, 0, 1, 1)), "not a video PyAV"),
        (lambda: video_decode.decode(wav, *out, box=(0, 0, 1, 1)), "no video stream"),
        (lambda: video_decode.decode(tmp_path / "gone.mp4", *out, box=(0, 0, 1, 1)),
         "not found"),
        (lambda: video_decode.parse_box("1,2,3"), "use X0,Y0,X1,Y1"),
        (lambda: video_decode.parse_box("a,b,c,d"), "use X0,Y0,X1,Y1"),
        (lambda: check_model("facebook/sam-audio-large"), "needs a -tv model"),
        (lambda: visual_prompt(wav, None, None, "0,0,1,1"), "needs a video"),
        (lambda: visual_prompt(video, None, short, "0,0,1,1"), "not both"),
        (lambda: visual_prompt(wav, video, None, None), "needs the object"),
    ]
    for action, words in cases:
        with pytest.raises(ConfigError, match=words):
            action()
    check_model("facebook/sam-audio-large-tv")  # fine, and so is a folder on the host
    check_model("/models/my-sam")
    assert not list(tmp_path.glob("*.raw"))  # no half-written files left behind


def test_stage_takes_the_audio_from_the_video_or_the_given_file(tmp_path: Path):
    tone = _tone(0.5)
    clip = write_video(tmp_path / "clip.mkv", level_frames(13, 16, 16), 25, audio=tone)
    silent = write_video(tmp_path / "silent.mkv", level_frames(13, 16, 16), 25)
    prompt = visual_prompt(clip, None, None, "0,0,8,8")
    assert prompt == VisualPrompt(clip, None, (0, 0, 8, 8))
    (tmp_path / "a").mkdir()
    staged = stage(clip, prompt, tmp_path / "a")
    assert staged.audio.parent == tmp_path / "a" and sf.info(str(staged.audio)).frames == 24000
    assert staged.count == 13 and staged.fps == 25.0
    wav = tmp_path / "song.wav"
    sf.write(wav, tone, 48_000)
    (tmp_path / "b").mkdir()
    assert stage(wav, VisualPrompt(silent, None, (0, 0, 8, 8)), tmp_path / "b").audio == wav
    with pytest.raises(BadAudio, match="no audio track"):
        stage(silent, VisualPrompt(silent, None, (0, 0, 8, 8)), tmp_path / "b")


def test_without_pyav_the_message_says_how_to_get_it(tmp_path: Path, monkeypatch):
    video = write_video(tmp_path / "v.mkv", level_frames(3, 16, 16), 25)
    monkeypatch.setitem(__import__("sys").modules, "av", None)  # import av -> ImportError
    with pytest.raises(ConfigError, match="needs PyAV") as caught:
        video_decode.decode(video, tmp_path / "f.npy", tmp_path / "k.npy", box=(0, 0, 4, 4))
    assert "remote-sep[video]" in caught.value.hint
