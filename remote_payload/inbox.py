"""The batch worker's inbox loop and how it runs items: ``Sequential`` (one at a time,
this process's model) or ``Concurrent`` (Ray mode: as many items at once as the cluster has
GPU actors, each item's batches spread over all of them).

Batch inbox protocol (``--inbox DIR``), for a worker that keeps its model loaded:

1. The manifest's own items (maybe none) run first; its ``settings`` apply to inbox items.
2. The laptop drops item files into ``DIR``: one JSON object per file in the format of
   ``manifest.item_to_json``, named ``<seq>-<id>.json`` and written atomically (temp name
   starting with ``.`` or not ending in ``.json``, then rename). Names sort in order of
   processing; files starting with ``.`` or not ending in ``.json`` are ignored.
3. The worker polls about every 0.2 s and, when it has a free slot (one; a Ray driver:
   one per GPU actor), takes the first name by renaming it into
   ``DIR/../taken/<name>`` (so a restarted worker never takes it again), then runs it.
   A file that is not a valid item gives an ``error`` event (kind ``bad_config``, item
   null, ``file`` = its name) and the worker goes on.
4. The worker exits (``bye``) once ``DIR/CLOSE`` exists and no item file is left in DIR.
5. Orphans: the laptop keeps ``DIR/../heartbeat`` fresh while it follows the events.
   Between items and while waiting, a worker whose heartbeat (before the first one: the
   moment the worker was ready to take items) is older than
   ``settings.worker_idle_timeout`` seconds (0: never) retires: the item it ran is
   finished, untaken items stay in DIR, a ``warning`` (code ``idle_timeout``), then ``bye``
   with ``retired: "idle"`` and exit code 0 (unless an item failed before).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from .engine import EngineError
from .manifest import Item, ManifestError, item_from_json
from .protocol import HEARTBEAT_FILE, WARNING

POLL_SECONDS = 0.2


class Sequential:
    """Each item runs to its end before the next is claimed."""

    def __init__(self, runner: Any):
        self.runner = runner

    def free(self) -> bool:
        return True

    def run(self, item: Item) -> None:
        self.runner.run_items([item])

    def drain(self) -> None:
        """Nothing in flight."""

    def abort(self) -> None:
        """Nothing in flight."""


class Concurrent:
    """Up to ``slots`` items at once, each on its own thread. A job-fatal EngineError in
    one of them stops the claiming and is raised again once the others have finished."""

    def __init__(self, runner: Any, slots: int):
        self.runner = runner
        self.slots = max(1, slots)
        self.threads: list[threading.Thread] = []
        self.fatal: EngineError | None = None
        self.lock = threading.Lock()

    def running(self) -> int:
        return len(self._alive())

    def _alive(self) -> list[threading.Thread]:
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()]
            return self.threads

    def free(self) -> bool:
        if self.fatal is not None:
            raise self.fatal
        return len(self._alive()) < self.slots

    def run(self, item: Item) -> None:
        def target() -> None:
            try:
                self.runner.run_items([item])
            except EngineError as exc:
                self.fatal = self.fatal or exc
            except KeyboardInterrupt:
                pass  # the main thread reports the stop

        thread = threading.Thread(target=target, name=f"item-{item.id}", daemon=True)
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def abort(self, timeout: float = 15.0) -> None:
        """Stop the engine's calls (they raise in their threads, which remove their temp
        outputs; ``runner.stopping`` keeps those from being reported as item failures: the
        stop is said once, by run_job) and wait a bounded while for them."""
        self.runner.stopping = True
        close = getattr(self.runner.engine, "close", None)
        if close is not None:
            close()
        self._join(timeout)

    def drain(self) -> None:
        self._join(None)
        if self.fatal is not None:
            raise self.fatal

    def _join(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._alive()):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


def run_inbox(runner: Any, inbox: str, dispatch: Sequential | Concurrent) -> None:
    """Claim item files in name order and hand them to DISPATCH until CLOSE (and an empty
    inbox) or the laptop's heartbeat goes stale; then wait for the items in flight."""
    job_dir = os.path.dirname(os.path.abspath(inbox))
    taken = os.path.join(job_dir, "taken")
    heartbeat = os.path.join(job_dir, HEARTBEAT_FILE)
    os.makedirs(inbox, exist_ok=True)
    os.makedirs(taken, exist_ok=True)
    runner.waiting_since = time.time()  # ready for items: the worker's own start
    try:
        while not orphaned(runner, heartbeat):
            if not dispatch.free():
                time.sleep(POLL_SECONDS / 4)
                continue
            names = _item_names(inbox)
            if not names:
                if os.path.exists(os.path.join(inbox, "CLOSE")) and not _item_names(inbox):
                    break
                time.sleep(POLL_SECONDS)
                continue
            claimed = os.path.join(taken, names[0])
            try:
                os.rename(os.path.join(inbox, names[0]), claimed)
            except FileNotFoundError:
                continue
            try:
                with open(claimed, encoding="utf-8") as source:
                    item = item_from_json(source.read())
            except (OSError, ManifestError) as exc:
                runner.error("bad_config", f"inbox file {names[0]}: {exc}", file=names[0])
                continue
            dispatch.run(item)
    except BaseException:
        dispatch.abort()  # a stop (signal): what runs gives up, its temp outputs removed
        raise
    dispatch.drain()


def _item_names(inbox: str) -> list[str]:
    return sorted(n for n in os.listdir(inbox) if n.endswith(".json") and not n.startswith("."))


def orphaned(runner: Any, heartbeat: str) -> bool:
    """Has the laptop been gone for ``worker_idle_timeout``? Then say so and retire."""
    limit = runner.settings.worker_idle_timeout
    if not limit:
        return False
    try:
        last = max(runner.waiting_since, os.stat(heartbeat).st_mtime)
    except FileNotFoundError:
        last = runner.waiting_since
    idle = time.time() - last
    if idle <= limit:
        return False
    runner.retired = "idle"
    runner.events.emit(WARNING, item=None, code="idle_timeout", message=(
        f"no heartbeat from the laptop for {idle:.0f} s (worker_idle_timeout {limit:g} s): "
        "the worker retires; finished outputs stay for a resume"))
    return True
