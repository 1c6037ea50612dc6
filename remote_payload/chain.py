"""A stem split: several descriptions, each separated from what the ones before it left.

Per chunk of the plan (chunk k: stem 1 from the chunk, stem 2 from what stem 1 left, …), so
every stem is an ordinary chunk output, overlap-added with the same plan as everything else:
chunked equals whole-file wherever the model is time-invariant. Chunks are batched across
the plan for each stage (stage s of chunks k..k+n in one ``separate`` call). What a stage
leaves is the remainder minus its target (the subtractive residual, so what the chain passes
on is exactly what ``other`` ends up holding), in every stereo mode (remote_payload/stereo.py).

``other`` is not the model's last residual: it is made after the stems are written, from the
stems AS WRITTEN (read back from their files) and the input at the output rate:

- FLOAT: ``other = float32(mix - sum(stems))`` computed in float64 from the float32 samples;
  the sum of the files (in float64) is the mix up to the rounding of ``other`` itself to
  float32 (at most half a float32 step of ``other``, 2**-25 of it), and that sum stored as
  float32 is the mix bit for bit at nearly every sample (99 % in tests/test_split_payload.py;
  not at zero crossings where ``other`` is far larger than the mix: no float32 ``other``
  can close such a sum exactly);
- PCM_16 / PCM_24: in integer sample codes, ``other = code(mix) - sum(codes of the stems)``
  where ``code(v) = clip(rint(v * 2**(bits-1)))`` is libsndfile's own float -> PCM
  conversion, so the codes of the stems and ``other`` add up EXACTLY to the codes of the mix
  written at that depth (for a PCM input of that depth and rate: the input's own codes),
  unless ``other`` itself falls outside the format's range (then clipped, counted and
  reported in a ``warning``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import soundfile as sf

from . import audio_io, stereo
from .chunking import OverlapAdd
from .engine import Engine, batch_seed
from .manifest import OTHER_STEM, Item, Settings
from .separation import make_plan

PCM_BITS = {"PCM_16": 16, "PCM_24": 24}


def chain_paths(base: str, item: Item, extension: str) -> dict[str, str]:
    """stem -> final output path, the stems in chain order and then ``other``."""
    prefix = item.prefixes[0]
    root = prefix if os.path.isabs(prefix) else os.path.join(base, prefix)
    return {stem: f"{root}_{stem}.{extension}" for stem in item.output_stems}


def output_shape(info: audio_io.AudioInfo, settings: Settings) -> tuple[int, int]:
    """(output rate, output frames): the input's length at the output rate."""
    rate = settings.sample_rate or info.sample_rate
    frames = (info.frames if rate == info.sample_rate
              else max(1, round(info.frames * rate / info.sample_rate)))
    return rate, frames


class ChainSeparation:
    """Runs one stem split's chunk plan; ``run`` returns {stem: sha256}, ``other`` included."""

    def __init__(self, engine: Engine, settings: Settings, item: Item,
                 info: audio_io.AudioInfo, paths: dict[str, str],
                 on_chunk: Callable[[int, int], None]):
        self.engine = engine
        self.settings = settings
        self.item = item
        self.info = info
        self.paths = paths
        self.on_chunk = on_chunk
        self.stems = list(item.stems or [])
        self.lanes = stereo.lanes(settings.stereo, info.channels)
        self.clipped = 0  # samples of a PCM `other` that had to be clipped
        self.total_chunks = 0

    def run(self, chunk_seconds: float, batch_size: int) -> dict[str, str]:
        plan = make_plan(self.info, self.settings, chunk_seconds)
        self.plan = plan
        self.total_chunks = len(plan)
        rate, frames = output_shape(self.info, self.settings)
        channels = self.info.channels
        self.adders = {stem: OverlapAdd(plan, channels) for stem in self.stems}
        self.writers: dict[str, audio_io.StreamWriter] = {}
        self.done = 0
        try:
            for stem in self.stems:
                self.writers[stem] = audio_io.StreamWriter(
                    self.paths[stem], rate, channels, frames, self.settings.format,
                    self.settings.subtype)
            group = max(1, batch_size // self.lanes)  # chunks per stage call
            spans = [(c.start, c.end) for c in plan]
            pending: list[tuple[int, np.ndarray]] = []
            for index, data in enumerate(audio_io.prefetch(
                    audio_io.read_chunks(self.info, spans), depth=2)):
                pending.append((index, data))
                if len(pending) == group:
                    self._run_group(pending, batch_size)
                    pending = []
            if pending:
                self._run_group(pending, batch_size)
            shas = {stem: self.writers[stem].finish() for stem in self.stems}
            shas[OTHER_STEM] = self._write_other(rate, frames)
            return shas
        finally:
            for writer in self.writers.values():
                writer.abort()  # no-op for finished ones

    def _run_group(self, entries: list[tuple[int, np.ndarray]], batch_size: int) -> None:
        """Every stage for a few consecutive chunks, then their outputs in plan order."""
        mode = self.settings.stereo
        remainders = [data.astype(np.float64) for _, data in entries]
        outputs: list[dict[str, np.ndarray]] = [{} for _ in entries]
        for stage, (stem, text) in enumerate(zip(self.stems, self.item.descriptions,
                                                 strict=True)):
            signals = [stereo.lane_signal(mode, rest, lane)
                       for rest in remainders for lane in range(self.lanes)]
            answers: list[stereo.Pair] = []
            for start in range(0, len(signals), batch_size):
                part = signals[start:start + batch_size]
                seed = batch_seed(self.settings.seed, self.item.id, "stem", stage,
                                  entries[0][0], start, len(part))
                answers.extend(self.engine.separate(part, [text] * len(part), seed))
            for i, rest in enumerate(remainders):
                target, _ = stereo.combine(mode, rest,
                                           answers[i * self.lanes:(i + 1) * self.lanes],
                                           offset=self.plan[entries[i][0]].start)
                outputs[i][stem] = target
                remainders[i] = rest - target
        for (index, _), stems in zip(entries, outputs, strict=True):
            for stem in self.stems:
                done = self.adders[stem].add(index, stems[stem])
                if len(done):
                    self.writers[stem].write(done)
            self.done += 1
            self.on_chunk(self.done, self.total_chunks)

    def _write_other(self, rate: int, frames: int) -> str:
        """``other`` from the mix and the stems as written (see the module docstring)."""
        settings = self.settings
        bits = PCM_BITS.get(settings.subtype)
        shift = 32 - bits if bits else 0
        mix = audio_io.input_rows(self.info, rate)
        readers = [sf.SoundFile(self.paths[stem]) for stem in self.stems]
        writer = audio_io.StreamWriter(self.paths[OTHER_STEM], rate, self.info.channels,
                                       frames, settings.format, settings.subtype,
                                       source_rate=rate)
        try:
            for start in range(0, frames, audio_io.BLOCK):
                count = min(audio_io.BLOCK, frames - start)
                x = mix.take(count)
                if bits:
                    stems = sum(r.read(count, dtype="int32", always_2d=True).astype(np.int64)
                                >> shift for r in readers)
                    other = pcm_codes(x, bits) - stems
                    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
                    self.clipped += int(np.count_nonzero((other < low) | (other > high)))
                    writer.write_stored((np.clip(other, low, high) << shift).astype(np.int32))
                else:
                    stems = sum(r.read(count, dtype="float32", always_2d=True)
                                .astype(np.float64) for r in readers)
                    writer.write_stored((x.astype(np.float64) - stems).astype(np.float32))
            return writer.finish()
        finally:
            for reader in readers:
                reader.close()
            mix.close()
            writer.abort()


def pcm_codes(samples: np.ndarray, bits: int) -> np.ndarray:
    """Float samples -> the integer codes libsndfile writes for them at ``bits`` (int64)."""
    scale = float(1 << (bits - 1))
    return np.clip(np.rint(samples.astype(np.float64) * scale), -scale, scale - 1
                   ).astype(np.int64)
