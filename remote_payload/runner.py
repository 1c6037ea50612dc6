"""Runs a manifest (and optionally a batch inbox) item by item and emits the event stream.

Events (see protocol.py): ``hello`` -> ``load`` (once, when the first output needs the
model) -> per item and description ``item_start``, ``chunk``…, ``item_done`` (or ``error``)
-> ``bye``. The exit code is 0 when everything succeeded, else the code of the FIRST error
kind (``protocol.exit_code_for``). One bad item never stops the others; a failure that makes
the model unusable (``no_gpu``, ``gated``, ``auth``, ``unknown_model``, ``not_provisioned``)
ends the job.

Reruns: every finished output has a ``<output>.sha256`` record; an output whose file still
matches its record is not computed again (``item_done`` with ``skipped: true``).

Batch inbox (``--inbox DIR``): the worker keeps its model loaded and takes item files
from DIR; the protocol is in inbox.py. Ray mode (``--ray``): ray_runner.py.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from dataclasses import dataclass, field

from . import audio_io, stereo
from .chain import ChainSeparation, chain_paths
from .engine import Engine, EngineError, OutOfMemory
from .hub_cache import preflight
from .inbox import Sequential, run_inbox
from .judge import Scorer
from .manifest import OTHER_STEM, Item, Manifest, ManifestError, Settings
from .protocol import (
    BYE,
    CHUNK,
    ERROR,
    HELLO,
    ITEM_DONE,
    ITEM_START,
    LOAD,
    WARNING,
    EventWriter,
    exit_code_for,
)
from .separation import DescJob, ItemSeparation, make_plan, output_paths
from .spans import SpanError, check_within
from .video import VideoError, VideoSource, open_video

PAYLOAD_VERSION = "0.1.0"


@dataclass
class Tally:
    first_error: str | None = None
    items_done: int = 0
    items_failed: int = 0
    failed_ids: set[str] = field(default_factory=set)

    def fail(self, kind: str, item: str | None) -> None:
        self.first_error = self.first_error or kind
        if item is not None and item not in self.failed_ids:
            self.failed_ids.add(item)
            self.items_failed += 1

    @property
    def exit_code(self) -> int:
        return 0 if self.first_error is None else exit_code_for(self.first_error)


class Runner:
    def __init__(self, settings: Settings, base: str, events: EventWriter):
        self.settings = settings
        self.base = base
        self.events = events
        self.tally = Tally()
        self.engine: Engine | None = None
        self.scorer: Scorer | None = None  # quality scores (settings.score), judge.py
        self.waiting_since = time.time()  # the idle clock's origin before any heartbeat
        self.retired: str | None = None  # "idle" once the worker retired by itself
        # Ray mode runs several items at once (ray_runner.py): the tally, the first load
        # and the judge are shared
        self.lock = threading.RLock()
        self.stopping = False  # the job is being stopped: what fails now is not the item's

    # -- events -------------------------------------------------------------------------
    def error(self, kind: str, message: str, item: str | None = None,
              desc: int | None = None, **extra) -> None:
        with self.lock:
            self.events.emit(ERROR, item=item, desc=desc, kind=kind, message=message, **extra)
            self.tally.fail(kind, item)

    def warning(self, message: str, item: str | None = None, code: str | None = None) -> None:
        self.events.emit(WARNING, item=item, message=message, code=code)

    # -- job ----------------------------------------------------------------------------
    def start(self) -> None:
        """Pick the device (``no_gpu`` fails here, before any work), say hello, and check
        the components this job loads can be had (hub_cache.preflight)."""
        self.engine = Engine(self.settings, warn=self.warning)
        self.scorer = Scorer(self.settings, self.engine.device)
        self.hello()
        problem = preflight(self.settings, cwd=self.base)  # before the first item, not at load
        if problem:
            raise EngineError(*problem)

    def hello(self, **extra) -> None:
        assert self.engine is not None
        self.events.emit(HELLO, payload_version=PAYLOAD_VERSION, pid=os.getpid(),
                         python=sys.version.split()[0], **self.engine.describe(), **extra)

    def ensure_loaded(self) -> None:
        assert self.engine is not None
        with self.lock:
            if not self.engine.loaded:
                fields = self.engine.load()
                assert self.scorer is not None  # the judge too, before any work: fails early
                fields.update(self.scorer.ensure_loaded(self.engine.model))
                self.events.emit(LOAD, **fields)

    def run_item(self, item: Item) -> None:
        """Every description of one item; errors become events, job-fatal ones propagate."""
        try:
            item.validate()
        except ManifestError as exc:
            self.error("bad_config", str(exc), item=item.id)
            return
        if item.stems is not None:
            self._run_chain(item)
            return
        todo: list[DescJob] = []
        for k, (text, prefix) in enumerate(zip(item.descriptions, item.prefixes, strict=True)):
            paths = output_paths(self.base, prefix, self.settings.extension)
            if (not text or not text.strip()) and item.video is None:  # a video is a prompt
                self.error("bad_description", f"description {k} of item {item.id} is empty",
                           item=item.id, desc=k)
                continue
            recorded = {stem: audio_io.recorded_output(p) for stem, p in paths.items()}
            if all(recorded.values()):
                self._done(item, DescJob(k, text, paths), recorded, 0.0, skipped=True)
                continue
            todo.append(DescJob(k, text, paths))
        if not todo:
            return
        try:
            source = os.path.join(self.base, item.input)  # absolute inputs stay as they are
            info = audio_io.probe(source)
        except audio_io.BadAudio as exc:
            self.error("bad_audio", str(exc), item=item.id)
            return
        try:  # the laptop checked them too; an item file may come from elsewhere
            check_within(item.spans, info.duration_s, f"item {item.id}: spans")
        except SpanError as exc:
            self.error("bad_config", str(exc), item=item.id)
            return
        source_video = None
        if item.video is not None:
            try:
                source_video = self._open_video(item)
            except VideoError as exc:
                self.error("bad_config", str(exc), item=item.id)
                return
        self.ensure_loaded()
        self._separate(item, info, todo, source_video)

    def _open_video(self, item: Item) -> VideoSource:
        if not self.settings.video:  # the model was (or will be) loaded without its video path
            raise VideoError(f"item {item.id} has a video but settings.video is false")
        return open_video(self.base, item.video)

    def _separate(self, item: Item, info: audio_io.AudioInfo, todo: list[DescJob],
                  source_video: VideoSource | None = None) -> None:
        assert self.engine is not None
        started = time.monotonic()
        chunk_s = self.settings.chunk_seconds
        batch = self.engine.batch_size_for(round(chunk_s * audio_io.MODEL_RATE))
        chunks = len(make_plan(info, self.settings, chunk_s))
        for job in todo:
            self.events.emit(ITEM_START, item=item.id, desc=job.index,
                             description=job.description, input=item.input,
                             duration_s=round(info.duration_s, 3), sample_rate=info.sample_rate,
                             channels=info.channels, batch=batch, chunks=chunks,
                             chunk_seconds=chunk_s,
                             passes=chunks * stereo.lanes(self.settings.stereo, info.channels),
                             **({"spans": item.spans} if item.spans else {}),
                             **({} if source_video is None else
                                {"video_frames": source_video.count}))

        def on_chunk(job: DescJob, total: int) -> None:
            self.events.emit(CHUNK, item=item.id, desc=job.index, done=job.chunks_done,
                             total=total)

        runs: list[ItemSeparation] = []

        def attempt(chunk_seconds: float, batch_size: int) -> dict[int, dict[str, str]]:
            for job in todo:
                job.chunks_done = 0
            runs.append(ItemSeparation(self.engine, self.settings, item, info, todo, on_chunk,
                                       video=source_video))
            return runs[-1].run(chunk_seconds, batch_size)

        shas = self._with_backoff(item, attempt, chunk_s, batch)
        if shas is None:
            return
        seconds = time.monotonic() - started
        for job in todo:
            predicted = runs[-1].predicted_spans(job.index)
            self._done(item, job, shas[job.index], seconds, skipped=False,
                       **({} if predicted is None else {"predicted_spans": predicted}))

    def _with_backoff(self, item: Item, attempt, chunk_s: float, batch: int):
        """``attempt(chunk_seconds, batch_size)`` until it fits the GPU: on CUDA OOM halve
        the batch, then the chunk (down to the floor). None: it failed (event emitted)."""
        floor = min(self.settings.min_chunk_seconds, chunk_s)
        while True:
            try:
                return attempt(chunk_s, batch)
            except OutOfMemory as exc:
                if batch > 1:
                    batch //= 2
                    self.warning(f"CUDA out of memory ({exc}); retrying item {item.id} with "
                                 f"{batch} chunk(s) per batch", item=item.id, code="oom_backoff")
                    continue
                if chunk_s / 2 < floor:
                    self.error("oom", f"CUDA out of memory even with {chunk_s:g} s chunks "
                               f"(floor {floor:g} s): use a smaller model, fp16/bf16, or a "
                               "GPU with more free memory", item=item.id)
                    return None
                chunk_s /= 2
                self.warning(f"CUDA out of memory ({exc}); retrying item {item.id} with "
                             f"{chunk_s:g} s chunks", item=item.id, code="oom_backoff")
            except audio_io.BadAudio as exc:
                self.error("bad_audio", str(exc), item=item.id)
                return None
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    self.error("disk_full", f"disk full while writing item {item.id}: {exc}; "
                               "partial outputs removed", item=item.id)
                    return None
                raise

    def _run_chain(self, item: Item) -> None:
        """A stem split (remote_payload/chain.py): ONE item_done with every stem + other."""
        empty = [k for k, d in enumerate(item.descriptions) if not d or not d.strip()]
        if empty:  # a chain cannot skip a stage: the whole split fails
            self.error("bad_description", f"description {empty[0]} of item {item.id} is empty",
                       item=item.id, desc=empty[0])
            return
        paths = chain_paths(self.base, item, self.settings.extension)
        text = " > ".join(item.descriptions)
        job = DescJob(0, text, paths)
        recorded = {stem: audio_io.recorded_output(p) for stem, p in paths.items()}
        if all(recorded.values()):
            self._done(item, job, recorded, 0.0, skipped=True)
            return
        try:
            info = audio_io.probe(os.path.join(self.base, item.input))
        except audio_io.BadAudio as exc:
            self.error("bad_audio", str(exc), item=item.id)
            return
        self.ensure_loaded()
        assert self.engine is not None
        started = time.monotonic()
        chunk_s = self.settings.chunk_seconds
        batch = self.engine.batch_size_for(round(chunk_s * audio_io.MODEL_RATE))
        chunks = len(make_plan(info, self.settings, chunk_s))
        self.events.emit(ITEM_START, item=item.id, desc=0, description=text,
                         stems=list(item.stems or []), input=item.input,
                         duration_s=round(info.duration_s, 3), sample_rate=info.sample_rate,
                         channels=info.channels, batch=batch, chunks=chunks,
                         chunk_seconds=chunk_s, passes=chunks * len(item.descriptions)
                         * stereo.lanes(self.settings.stereo, info.channels))
        runs: list[ChainSeparation] = []

        def attempt(chunk_seconds: float, batch_size: int) -> dict[str, str]:
            runs.append(ChainSeparation(self.engine, self.settings, item, info, paths,
                                        lambda done, total: self.events.emit(
                                            CHUNK, item=item.id, desc=0, done=done,
                                            total=total)))
            return runs[-1].run(chunk_seconds, batch_size)

        shas = self._with_backoff(item, attempt, chunk_s, batch)
        if shas is None:
            return
        if runs[-1].clipped:
            self.warning(f"item {item.id}: {runs[-1].clipped} sample(s) of "
                         f"{OTHER_STEM} fell outside {self.settings.subtype} and were clipped "
                         "(the stems and other add up to the input except there); FLOAT "
                         "output has no such limit", item=item.id, code="other_clipped")
        self._done(item, job, shas, time.monotonic() - started, skipped=False)

    def _done(self, item: Item, job: DescJob, shas: dict[str, str], seconds: float,
              skipped: bool, **extra) -> None:
        outputs = {stem: {"path": path, "sha256": shas[stem], "bytes": os.path.getsize(path)}
                   for stem, path in job.paths.items()}
        extra.update(self._quality(item, job, shas))
        self.events.emit(ITEM_DONE, item=item.id, desc=job.index, description=job.description,
                         outputs=outputs, seconds=round(seconds, 3), skipped=skipped, **extra)

    def _quality(self, item: Item, job: DescJob, shas: dict[str, str]) -> dict:
        """item_done's ``rerank`` (the candidate kept per chunk) and ``scores`` fields."""
        extra: dict = {}
        if job.ranks:
            extra["rerank"] = [job.ranks[key] for key in sorted(job.ranks)]
        assert self.scorer is not None
        if not self.scorer.enabled or "target" not in job.paths:  # a stem split: not scored
            return extra
        try:
            with self.lock:  # one judge per process
                extra.update(self.scorer.scores(os.path.join(self.base, item.input),
                                                job.paths["target"], shas["target"],
                                                job.description))
        except EngineError:
            raise
        except Exception as exc:  # the outputs stand; only their scores are missing
            self.warning(f"could not score item {item.id} description {job.index}: "
                         f"{type(exc).__name__}: {exc}", item=item.id, code="score_failed")
        return extra

    def run_items(self, items: list[Item]) -> None:
        for item in items:
            try:
                self.run_item(item)
            except EngineError:
                raise
            except Exception as exc:  # one bad item never stops the others
                if self.stopping:
                    return
                self.error("internal", f"{type(exc).__name__}: {exc}", item=item.id)
            with self.lock:
                if item.id not in self.tally.failed_ids:
                    self.tally.items_done += 1

    def run_inbox(self, inbox: str) -> None:
        """The batch worker loop (protocol in the module docstring; inbox.py)."""
        run_inbox(self, inbox, Sequential(self))

    def close(self) -> None:
        """Nothing to release: the process ends."""


def run_job(manifest_path: str, events_path: str, inbox: str | None = None,
            ray: dict | None = None) -> int:
    """The whole job; returns the process exit code. RAY: ray_runner.RayRunner's keywords
    (the model runs on a Ray cluster's GPU actors)."""
    events = EventWriter(events_path, mirror=sys.stdout, start_seq=_next_seq(events_path))
    runner: Runner | None = None
    tally = Tally()
    try:
        try:
            with open(manifest_path, encoding="utf-8") as source:
                manifest = Manifest.from_json(source.read())
        except (OSError, ManifestError) as exc:
            events.emit(ERROR, item=None, desc=None, kind="bad_config",
                        message=f"manifest {manifest_path}: {exc}")
            tally.fail("bad_config", None)
            return tally.exit_code
        base = os.path.dirname(os.path.abspath(manifest_path))
        if ray:
            from .ray_runner import RayRunner  # imports ray only in Ray mode

            runner = RayRunner(manifest.settings, base, events, **ray)
        else:
            runner = Runner(manifest.settings, base, events)
        tally = runner.tally
        try:
            runner.start()
            runner.run_items(manifest.items)
            if inbox:
                runner.run_inbox(inbox)
        except EngineError as exc:
            runner.error(exc.kind, exc.message)
        except KeyboardInterrupt:
            runner.error("interrupted", "the payload was stopped (signal); partial outputs removed")
        except Exception as exc:  # a bug: said in the stream (bye ok=false), never a quiet exit
            runner.error("internal", f"{type(exc).__name__}: {exc}")
        return tally.exit_code
    finally:
        if runner is not None:
            runner.close()
        retired = {"retired": runner.retired} if runner and runner.retired else {}
        events.emit(BYE, ok=tally.first_error is None, items_done=tally.items_done,
                    items_failed=tally.items_failed, exit_code=tally.exit_code, **retired)
        events.close()


def _next_seq(events_path: str) -> int:
    """A rerun appends to the same events file: continue its sequence numbers."""
    try:
        with open(events_path, "rb") as source:
            return sum(1 for line in source if line.strip())
    except FileNotFoundError:
        return 0
