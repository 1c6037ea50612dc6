"""A visual prompt for `separate`: which video, which object (mask video or box), checked on
the laptop, decoded (jobs/video_decode.py) and uploaded through the verified,
content-addressed cache like the audio. The payload side is remote_payload/video.py.

Rules, all checked before any connection (bad_config unless said otherwise):
- ``--mask MASK`` or ``--box X0,Y0,X1,Y1`` names the object; one of them, not both, and only
  with a video (``--video CLIP``, or the input itself being a video);
- the audio is the input file, or the video's own audio track when the input is the video
  (no track: bad_audio); the frames are the video's, sampled by time to the audio;
- the model must be a ``-tv`` one when it is a ``facebook/sam-audio-*`` id (those are the
  ones trained for visual prompts); a Hub id of another name or a folder on the host is the
  user's to vouch for;
- the mask video has the video's frame size and one frame per video frame; the box lies in
  the frame; both videos are readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote_payload.manifest import MODEL_ALIASES
from remote_sep.errors import BadAudio, ConfigError
from remote_sep.hosts.base import sha256_file
from remote_sep.jobs import video_decode
from remote_sep.jobs.cache import check_script
from remote_sep.jobs.layout import cache_path

HUB_PREFIX = "facebook/sam-audio-"


@dataclass(frozen=True)
class VisualPrompt:
    video: Path
    mask: Path | None = None
    box: tuple[int, int, int, int] | None = None


def visual_prompt(audio: Path, video: Path | None, mask: Path | None,
                  box: str | None) -> VisualPrompt | None:
    """The command line's --video/--mask/--box -> a prompt (None: a text-only run)."""
    if mask is not None and box is not None:
        raise ConfigError("give --mask or --box, not both (both name the object to listen to)")
    parsed = video_decode.parse_box(box) if box is not None else None
    if video is None and (mask is not None or parsed is not None):
        if not video_decode.is_video(audio):
            raise ConfigError(f"--{'mask' if mask else 'box'} needs a video: give the clip as "
                              f"the input or with --video CLIP ({audio.name} is not a video)")
        video = audio
    if video is None:
        return None
    if mask is None and parsed is None:
        raise ConfigError("a visual prompt needs the object: --mask MASK.mp4 (white where "
                          "the object is, one frame per video frame) or --box X0,Y0,X1,Y1")
    return VisualPrompt(video.expanduser(), mask.expanduser() if mask else None, parsed)


def audio_is_the_video(audio: Path, prompt: VisualPrompt) -> bool:
    """The input is the video itself (its audio track is the audio to separate)."""
    import soundfile

    if audio.resolve() == prompt.video.resolve():
        return True
    try:
        soundfile.info(str(audio))
        return False
    except Exception:  # noqa: BLE001 - libsndfile raises several types
        return video_decode.is_video(audio)


def check_model(model_id: str) -> None:
    if model_id.startswith(HUB_PREFIX) and not model_id.endswith("-tv"):
        tv = [name for name in MODEL_ALIASES if name.endswith("-tv")]
        raise ConfigError(f"{model_id} takes no visual prompt: --video needs a -tv model",
                          hint=f"use --model {' | '.join(tv)} (or set `model:` of the host "
                               "in hosts.yaml)")


def check_prompt(audio: Path, prompt: VisualPrompt) -> None:
    """The cheap checks (headers only): readable videos, sizes, the box, the audio track."""
    video_decode.check_pair(prompt.video, prompt.mask, prompt.box)
    if audio_is_the_video(audio, prompt) and not video_decode.probe_video(audio).has_audio:
        raise BadAudio(f"{audio.name} has no audio track",
                       hint=f"give the audio as the input: remote-sep separate AUDIO --video "
                            f"{prompt.video.name} …")


@dataclass(frozen=True)
class Staged:
    """What goes to the host: the audio file to separate and the two video files."""

    audio: Path
    frames: Path
    masks: Path
    frames_sha: str
    masks_sha: str
    count: int
    fps: float
    size: int

    def summary(self, prompt: VisualPrompt) -> dict[str, Any]:
        """For the --json result."""
        return {"video": str(prompt.video), "frames": self.count, "fps": self.fps,
                "size": self.size, "mask": str(prompt.mask) if prompt.mask else None,
                "box": list(prompt.box) if prompt.box else None}


def stage(audio: Path, prompt: VisualPrompt, folder: Path) -> Staged:
    """Decode into `folder` (a temp dir of the caller's): the audio (extracted from the
    video when the input is the video) and the frames + masks files."""
    check_prompt(audio, prompt)
    if audio_is_the_video(audio, prompt):
        audio = video_decode.extract_audio(audio, folder / f"{audio.stem}.w64")
    decoded = video_decode.decode(prompt.video, folder / "frames.npy", folder / "masks.npy",
                                  mask=prompt.mask, box=prompt.box)
    return Staged(audio, decoded.frames, decoded.masks, sha256_file(decoded.frames),
                  sha256_file(decoded.masks), decoded.count, video_decode.FPS, decoded.size)


def upload(link, base: str, staged: Staged, notify) -> dict[str, Any]:
    """Both files into ``P/cache`` (one round trip to see which are there already, one
    verified put each that is not); returns the item's ``video`` field."""
    files = {"frames": (staged.frames, staged.frames_sha),
             "masks": (staged.masks, staged.masks_sha)}
    names = {key: f"{sha}.npy" for key, (_, sha) in files.items()}
    listing = "".join(f"{names[key]} {path.stat().st_size}\n"
                      for key, (path, _) in files.items())
    answer = link.call(lambda h: h.run(check_script(f"{base}/cache"), stdin=listing.encode()))
    cached = set(answer.stdout.decode("utf-8", "replace").split())
    for key, (path, sha) in files.items():
        remote = cache_path(base, sha, ".npy")
        if names[key] in cached:
            notify("status", {"message": f"video {key} already on the host (cached)"})
            continue

        def progress(done: int, total: int, name: str = f"video {key}") -> None:
            notify("transfer", {"name": name, "done": done, "total": total})

        link.call(lambda h, p=path, r=remote, s=sha: h.put_file(p, r, progress=progress,
                                                                  sha256=s))
    return {"frames": cache_path(base, staged.frames_sha, ".npy"),
            "masks": cache_path(base, staged.masks_sha, ".npy"), "fps": staged.fps}
