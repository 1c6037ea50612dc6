"""Streamed audio I/O: read in blocks and resample to the model rate; resample back and write.

Nothing here holds a whole file: the reader keeps at most about one chunk (plus a block) of
resampled audio, the writer keeps only the resampler's state. ``Unseen`` streams what the
model never saw (content above 24 kHz of a 192 kHz input, say), for the residual. Finished
files appear under their final name only when complete (temp name in the same folder,
fsync, rename), with a ``<output>.sha256`` record next to them so a rerun can trust and
skip them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import shutil
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

MODEL_RATE = 48_000
BLOCK = 1 << 16  # frames per disk read
SHA_SUFFIX = ".sha256"


class BadAudio(Exception):
    """Missing, unreadable, empty or non-audio input."""


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def probe(path: str) -> AudioInfo:
    """Read the header; every way an input can be unusable becomes ``BadAudio``."""
    if not os.path.exists(path):
        raise BadAudio(f"input not found: {path}")
    if not os.path.isfile(path):
        raise BadAudio(f"input is not a file: {path}")
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise BadAudio(f"not a readable audio file: {path} ({exc})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise BadAudio(f"audio file has no samples: {path}")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def model_length(info: AudioInfo) -> int:
    """Samples at the model rate; the reader pads or trims to exactly this."""
    return max(1, round(info.frames * MODEL_RATE / info.sample_rate))


def read_resampled(info: AudioInfo) -> Iterator[np.ndarray]:
    """Blocks of (n, channels) float32 at the model rate, exactly ``model_length`` in total."""
    want = model_length(info)
    resampler = None
    if info.sample_rate != MODEL_RATE:
        resampler = soxr.ResampleStream(info.sample_rate, MODEL_RATE, info.channels,
                                        dtype="float32")
    given = 0
    try:
        with sf.SoundFile(info.path) as source:
            while True:
                block = source.read(BLOCK, dtype="float32", always_2d=True)
                last = len(block) < BLOCK
                if resampler is not None:
                    block = resampler.resample_chunk(block, last=last)
                block = block[: want - given]
                given += len(block)
                if len(block):
                    yield block
                if last:
                    break
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise BadAudio(f"cannot decode {info.path}: {exc}") from exc
    if given < want:  # a decoder that delivers fewer frames than its header promised
        yield np.zeros((want - given, info.channels), dtype=np.float32)


def _read_blocks(info: AudioInfo) -> Iterator[np.ndarray]:
    """The input as stored: (n, channels) float32 blocks."""
    try:
        with sf.SoundFile(info.path) as source:
            while len(block := source.read(BLOCK, dtype="float32", always_2d=True)):
                yield block
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise BadAudio(f"cannot decode {info.path}: {exc}") from exc


def _to_rate(blocks: Iterable[np.ndarray], rate: int, out_rate: int,
             channels: int) -> Iterator[np.ndarray]:
    """A block stream resampled from ``rate`` to ``out_rate`` (flushed at its end)."""
    if rate == out_rate:
        yield from blocks
        return
    resampler = soxr.ResampleStream(rate, out_rate, channels, dtype="float32")
    for block in blocks:
        yield resampler.resample_chunk(block)
    yield resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True)


class _Rows:
    """Exactly ``count`` rows at a time from a block stream (silence once it ended)."""

    def __init__(self, blocks: Iterator[np.ndarray], channels: int):
        self._blocks = blocks
        self._buffer = np.zeros((0, channels), dtype=np.float32)

    def take(self, count: int) -> np.ndarray:
        parts, have = [self._buffer], len(self._buffer)
        while have < count:
            block = next(self._blocks, None)
            if block is None:
                parts.append(np.zeros((count - have, self._buffer.shape[1]), np.float32))
                break
            parts.append(block)
            have += len(block)
        rows = np.concatenate(parts) if len(parts) > 1 else self._buffer
        self._buffer = rows[count:]
        return rows[:count]

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()


class Unseen:
    """What the model never saw, at the output rate, to add to the residual: the input
    resampled straight to the output rate minus the input as the model saw it (at 48 kHz,
    exactly ``read_resampled``) resampled to the output rate. For a 192 kHz input that is
    everything above 24 kHz (plus the resamplers' own error), so target + residual is the
    input at its own rate, as the stereo side signal keeps the channels. Zero, and not
    needed, when the input or the output is at the model's rate."""

    def __init__(self, info: AudioInfo, out_rate: int):
        channels = info.channels
        self._direct = _Rows(_to_rate(_read_blocks(info), info.sample_rate, out_rate,
                                      channels), channels)
        self._seen = _Rows(_to_rate(read_resampled(info), MODEL_RATE, out_rate, channels),
                           channels)

    @staticmethod
    def needed(info: AudioInfo, out_rate: int) -> bool:
        return MODEL_RATE not in (info.sample_rate, out_rate)

    def take(self, count: int) -> np.ndarray:
        return self._direct.take(count) - self._seen.take(count)

    def close(self) -> None:
        self._direct.close()
        self._seen.close()


def input_rows(info: AudioInfo, out_rate: int) -> _Rows:
    """The input as stored, resampled straight to ``out_rate`` (float32 rows; ``take(n)``):
    the mix a stem split's ``other`` closes the sum to."""
    return _Rows(_to_rate(_read_blocks(info), info.sample_rate, out_rate, info.channels),
                 info.channels)


def read_chunks(info: AudioInfo, spans: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    """Each span ``[start, end)`` (model-rate samples, increasing starts) as (n, C) float32."""
    blocks = read_resampled(info)
    buffer = np.zeros((0, info.channels), dtype=np.float32)
    origin = 0  # absolute index of buffer[0]
    for k, (start, end) in enumerate(spans):
        while origin + len(buffer) < end:
            buffer = np.concatenate([buffer, next(blocks)])
        yield buffer[start - origin: end - origin].copy()
        keep_from = spans[k + 1][0] if k + 1 < len(spans) else end
        buffer = buffer[keep_from - origin:]
        origin = keep_from


def prefetch(items: Iterable, depth: int = 1) -> Iterator:
    """Run a producer ``depth`` items ahead in a thread (disk + resampling overlap compute)."""
    box: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("end", done))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            box.put(("error", exc))

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


class StreamWriter:
    """Resamples model-rate blocks to the output rate and writes them to a temp file."""

    def __init__(self, final_path: str, sample_rate: int, channels: int, frames: int,
                 file_format: str, subtype: str, extra: Unseen | None = None,
                 source_rate: int = MODEL_RATE):
        self.final_path = final_path
        self._extra = extra  # added to every written sample (the residual's unseen part)
        self.frames = frames  # exact output length
        self.channels = channels
        folder = os.path.dirname(os.path.abspath(final_path))
        os.makedirs(folder, exist_ok=True)
        self.tmp_path = os.path.join(folder, f".{os.path.basename(final_path)}.part{os.getpid()}")
        self._resampler = None
        if sample_rate != source_rate:  # blocks come at source_rate
            self._resampler = soxr.ResampleStream(source_rate, sample_rate, channels,
                                                  dtype="float32")
        self._written = 0
        self._file = sf.SoundFile(self.tmp_path, "w", samplerate=sample_rate, channels=channels,
                                  format=file_format.upper(), subtype=subtype)

    def write(self, block: np.ndarray, last: bool = False) -> None:
        data = np.ascontiguousarray(block, dtype=np.float32).reshape(-1, self.channels)
        if self._resampler is not None:
            data = self._resampler.resample_chunk(data, last=last)
        data = data[: self.frames - self._written]
        if len(data):
            self._put(data)

    def write_stored(self, data: np.ndarray) -> None:
        """Write output-rate rows as they are (float32, or int32 sample codes for PCM: no
        resampling, no conversion), up to the exact length."""
        data = data[: self.frames - self._written]
        if len(data):
            self._put(data)

    def _put(self, data: np.ndarray) -> None:
        if self._extra is not None:
            data = data + self._extra.take(len(data))
        self._write_file(data)
        self._written += len(data)

    def _write_file(self, data: np.ndarray) -> None:
        try:
            self._file.write(data)
        except sf.LibsndfileError as exc:
            # libsndfile reports ENOSPC as a bare "System error": check the disk ourselves.
            folder = os.path.dirname(self.tmp_path)
            if shutil.disk_usage(folder).free < data.nbytes + (1 << 16):
                raise OSError(errno.ENOSPC, f"no space left on device in {folder}") from exc
            raise

    def finish(self) -> str:
        """Pad to the exact length, close, fsync, rename; returns the sha256 (also recorded)."""
        if self._resampler is not None:
            self.write(np.zeros((0, self.channels), np.float32), last=True)
        if self._written < self.frames:
            self._put(np.zeros((self.frames - self._written, self.channels), np.float32))
        self._close_extra()
        self._file.close()
        with open(self.tmp_path, "rb") as written:
            os.fsync(written.fileno())
        digest = file_sha256(self.tmp_path)
        os.replace(self.tmp_path, self.final_path)
        write_atomic(self.final_path + SHA_SUFFIX, digest + "\n")
        return digest

    def _close_extra(self) -> None:
        if self._extra is not None:
            self._extra.close()
            self._extra = None

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._close_extra()
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.tmp_path)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def recorded_output(path: str) -> str | None:
    """The sha256 of a finished output when it exists and matches its record, else None."""
    try:
        with open(path + SHA_SUFFIX, encoding="utf-8") as record:
            wanted = record.read().strip()
        return wanted if os.path.isfile(path) and file_sha256(path) == wanted else None
    except (FileNotFoundError, NotADirectoryError):
        return None
