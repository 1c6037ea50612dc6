"""`bootstrap --prefetch`: run the payload's prefetch on the host and relay its progress.

The component table and the downloads live on the host side (remote_payload/components.py,
remote_payload/prefetch.py): only there can the model's config.json (which names the text
encoder, rankers and span predictor) and the cache be read. This module syncs the payload
code, starts `python -m remote_payload prefetch` on its own channel (Host.stream: progress
arrives while it runs), hands each event to `report` and turns the final error into one
RemoteSepError. The token is never passed: the host's token file (written by bootstrap's
token step) is what huggingface_hub reads there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from remote_payload.protocol import LineBuffer, parse_event_line
from remote_sep.errors import RemoteSepError
from remote_sep.hosts.base import Host
from remote_sep.hosts.shell import export_lines, quote, quote_argv
from remote_sep.provision import gated
from remote_sep.provision.payload_code import sync_payload
from remote_sep.provision.token import redact

Report = Callable[[dict[str, Any]], None]
TAIL_LINES = 20


@dataclass(frozen=True)
class PrefetchWants:
    """Which optional components to fetch besides the model and its text encoder."""

    rerank: bool = False
    predict_spans: bool = False
    score: bool = False
    video: bool = False

    def argv(self) -> list[str]:
        return [flag for flag, on in (("--rerank", self.rerank),
                                      ("--predict-spans", self.predict_spans),
                                      ("--score", self.score), ("--video", self.video)) if on]


def wants_for(defaults: Any, *, rerank: bool = False, predict_spans: bool = False,
              score: bool = False) -> PrefetchWants:
    """The flags, plus what the host's default Settings (the settings builder's answer for
    the profile alone: hosts.yaml fields and its --quality preset) already turn on."""
    return PrefetchWants(
        rerank=rerank or int(getattr(defaults, "rerank", 1) or 1) > 1,
        predict_spans=predict_spans or bool(getattr(defaults, "predict_spans", False)),
        score=score or bool(getattr(defaults, "score", False)))


def prefetch_script(python: str, payload: str, hf_home: str, model: str,
                    wants: PrefetchWants, prelude: str = "") -> str:
    argv = [python, "-m", "remote_payload", "prefetch", "--model", model, *wants.argv()]
    exports = "\n".join(export_lines([], {"HF_HOME": hf_home, "PYTHONPATH": payload}))
    return f"{prelude}{exports}\ncd {quote(payload)} && exec {quote_argv(argv)} 2>&1\n"


def run_prefetch(host: Host, *, base: str, python: str, hf_home: str, model: str,
                 wants: PrefetchWants, report: Report, prelude: str = "",
                 endpoint: str | None = None, token: str | None = None,
                 name: str = "HOST") -> dict[str, Any]:
    """Download what `model` and `wants` need into the host's cache; returns a summary.
    Raises RemoteSepError (kind from the payload: disk_full, gated, auth, transfer…)."""
    payload = sync_payload(host, base)
    stream = host.stream(prefetch_script(python, payload, hf_home, model, wants, prelude))
    buffer = LineBuffer()
    tail: list[str] = []
    error: dict[str, Any] | None = None
    summary: dict[str, Any] = {"components": [], "bytes": 0, "ok": False}
    try:
        while data := stream.read():
            for line in buffer.feed(data):
                parsed = parse_event_line(line)
                event = parsed.event
                if event is None or parsed.problem:
                    tail = (tail + [redact(line, token)])[-TAIL_LINES:]
                    continue
                kind = event.get("event")
                if kind == "error":
                    error = event
                elif kind == "bye":
                    summary["ok"] = bool(event.get("ok"))
                elif kind == "prefetch_plan":
                    summary["components"] = [c["name"] for c in event.get("components", [])]
                elif kind == "downloaded":
                    summary["bytes"] += int(event.get("bytes") or 0)
                report({**{k: v for k, v in event.items() if k not in ("v", "seq", "t")},
                        "event": f"prefetch_{kind}" if not kind.startswith("prefetch") else kind})
    finally:
        stream.close()
    if error is not None:
        error["message"] = str(error.get("message") or "").replace("bootstrap HOST",
                                                                   f"bootstrap {name}")
        _raise(error, model, endpoint)
    if not summary["ok"]:
        detail = "\n".join(tail) or "no output"
        raise RemoteSepError(f"the prefetch on the host ended without a result:\n{detail}",
                             hint="rerun `remote-sep bootstrap HOST --prefetch` (downloads "
                             "resume)", kind="not_provisioned")
    return summary


def _raise(error: dict[str, Any], model: str, endpoint: str | None) -> None:
    status = error.get("status")
    if status in ("gated", "auth", "not_found"):
        gated.raise_for_verdict({"status": status}, model, endpoint)
    kind = str(error.get("kind") or "internal")
    hint = None
    if kind == "disk_full":
        hint = "free space in the host's Hugging Face cache (or point hf_home at a bigger disk)"
    raise RemoteSepError(str(error.get("message") or "prefetch failed"), hint=hint, kind=kind)
