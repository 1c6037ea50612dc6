"""`remote-sep split`'s part of the job core (the rest is jobs/separate.py's): stem names
and the output names of a stem split. Pure: no I/O beyond path checks.

A split of ``song.wav`` with ``--stem vocals --stem "kick drum"`` writes
``<prefix>_vocals.<ext>``, ``<prefix>_kick-drum.<ext>`` and ``<prefix>_other.<ext>``;
the prefix is ``--out`` as given, ``DIR/<input stem>`` for ``--out DIR/`` (or an existing
folder), else ``<input stem>`` next to the input.
"""

from __future__ import annotations

import re
from pathlib import Path

from remote_payload.manifest import OTHER_STEM, STEM_NAME
from remote_sep.errors import ConfigError, RemoteSepError
from remote_sep.jobs import outputs


def stem_name(text: str) -> str:
    """'Lead Vocals!' -> 'lead-vocals' (the payload's STEM_NAME: ASCII, a file-name part)."""
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")[:40].rstrip("-")


def stem_names(stems: list[str]) -> list[str]:
    """One output name per --stem, checked: non-empty, distinct, not 'other'."""
    if not stems or any(not s.strip() for s in stems):
        raise RemoteSepError("every --stem needs a non-empty text description",
                             kind="bad_description")
    names = []
    for text in stems:
        name = stem_name(text)
        if not STEM_NAME.fullmatch(name or "-"):
            raise ConfigError(f"--stem {text!r}: its output name needs ASCII letters or digits",
                              hint="describe it in words with ASCII letters (the name of "
                                   "its file comes from them)")
        if name == OTHER_STEM:
            raise ConfigError(f"--stem {text!r}: 'other' is what is left after the stems",
                              hint="it is written anyway, as <prefix>_other")
        if name in names:
            raise ConfigError(f"--stem {text!r}: two stems would both write <prefix>_{name}",
                              hint="give each --stem a distinct description")
        names.append(name)
    return names


def split_prefix(audio: Path, out: str | None) -> Path:
    """The one output prefix of a split (see the module docstring)."""
    if out and not outputs.names_a_folder(out):
        return outputs.absolute(out)
    folder = outputs.absolute(out) if out else outputs.absolute(audio).parent
    return folder / audio.stem


def output_kinds(names: list[str]) -> list[str]:
    """What a split writes, in order: the stems, then other."""
    return [*names, OTHER_STEM]
