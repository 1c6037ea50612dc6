"""``python -m remote_payload run --manifest M --events E [--inbox DIR]`` (see runner.py);
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
    fetch = commands.add_parser("prefetch", help="download the components a run needs into "
                                "the Hugging Face cache, with progress events on stdout")
    from .prefetch import add_arguments  # stdlib only at import time

    add_arguments(fetch)
    from . import ray_admin  # stdlib only at import time (ray loads when it runs)

    ray_admin.add_arguments(commands.add_parser(
        "ray", help="a Ray cluster: status (nodes, GPUs, actors) or down (stop the actors)"))
    args = parser.parse_args(argv)
    if args.command == "ray":
        return ray_admin.run(args)
    if args.command == "prefetch":
        from .prefetch import run as prefetch

        return prefetch(args)
    signal.signal(signal.SIGTERM, _stop)
    from .runner import run_job  # after parsing: --help needs neither numpy nor torch

    return run_job(args.manifest, args.events, args.inbox)


if __name__ == "__main__":
    sys.exit(main())
