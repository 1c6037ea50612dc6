"""``python -m remote_payload run --manifest M --events E [--inbox DIR] [--ray ADDRESS]``
(see runner.py, ray_runner.py); ``python -m remote_payload ray status|down`` (ray_admin.py);
``python -m remote_payload prefetch --model M [--rerank] [--predict-spans] [--score]``
(see prefetch.py)."""

from __future__ import annotations

import argparse
import signal
import sys


def _stop(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds: temp outputs are removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m remote_payload",
                                     description="SAM Audio separation payload (GPU side)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a job manifest, writing a JSON-lines event stream")
    run.add_argument("--manifest", required=True, help="job manifest (JSON, see manifest.py)")
    run.add_argument("--events", required=True, help="events file (appended, one JSON per line)")
    run.add_argument("--inbox", help="batch worker: also take item files from this folder")
    run.add_argument("--ray", metavar="ADDRESS", help="run the model on the GPU actors of "
                     "the Ray cluster at ADDRESS ('auto': the one this host belongs to)")
    run.add_argument("--ray-token-file", help="the cluster's auth token (used when the "
                     "environment names none)")
    run.add_argument("--ray-call-timeout", type=float, default=900.0,
                     help="seconds a GPU actor may take for one batch before the batch is "
                     "sent to another (an actor on a lost node)")
    admin = commands.add_parser("ray", help="the Ray cluster's GPU actors: status or down")
    admin.add_argument("action", choices=("status", "down"))
    admin.add_argument("--address", default="auto")
    admin.add_argument("--ray-token-file")
    fetch = commands.add_parser("prefetch", help="download the components a run needs into "
                                "the Hugging Face cache, with progress events on stdout")
    from .prefetch import add_arguments  # stdlib only at import time

    add_arguments(fetch)
    args = parser.parse_args(argv)
    if args.command == "prefetch":
        from .prefetch import run as prefetch

        return prefetch(args)
    if args.command == "ray":
        from .ray_admin import main as admin_main

        return admin_main(args)
    signal.signal(signal.SIGTERM, _stop)
    from .ray_runner import ray_options
    from .runner import run_job  # after parsing: --help needs neither numpy nor torch

    return run_job(args.manifest, args.events, args.inbox, ray_options(args))


if __name__ == "__main__":
    sys.exit(main())
