"""The core of `remote-sep separate`: local checks, upload, start, follow, pull (`attach`:
jobs/attach.py).

No printing: progress goes through ``notify`` (see jobs/follow.py); failures are RemoteSepError.
Round trips on a provisioned host: prepare (1), upload when not cached (SFTP open + put),
start (1), the event polls, one per output pulled.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import soundfile

from remote_payload.manifest import Item, Manifest, Settings
from remote_sep.errors import (
    BadAudio,
    ConfigError,
    Interrupted,
    OutputExists,
    RemoteSepError,
    Unreachable,
)
from remote_sep.hosts.base import sha256_file
from remote_sep.hosts.profile import HostProfile
from remote_sep.jobs import outputs, records, split
from remote_sep.jobs.follow import Link, Notify, _quiet, follow_job
from remote_sep.jobs.layout import (
    Cursor,
    JobPaths,
    cache_path,
    new_job_id,
    prepare,
    read_pid,
    start_and_poll,
)
from remote_sep.jobs.payload_sync import payload_dir, payload_hash, sync_payload
from remote_sep.jobs.settings import build_settings, requested_settings
from remote_sep.jobs.spans import check_not_predicted, check_spans_fit, parse_spans
from remote_sep.jobs.visual import (
    VisualPrompt,
    audio_is_the_video,
    check_model,
    check_prompt,
    stage,
)
from remote_sep.jobs.visual import upload as visual_upload
from remote_sep.provision.auto import ReadyOptions, prepare_ready
from remote_sep.provision.ready import RemoteReady


@dataclass
class SeparateOptions:
    descriptions: list[str]
    out: str | None = None
    force: bool = False
    # The setting options given: setting_table row name -> value (e.g. {"steps": 8}).
    settings: dict[str, Any] = field(default_factory=dict)
    visual: VisualPrompt | None = None  # --video with --mask/--box (jobs/visual.py)
    # A stem split (`remote-sep split`): one output name per description, separated in
    # that order, each from what the ones before left (jobs/split.py names them)
    stems: list[str] | None = None
    spans: list[str] = field(default_factory=list)  # --span texts (jobs/spans.py)


def slug(text: str, limit: int = 40) -> str:
    """'Female vocals!' -> 'female-vocals' (safe in a file name on every OS)."""
    words = re.sub(r"[^\w]+", "-", text.strip().lower(), flags=re.UNICODE).strip("-_")
    return words[:limit].rstrip("-_") or "source"


def local_prefixes(audio: Path, descriptions: list[str], out: str | None) -> list[Path]:
    """One absolute output prefix per description: --out as given (suffixed by the
    description when there are several); `--out DIR/` or an existing folder:
    ``DIR/<stem>_<desc-slug>``; else ``<stem>_<desc-slug>`` next to the input."""
    if out and not outputs.names_a_folder(out):
        base = outputs.absolute(out)
        if len(descriptions) == 1:
            return [base]
        return [base.with_name(f"{base.name}_{slug(d)}") for d in descriptions]
    folder = outputs.absolute(out) if out else outputs.absolute(audio).parent
    return [folder / f"{audio.stem}_{slug(d)}" for d in descriptions]


def output_paths(prefix: Path, ext: str) -> list[Path]:
    return [Path(f"{prefix}_{kind}.{ext}") for kind in ("target", "residual")]


def check_audio(audio: Path) -> soundfile._SoundFileInfo:
    if audio.is_dir():
        raise BadAudio(f"{audio} is a directory, not an audio file",
                       hint="give one file (`remote-sep batch` takes folders)")
    if not audio.is_file():
        raise BadAudio(f"audio file not found: {audio}")
    try:
        info = soundfile.info(str(audio))
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types
        raise BadAudio(f"{audio} is not an audio file soundfile can read ({exc})") from None
    if info.frames <= 0:
        raise BadAudio(f"{audio} holds no audio samples")
    return info


def check_inputs(audio: Path, descriptions: list[str],
                 visual: VisualPrompt | None = None) -> list[str]:
    """The user's own inputs (the file, the texts): checked before even the host profile.
    With a visual prompt the text may be empty (the video is the prompt) and the input may
    be the video itself."""
    cleaned = [d.strip() for d in descriptions]
    if not cleaned or (visual is None and any(not d for d in cleaned)):
        raise RemoteSepError("every --desc needs a non-empty text description",
                             kind="bad_description")
    if visual is None or not audio_is_the_video(audio, visual):
        check_audio(audio)
    if visual is not None:
        check_prompt(audio, visual)
    return cleaned


def item_spans(audio: Path, opts: SeparateOptions) -> list[list]:
    """The --span options parsed and checked against the file, before any connection."""
    spans = parse_spans(opts.spans)
    check_not_predicted(spans, opts.settings.get("predict_spans"))
    if spans:
        info = check_audio(audio)
        check_spans_fit(spans, info.frames / info.samplerate, "--span")
    return spans


def check_local(audio: Path, profile: HostProfile, opts: SeparateOptions
                ) -> tuple[Settings, list[Path]]:
    """Everything that can fail without the network, checked before any connection."""
    descriptions = check_inputs(audio, opts.descriptions, opts.visual)
    if opts.visual is None or not audio_is_the_video(audio, opts.visual):
        item_spans(audio, opts)  # a video's track: checked once extracted (run_separate)
    requested = requested_settings(opts.settings)
    if opts.visual is not None:
        requested["video"] = True  # the payload keeps the model's video path (and visual ranker)
    settings = build_settings(profile, requested)
    if opts.visual is not None:
        check_model(settings.model)
    if opts.stems is not None:
        prefixes = [split.split_prefix(audio, opts.out)]
        files = [Path(f"{prefixes[0]}_{kind}.{settings.extension}")
                 for kind in split.output_kinds(opts.stems)]
    else:
        prefixes = local_prefixes(audio, descriptions, opts.out)
        if len(set(prefixes)) != len(prefixes):
            raise ConfigError("two descriptions give the same output name; use distinct --desc")
        files = [p for prefix in prefixes for p in output_paths(prefix, settings.extension)]
    # Before the exists check: exists() itself raises on a name too long.
    outputs.check_writable(files, hint="pick a folder you can write with --out DIR/")
    if not opts.force:
        existing = [p for p in files if p.exists()]
        if existing:
            raise OutputExists(f"output exists: {existing[0]}",
                               hint="pass --force to overwrite, or --out to pick another name")
    return settings, prefixes


def upload_extension(audio: Path) -> str:
    ext = audio.suffix.lower()
    return ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ""


def run_separate(audio: Path, profile: HostProfile, opts: SeparateOptions,
                 notify: Notify = _quiet, connect=None,
                 provision: ReadyOptions | None = None) -> dict[str, Any]:
    """Separate one file on one host; returns the --json result body. An unprovisioned
    host is bootstrapped first when `provision` allows it (--yes or a yes answer)."""
    started = time.monotonic()
    audio = Path(audio).expanduser()
    settings, prefixes = check_local(audio, profile, opts)
    staging = staged = None
    if opts.visual is not None:  # decoded here, before any connection
        staging = tempfile.TemporaryDirectory(prefix="remote-sep-video-")
        notify("status", {"message": f"decoding {opts.visual.video.name}"})
        try:
            staged = stage(audio, opts.visual, Path(staging.name))
        except BaseException:
            staging.cleanup()
            raise
    source = staged.audio if staged is not None else audio  # what is separated
    spans = item_spans(source, opts)  # still before any connection
    sha = sha256_file(source)
    cache_name = sha + upload_extension(source)
    link = Link(profile, connect, notify=notify)
    record = None
    try:
        ready = _ready_host(link, profile, (cache_name, source.stat().st_size),
                            provision or ReadyOptions(), opts.settings.get("model"))
        if not ready.payload_present:
            notify("status", {"message": "syncing the payload code"})
            link.call(lambda h: sync_payload(h, ready.base))
        remote_audio = cache_path(ready.base, sha, upload_extension(source))
        video_ref = None
        if staged is not None:
            video_ref = visual_upload(link, ready.base, staged, notify)
        landing = None
        if ready.cached_sha256 != sha:  # absent, or not a whole copy: (re)upload
            def progress(done: int, total: int) -> None:
                notify("transfer", {"name": source.name, "done": done, "total": total})
            # to a temp name; the start's round trip checks and renames it (no extra one)
            landing = link.call(lambda h: h.send_file(source, remote_audio,
                                                       progress=progress, sha256=sha))
        else:
            notify("status", {"message": f"{source.name} already on the host (cached)"})
        job_id = new_job_id()
        item = Item(id="i0", input=remote_audio, descriptions=[d.strip() for d in
                    opts.descriptions], prefixes=[f"out/d{k}" for k in range(len(prefixes))],
                    video=video_ref,
                    stems=list(opts.stems) if opts.stems is not None else None,
                    spans=spans)
        manifest = Manifest(job_id=job_id, settings=settings, items=[item])
        record = records.JobRecord(
            host=profile.name, job_id=job_id, base=ready.base, ext=settings.extension,
            prefixes={records.output_key("i0", k): str(p) for k, p in enumerate(prefixes)},
            descriptions={records.output_key("i0", k): d
                          for k, d in enumerate(item.descriptions[:len(prefixes)])})
        if opts.stems is not None:  # one output key: its kinds are the stems and other
            key = records.output_key("i0", 0)
            record.descriptions[key] = " > ".join(item.descriptions)
            record.kinds[key] = split.output_kinds(opts.stems)
        records.save(record)
        paths = JobPaths(ready.base, job_id)
        # Not retried as a whole: after a lost link we could not tell whether it started
        # twice. The job writes its pid file as it starts, so a reconnect can tell.
        cursor = Cursor()
        try:
            record.pid, first = start_and_poll(link.host, profile, paths, manifest.to_json(),
                                               ready.python, payload_dir(ready.base), cursor,
                                               landing=landing)
        except Unreachable:
            record.pid, first = _started_after_all(link, paths), None
        records.save(record)
        notify("status", {"message": f"job {job_id} started on {profile.name}"})
        result = follow_job(link, record, cursor, notify, first_poll=first)
    except KeyboardInterrupt:
        raise detached(profile, record) from None
    except RemoteSepError as exc:
        if exc.local and record is not None:
            raise pull_stopped(exc, record, profile) from None
        if not isinstance(exc, Unreachable):
            raise
        if record is not None:
            state = "keeps running" if record.pid else "may have started"
            exc.hint = (f"job {record.job_id} {state} on the host; pick it up with: "
                        f"remote-sep attach {record.job_id} --host {profile.name}")
        raise
    finally:
        link.close()
        if staging is not None:
            staging.cleanup()
    body = result_of(record, result, started, link)
    if staged is not None:
        body["video"] = staged.summary(opts.visual)
    return body


def _started_after_all(link: Link, paths: JobPaths) -> int:
    """The link died inside the start round trip: reconnect (within the budget) and read the
    job's pid file; a job that has one started and is followed from its first event. No pid
    file: it never started, and the lost link is the error."""
    if link.budget_s <= 0:
        raise Unreachable(f"lost the link to {link.profile.name} while starting the job")
    pid = link.call(lambda h: read_pid(h, paths))
    if pid is None:
        raise Unreachable(f"lost the link to {link.profile.name} before the job started")
    return pid


def _ready_host(link: Link, profile: HostProfile, cached: tuple[str, int],
                options: ReadyOptions, model: str | None) -> RemoteReady:
    """prepare (which also reads the bootstrap stamp), bootstrapping first if allowed."""
    options = replace(options, model=options.model or model)
    # The bootstrap is not retried through the link: it may ask a question, and a bootstrap
    # cut short resumes by itself when simply run again.
    return prepare_ready(lambda: link.host, profile, options, lambda: link.call(
        lambda h: prepare(h, profile, payload_hash(), *cached)))


def pull_stopped(exc: RemoteSepError, record: records.JobRecord,
                  profile: HostProfile) -> RemoteSepError:
    """A local write failed while pulling: say which outputs arrived, which did not, and
    how to pull the rest once there is room (the job's outputs stay on the host)."""
    wanted = [record.local_path(key, kind) for key in sorted(record.prefixes)
              for kind in record.kinds_for(key)]
    arrived = [p.name for p in wanted if str(p) in record.pulled]
    missing = [p.name for p in wanted if str(p) not in record.pulled]
    exc.message = (f"{exc.message}; pulled: {', '.join(arrived) or 'nothing'}; "
                   f"not pulled: {', '.join(missing)}")
    attach = f"remote-sep attach {record.job_id} --host {profile.name}"
    exc.hint = (f"the outputs stay on the host; free space here, then `{attach}` "
                f"(or `{attach} --out OTHER_DIR/`)" if exc.kind == "disk_full" else
                f"the outputs stay on the host; pull them into a folder you can write: "
                f"`{attach} --out OTHER_DIR/`")
    return exc


def detached(profile: HostProfile, record: records.JobRecord | None) -> Interrupted:
    if record is None:
        return Interrupted("interrupted before the job started; nothing runs on the host")
    return Interrupted(f"detached from job {record.job_id}; it keeps running on {profile.name}",
                       hint=f"remote-sep attach {record.job_id} --host {profile.name}")


def result_of(record, follow, started: float, link: Link) -> dict[str, Any]:
    outputs = []
    for key, kinds in sorted(follow.outputs.items()):
        entry = {"key": key, "description": record.descriptions.get(key)}
        for kind, path in kinds.items():
            entry[kind] = path
            entry[f"{kind}_sha256"] = follow.shas[path]
        entry.update(follow.quality.get(key, {}))  # scores, rerank (when asked for)
        if key in follow.predicted_spans:  # seconds of the input (--predict-spans)
            entry["predicted_spans"] = follow.predicted_spans[key]
        outputs.append(entry)
    return {"job_id": record.job_id, "host": record.host, "outputs": outputs,
            "seconds": round(time.monotonic() - started, 3), "round_trips": link.round_trips,
            "reconnects": link.reconnects}
