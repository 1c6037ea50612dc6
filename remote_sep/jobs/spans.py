"""Span prompts on the command line and in a batch YAML: ``+T0:T1`` (the described sound is
there) / ``-T0:T1`` (it is not), times in seconds (``12.5``) or ``m:ss.s`` (``1:02.5``).

Pure: no I/O. Parsed into the payload's format ``[sign, start_s, end_s]`` and checked by
remote_payload/spans.py (the payload checks them again); ConfigError (exit 4) names the
option or the YAML entry and the span.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from remote_payload.spans import SIGNS, SpanError, check_spans, check_within
from remote_sep.errors import ConfigError

_SECONDS = r"\d+(?:\.\d*)?|\.\d+"
_TIME = re.compile(rf"(?:(\d+):(?=\d\d(?:\.|$)))?({_SECONDS})")
SYNTAX = "+T0:T1 or -T0:T1, times in seconds or m:ss.s (e.g. +12:15.5, -1:02.5:1:10)"


def parse_time(text: str) -> float | None:
    """'12.5' -> 12.5, '1:02.5' -> 62.5 (two-digit seconds below 60); None if neither."""
    found = _TIME.fullmatch(text.strip())
    if not found:
        return None
    minutes, seconds = found.group(1), float(found.group(2))
    if minutes is None:
        return seconds
    return None if seconds >= 60 else int(minutes) * 60 + seconds


def parse_span(text: str, where: str = "--span") -> list:
    """``'+1:02.5:1:10'`` -> ``['+', 62.5, 70.0]``; ConfigError names the span."""
    raw = text.strip()
    if not raw or raw[0] not in SIGNS:
        raise ConfigError(f"{where} {text!r}: starts with + (the sound is there) or - (it "
                          f"is not); use {SYNTAX}")
    sign, body = raw[0], raw[1:]
    parts = body.split(":")
    # T0:T1 where each time is seconds (no colon) or m:ss (one): try every split point
    splits = {(":".join(parts[:k]), ":".join(parts[k:])) for k in range(1, len(parts))}
    found = [(a, b) for a, b in ((parse_time(x), parse_time(y)) for x, y in splits)
             if a is not None and b is not None]
    if not found:
        raise ConfigError(f"{where} {text!r}: not a span; use {SYNTAX}")
    if len(set(found)) > 1:
        raise ConfigError(f"{where} {text!r} can be read more than one way; write both "
                          "times alike (seconds, or both m:ss)")
    start, end = found[0]
    return _checked([[sign, start, end]], where, text)[0]


def parse_spans(texts: Sequence[str], where: str = "--span") -> list[list]:
    return [parse_span(text, where) for text in texts]


def spans_from_yaml(raw: Any, where: str) -> list[list]:
    """A batch YAML item's ``spans:``: a list of ``"+T0:T1"`` strings or ``[sign, start,
    end]`` lists (seconds)."""
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: 'spans' must be a list like ['+1.5:3', '-0:0.5']")
    spans = []
    for index, entry in enumerate(raw):
        name = f"{where}: spans[{index}]"
        if isinstance(entry, str):
            spans.append(parse_span(entry, name))
        else:
            spans.append(_checked([entry], name, entry)[0])
    return spans


def check_spans_fit(spans: Sequence[Sequence], duration_s: float, where: str) -> None:
    """Every span inside the file (ConfigError: which span, how long the file is)."""
    for span in spans:
        try:
            check_within([span], duration_s, where)
        except SpanError as exc:
            raise ConfigError(str(exc).replace(f"{where}[0]: ", f"{where}: span ", 1),
                              hint="times are seconds of the input, from its start") from None


def check_not_predicted(spans: Sequence[Any], predict_spans: bool | None) -> None:
    """Given spans and --predict-spans at once: the given ones would win, say so instead."""
    if spans and predict_spans:
        raise ConfigError("--span and --predict-spans exclude each other: given spans are "
                          "used as they are (nothing is predicted)",
                          hint="drop --predict-spans, or drop the --span options")


def describe(spans: Sequence[Sequence[Any]]) -> str:
    """``[['+', 1, 2.5]]`` -> ``'+0:01.00-0:02.50'`` (the human summary)."""
    return ", ".join(f"{span[0] if len(span) == 3 else ''}{_clock(span[-2])}-"
                     f"{_clock(span[-1])}" for span in spans)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:05.2f}" if math.isfinite(seconds) else str(seconds)


def _checked(spans: list, where: str, shown: Any) -> list[list]:
    try:
        return check_spans(spans, where)
    except SpanError as exc:
        message = str(exc).replace(f"{where}[0]: ", "")
        raise ConfigError(f"{where} {shown!r}: {message}") from None
