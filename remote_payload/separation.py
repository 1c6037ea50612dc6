"""One item through the model: read chunks, batch them, overlap-add, write the stems.

Stereo (the model is mono): ``settings.stereo`` is ``image`` (default: one pass on the mid,
a time-frequency mask from its answer applied to every channel, so a panned source stays
where it is), ``mid`` (one pass, the mono target on every channel, the side signal in the
residual) or ``channels`` (one pass per channel); remote_payload/stereo.py has them all.
``target + residual`` reconstructs the input (exactly for ``image``; for the others wherever
the model's own ``target + residual`` equals its input), exact to the sample in length.

Spans (docs/spans.md): each chunk gets the item's span prompts that touch it, in the chunk's
time (``spans.chunk_anchors``); with ``predict_spans`` and no given spans, the engine's
span predictor runs on each batch first and its spans are passed as that batch's anchors,
and recorded in the input's time for the ``item_done`` event.

Rates: the model sees 48 kHz. What it never saw (above 24 kHz of a 96/192 kHz input, and
what the 48 kHz round trip loses of any other rate) goes to the residual like the side
signal (``audio_io.Unseen``), so ``target + residual`` is the input at its own rate.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import audio_io, stereo
from . import spans as span_time
from .chunking import Chunk, OverlapAdd, plan_chunks
from .engine import Engine, batch_seed
from .manifest import Item, Settings
from .video import VideoSource


@dataclass
class DescJob:
    """One (item, description): its outputs and streaming state."""

    index: int
    description: str
    paths: dict[str, str]  # "target"/"residual" -> final path
    adders: dict[str, OverlapAdd] = field(default_factory=dict)
    writers: dict[str, audio_io.StreamWriter] = field(default_factory=dict)
    chunks_done: int = 0
    ranks: dict[tuple[int, int], dict] = field(default_factory=dict)  # (chunk, lane) -> pick


def make_plan(info: audio_io.AudioInfo, settings: Settings, chunk_seconds: float) -> list[Chunk]:
    """The chunk plan at the model rate; the overlap never exceeds half a (halved) chunk."""
    rate = audio_io.MODEL_RATE
    chunk = max(1, round(chunk_seconds * rate))
    overlap = min(round(settings.overlap_seconds * rate), chunk // 2)
    return plan_chunks(audio_io.model_length(info), chunk, overlap)


def output_paths(base: str, prefix: str, extension: str) -> dict[str, str]:
    root = prefix if os.path.isabs(prefix) else os.path.join(base, prefix)
    return {stem: f"{root}_{stem}.{extension}" for stem in ("target", "residual")}


class ItemSeparation:
    """Runs the chunk plan of one item for several descriptions in one read of the input."""

    def __init__(self, engine: Engine, settings: Settings, item: Item, info: audio_io.AudioInfo,
                 jobs: list[DescJob], on_chunk: Callable[[DescJob, int], None],
                 video: VideoSource | None = None):
        self.engine = engine
        self.video = video  # a visual prompt: each chunk gets the frames of its time range
        self.settings = settings
        self.item = item
        self.info = info
        self.jobs = jobs
        self.on_chunk = on_chunk
        self.lanes = stereo.lanes(settings.stereo, info.channels)
        # Given spans win; without them, predict_spans runs the span predictor per chunk.
        self.spans = span_time.to_samples(item.spans, audio_io.MODEL_RATE)
        self.predicting = settings.predict_spans and not item.spans
        self.predicted: dict[int, list[tuple[int, int]]] = {job.index: [] for job in jobs}

    def predicted_spans(self, index: int) -> list[list[float]] | None:
        """Description ``index``'s predicted spans in seconds of the input: every chunk's
        (and channel's) spans moved back by the chunk's start and merged where chunks
        overlap. None when no spans were predicted (not asked, or spans were given)."""
        if not self.predicting:
            return None
        merged = span_time.merge(self.predicted[index])
        return span_time.as_seconds(merged, audio_io.MODEL_RATE)

    def run(self, chunk_seconds: float, batch_size: int) -> dict[int, dict[str, str]]:
        """Separate and write everything; returns {desc index: {stem: sha256}}."""
        plan = make_plan(self.info, self.settings, chunk_seconds)
        self.plan = plan
        self.total_chunks = len(plan)
        for job in self.jobs:
            job.ranks.clear()  # an OOM retry plans other chunks
        out_rate = self.settings.sample_rate or self.info.sample_rate
        out_frames = (self.info.frames if out_rate == self.info.sample_rate
                      else max(1, round(self.info.frames * out_rate / self.info.sample_rate)))
        try:
            for job in self.jobs:
                for stem, path in job.paths.items():
                    job.adders[stem] = OverlapAdd(plan, self.info.channels)
                    unseen = (audio_io.Unseen(self.info, out_rate) if stem == "residual"
                              and audio_io.Unseen.needed(self.info, out_rate) else None)
                    job.writers[stem] = audio_io.StreamWriter(
                        path, out_rate, self.info.channels, out_frames, self.settings.format,
                        self.settings.subtype, extra=unseen)
            self._stream(plan, batch_size)
            return {job.index: {stem: w.finish() for stem, w in job.writers.items()}
                    for job in self.jobs}
        finally:
            for job in self.jobs:
                for writer in job.writers.values():
                    writer.abort()  # no-op for finished ones (their temp name is gone)

    def _stream(self, plan, batch_size: int) -> None:
        """Batches go to ``engine.submit`` as the chunks are read; up to ``engine.window``
        are in flight (1 in this process; two per GPU in Ray mode) and their answers are
        taken in submission order, so the outputs never depend on where a batch ran."""
        spans = [(c.start, c.end) for c in plan]
        inputs: dict[int, np.ndarray] = {}
        results: dict[tuple[int, int], dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        pending: list[tuple[int, int, int]] = []  # (chunk, job position, lane)
        in_flight: deque = deque()  # (entries, future of (pairs, ranks))
        next_chunk = 0  # next chunk index to hand to the overlap-add

        def submit(entries: list[tuple[int, int, int]]) -> None:
            signals = [self._lane(inputs[c], lane) for c, _, lane in entries]
            descs = [self.jobs[j].description for _, j, _ in entries]
            first = entries[0]
            seed = batch_seed(self.settings.seed, self.item.id, *first, len(entries))
            anchors = self._anchors(plan, entries, signals, descs)
            prompts = {} if self.video is None else {"videos": [
                self.video.for_chunk(spans[c][0], spans[c][1] - spans[c][0])
                for c, _, _ in entries]}
            in_flight.append((entries, self.engine.submit(signals, descs, seed,
                                                          anchors=anchors, **prompts)))
            while len(in_flight) >= max(1, self.engine.window):  # read each time: it moves
                collect()

        def collect() -> None:
            nonlocal next_chunk
            entries, future = in_flight.popleft()
            separated, ranks = future.result()
            for (c, j, lane), pair in zip(entries, separated, strict=True):
                results.setdefault((c, j), {})[lane] = pair
            for (c, j, lane), rank in zip(entries, ranks or [], strict=False):
                self.jobs[j].ranks[(c, lane)] = rank  # which candidate the ranker kept
            while next_chunk in inputs and all(
                    len(results.get((next_chunk, j), {})) == self.lanes
                    for j in range(len(self.jobs))):
                self._emit_chunk(next_chunk, inputs.pop(next_chunk), results)
                next_chunk += 1

        try:
            chunks = audio_io.prefetch(audio_io.read_chunks(self.info, spans), depth=2)
            for index, data in enumerate(chunks):
                inputs[index] = data
                pending.extend((index, j, lane) for j in range(len(self.jobs))
                               for lane in range(self.lanes))
                while len(pending) >= batch_size:
                    submit(pending[:batch_size])
                    del pending[:batch_size]
            if pending:
                submit(pending)
            while in_flight:
                collect()
        finally:
            for _, future in in_flight:  # a failure: what is still queued is not wanted
                future.cancel()

    def _anchors(self, plan: list[Chunk], entries: list[tuple[int, int, int]],
                 signals: list[np.ndarray], descs: list[str]) -> list[list] | None:
        """Each entry's anchors: the given spans that touch its chunk, in chunk time; or the
        span predictor's for it (recorded in input time); None: no spans at all."""
        rate, hop = audio_io.MODEL_RATE, self.engine.hop_length
        if self.spans:
            return [span_time.chunk_anchors(self.spans, plan[c].start, plan[c].length, rate,
                                            hop) for c, _, _ in entries]
        if not self.predicting:
            return None
        anchors = []
        for (c, j, _), signal, found in zip(entries, signals,
                                            self.engine.predict_spans(signals, descs),
                                            strict=True):
            chunk_anchors, samples = span_time.predicted_anchors(found, len(signal), rate, hop)
            anchors.append(chunk_anchors)
            offset = plan[c].start
            self.predicted[self.jobs[j].index].extend((offset + lo, offset + hi)
                                                      for lo, hi in samples)
        return anchors

    def _lane(self, data: np.ndarray, lane: int) -> np.ndarray:
        return stereo.lane_signal(self.settings.stereo, data, lane)

    def _emit_chunk(self, index: int, data: np.ndarray, results) -> None:
        for position, job in enumerate(self.jobs):
            lanes = results.pop((index, position))
            target, residual = stereo.combine(self.settings.stereo, data,
                                              [lanes[c] for c in range(self.lanes)],
                                              offset=self.plan[index].start)
            for stem, stems in (("target", target), ("residual", residual)):
                done = job.adders[stem].add(index, stems)
                if len(done):
                    job.writers[stem].write(done)
            job.chunks_done += 1
            self.on_chunk(job, self.total_chunks)
