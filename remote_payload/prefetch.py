"""``python -m remote_payload prefetch``: download every component a run needs (GPU side).

Run by ``remote-sep bootstrap --prefetch`` with the host's venv (stdlib + huggingface_hub;
the token is the host's own token file, never an argument). Events go to stdout as JSON
lines of the one protocol (protocol.py): ``prefetch_plan`` (components, their sizes from
the Hub's metadata, what is already cached, the free disk), then per component
``download`` (bytes so far, total, rate; about twice a second) and ``downloaded``; an
``error`` (kind, message) on failure; ``bye`` last.

Order: the model's config.json first (it names the text encoder, rankers and span
predictor), then every size, then the disk check BEFORE any big download (``disk_full``
with the figures), then the downloads. An interrupted download leaves huggingface_hub's
``blobs/<etag>.incomplete``; the next run resumes it with an HTTP Range request, so
hf_transfer (which deletes partial files, file_download.py ``_download_to_tmp_and_move``)
is used only for components with no partial file; hf_xet is used by huggingface_hub
itself when the repo is on Xet storage and the package is importable. A plain-URL component
(ImageBind) goes to the shared checkpoint folder (hub_cache.checkpoint_dir) the same way:
``<file>.incomplete``, a Range resume, its length checked before the rename.
"""

from __future__ import annotations

import argparse
import errno
import fnmatch
import importlib.util
import json
import os
import shutil
import sys
import threading
import time
import urllib.request
from types import SimpleNamespace
from typing import Any

from .components import Component, needed, resolve_model
from .hub_cache import checkpoint_dir
from .protocol import (
    BYE,
    DOWNLOAD,
    DOWNLOADED,
    ERROR,
    PREFETCH_PLAN,
    EventWriter,
    exit_code_for,
)

PROGRESS_S = 0.5
# huggingface_hub writes a download in chunks of constants.DOWNLOAD_CHUNK_SIZE (10 MiB):
# 1 MiB shows progress on small and slow links too, at no cost in throughput over HTTP.
HTTP_CHUNK = 2**20
# Room kept free beyond the files themselves (the cache's refs, snapshots' links, logs).
DISK_MARGIN = 64 * 2**20


class Failed(Exception):
    def __init__(self, kind: str, message: str, **extra: Any):
        super().__init__(message)
        self.kind, self.message, self.extra = kind, message, extra


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="small, base, large[-tv] or a repo id")
    parser.add_argument("--rerank", action="store_true", help="also the rankers")
    parser.add_argument("--predict-spans", action="store_true", help="also the span predictor")
    parser.add_argument("--score", action="store_true", help="also the judge")
    parser.add_argument("--video", action="store_true", help="runs with a video (-tv)")


def run(args: argparse.Namespace) -> int:
    events = EventWriter(None, mirror=sys.stdout)
    settings = SimpleNamespace(model=resolve_model(args.model), rerank=2 if args.rerank else 1,
                               predict_spans=args.predict_spans, score=args.score,
                               video=args.video)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # stdout carries events only
    transfer = importlib.util.find_spec("hf_transfer") is not None
    if transfer:  # read when huggingface_hub is imported; switched per component below
        os.environ.setdefault("HF_HUB_ENABLE_HF_TRANSFER", "1")
    try:
        Prefetch(settings, events, transfer).run()
        code = 0
    except Failed as exc:
        events.emit(ERROR, item=None, desc=None, kind=exc.kind, message=exc.message, **exc.extra)
        code = exit_code_for(exc.kind)
    events.emit(BYE, ok=code == 0, exit_code=code)
    return code


class Prefetch:
    def __init__(self, settings: Any, events: EventWriter, transfer: bool):
        import huggingface_hub

        self.hub = huggingface_hub
        self.settings = settings
        self.events = events
        self.transfer = transfer
        self.api = huggingface_hub.HfApi()
        self.cache = huggingface_hub.constants.HF_HUB_CACHE

    def run(self) -> None:
        config = self._guard(self._config, f"model {self.settings.model}", model=True)
        comps = needed(self.settings, config)
        plans = [self._guard(lambda c=c: self._sizes(c) if c.repo else self._url_size(c),
                             c.name, model=c is comps[0]) for c in comps]
        os.makedirs(self.cache, exist_ok=True)
        free = shutil.disk_usage(self.cache).free
        missing = sum(p["missing_bytes"] for p in plans)
        total = sum(p["bytes"] for p in plans)
        self.events.emit(PREFETCH_PLAN, cache=self.cache, free_bytes=free, total_bytes=total,
                         missing_bytes=missing, backend=self._backend(),
                         components=[{k: v for k, v in p.items() if k != "comp"} for p in plans])
        if missing + DISK_MARGIN > free:
            raise Failed("disk_full", (
                f"not enough disk for the prefetch: {_gb(missing)} still to download "
                f"(of {_gb(total)}) plus {_gb(DISK_MARGIN)} headroom, but only {_gb(free)} "
                f"free in {self.cache}; free space there (or set hf_home in hosts.yaml to a "
                "bigger disk) and rerun"), needed_bytes=missing + DISK_MARGIN, free_bytes=free)
        for plan in plans:
            self._guard(lambda p=plan: self._download(p), plan["name"])

    # -- steps ----------------------------------------------------------------------------
    def _config(self) -> dict:
        model = self.settings.model
        path = (os.path.join(model, "config.json") if os.path.isdir(model)
                else self.hub.hf_hub_download(model, "config.json"))
        with open(path, encoding="utf-8") as source:
            return json.load(source)

    def _sizes(self, comp: Component) -> dict[str, Any]:
        info = self.api.model_info(comp.repo, revision=comp.revision, files_metadata=True)
        files = {s.rfilename: int(s.size or 0) for s in info.siblings or []
                 if comp.patterns is None
                 or any(fnmatch.fnmatch(s.rfilename, p) for p in comp.patterns)}
        cached = {name for name in files
                  if isinstance(self.hub.try_to_load_from_cache(
                      comp.repo, name, revision=comp.revision), str)}
        partial = self._partial_bytes(comp)
        missing = max(0, sum(size for name, size in files.items() if name not in cached)
                      - partial)
        return {"comp": comp, "name": comp.name, "where": comp.where, "files": len(files),
                "bytes": sum(files.values()), "missing_bytes": missing,
                "partial_bytes": partial}

    def _download(self, plan: dict[str, Any]) -> None:
        comp: Component = plan["comp"]
        resume = plan["partial_bytes"] > 0
        # hf_transfer deletes .incomplete files: a resume goes over plain HTTP (Range)
        fast = self.transfer and not resume
        self.hub.constants.HF_HUB_ENABLE_HF_TRANSFER = fast
        self.hub.constants.DOWNLOAD_CHUNK_SIZE = 10 * 2**20 if fast else HTTP_CHUNK
        started = time.monotonic()
        base = self._blob_bytes(comp)
        stop = threading.Event()

        def progress() -> None:
            last = -1
            while not stop.wait(PROGRESS_S):
                done = self._blob_bytes(comp) - base
                if done != last:
                    last = done
                    self._progress(plan, done, started)

        watcher = threading.Thread(target=progress, daemon=True)
        watcher.start()
        try:
            if comp.url:
                self._fetch_url(comp)
            else:
                self.hub.snapshot_download(comp.repo, revision=comp.revision,
                                           allow_patterns=list(comp.patterns) if comp.patterns
                                           else None)
        finally:
            stop.set()
            watcher.join()
        done = self._blob_bytes(comp) - base
        seconds = time.monotonic() - started
        self.events.emit(DOWNLOADED, component=comp.name, where=comp.where, bytes=done,
                         seconds=round(seconds, 3), resumed=resume,
                         rate_bps=round(done / seconds) if seconds > 0 else None)

    def _progress(self, plan: dict[str, Any], done: int, started: float) -> None:
        seconds = max(time.monotonic() - started, 1e-6)
        self.events.emit(DOWNLOAD, component=plan["name"], done=done,
                         total=plan["missing_bytes"], rate_bps=round(done / seconds))

    # -- plain URLs (ImageBind): the shared checkpoint folder ------------------------------
    def _url(self, comp: Component) -> str:
        # a mirror for hosts that cannot reach dl.fbaipublicfiles.com (and for the tests)
        return os.environ.get("REMOTE_SEP_IMAGEBIND_URL") or comp.url or ""

    def _dest(self, comp: Component) -> str:
        return os.path.join(checkpoint_dir(), comp.files[0][0])

    def _url_size(self, comp: Component) -> dict[str, Any]:
        dest = self._dest(comp)
        with urllib.request.urlopen(urllib.request.Request(self._url(comp), method="HEAD"),
                                    timeout=30) as answer:
            size = int(answer.headers.get("Content-Length") or 0)
        done = os.path.isfile(dest) and os.path.getsize(dest) == size
        partial = 0 if done else _size_of(dest + ".incomplete")
        return {"comp": comp, "name": comp.name, "where": comp.where, "files": 1, "bytes": size,
                "missing_bytes": 0 if done else max(0, size - partial),
                "partial_bytes": partial}

    def _fetch_url(self, comp: Component) -> None:
        """Stream to <dest>.incomplete (resumed with Range), then rename into place."""
        dest = self._dest(comp)
        if os.path.isfile(dest):
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        part = dest + ".incomplete"
        start = _size_of(part)
        request = urllib.request.Request(self._url(comp))
        if start:
            request.add_header("Range", f"bytes={start}-")
        with urllib.request.urlopen(request, timeout=60) as answer:
            resumed = bool(start) and answer.status == 206  # 200: a server without Range
            length = answer.headers.get("Content-Length")
            expected = (start if resumed else 0) + int(length) if length else None
            with open(part, "ab" if resumed else "wb") as out:
                while block := answer.read(HTTP_CHUNK):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
                got = out.tell()
        if expected is not None and got != expected:  # a cut connection reads as a short EOF
            raise ConnectionError(f"the connection closed after {got} of {expected} bytes")
        os.replace(part, dest)

    # -- cache folders ----------------------------------------------------------------------
    def _blobs(self, comp: Component) -> str:
        return os.path.join(self.cache, "models--" + (comp.repo or "").replace("/", "--"),
                            "blobs")

    def _blob_bytes(self, comp: Component) -> int:
        if comp.url:
            return _size_of(self._dest(comp)) + _size_of(self._dest(comp) + ".incomplete")
        folder = self._blobs(comp)
        if not os.path.isdir(folder):
            return 0
        total = 0
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    total += entry.stat().st_size
                except OSError:
                    pass
        return total

    def _partial_bytes(self, comp: Component) -> int:
        folder = self._blobs(comp)
        if not os.path.isdir(folder):
            return 0
        return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)
                   if n.endswith(".incomplete"))

    def _backend(self) -> str:
        if self.transfer:
            return "hf_transfer"
        return "http (hf_xet for Xet repos)" if importlib.util.find_spec("hf_xet") else "http"

    # -- errors -------------------------------------------------------------------------------
    def _guard(self, step: Any, what: str, model: bool = False) -> Any:
        """Run one step; the Hub's errors become one clear failure naming ``what``."""
        from huggingface_hub.utils import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )

        try:
            return step()
        except GatedRepoError as exc:
            raise Failed("gated", f"no access to the gated {what}", status="gated") from exc
        except RepositoryNotFoundError as exc:
            kind = "unknown_model" if model else "not_provisioned"
            raise Failed(kind, f"{what} not found on the Hub (or the token cannot see it)",
                         status="not_found" if model else "error") from exc
        except LocalEntryNotFoundError as exc:
            raise Failed("not_provisioned", f"the host cannot reach the Hub for {what} "
                         f"({_first_line(exc)}); check its network or HF_ENDPOINT") from exc
        except HfHubHTTPError as exc:
            code = getattr(exc.response, "status_code", None)
            if code == 401:
                raise Failed("auth", "the Hugging Face token was refused (401)",
                             status="auth") from exc
            raise Failed("transfer", f"{what}: {_first_line(exc)}") from exc
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise Failed("disk_full", f"disk full while downloading {what} into "
                             f"{self.cache}: {exc}") from exc
            raise Failed("transfer", self._stopped(what, exc)) from exc
        except Exception as exc:  # requests' ChunkedEncodingError, ConnectionError, ...
            raise Failed("transfer", self._stopped(what, exc)) from exc

    def _stopped(self, what: str, exc: BaseException) -> str:
        return (f"the download of {what} stopped ({type(exc).__name__}: {_first_line(exc)}); "
                "rerun `remote-sep bootstrap HOST --prefetch`: it resumes where it stopped")


def _size_of(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
