"""What a batch has to do: inputs (files, folders, globs, a YAML manifest) x descriptions
-> work units, each with its local output paths. Pure planning: no SSH, no threads.

A *unit* is one input file with one description: the smallest thing the fleet hands to a
host, so that a fast host takes more and a failure costs one description, not a whole file.
A stem split (``--stem``, repeatable, or ``stems:`` in the YAML) is one unit per file whose
roles are the stems and ``other`` (docs/split.md), named ``{stem}_{role}.{ext}`` by default.
"""

from __future__ import annotations

import glob
import json
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import soundfile
import yaml

from remote_sep.errors import BadAudio, ConfigError, RemoteSepError
from remote_sep.jobs.spans import check_spans_fit, spans_from_yaml
from remote_sep.jobs.split import output_kinds, stem_names

Spans = tuple[tuple[str, float, float], ...]  # span prompts of one input (jobs/spans.py)

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma"}
)
ROLES = ("target", "residual")
DEFAULT_TEMPLATE = "{stem}_{desc}_{role}.{ext}"  # the seed's <prefix>_target naming
SPLIT_TEMPLATE = "{stem}_{role}.{ext}"  # a stem split: song_vocals.wav … song_other.wav
TEMPLATE_FIELDS = frozenset({"stem", "desc", "role", "ext", "parent", "index", "description"})
# A folder entry holds 255 bytes; the pull's temp name beside an output adds 15
# (".NAME.part-1234abcd"), and it must fit too.
MAX_NAME_BYTES = 255 - len("..part-") - 8


@dataclass(frozen=True)
class Unit:
    """One input x one description, with where its two outputs land locally."""

    key: str  # stable across runs: input path + description (unit_key; the resume state's key)
    index: int  # position in the batch (display order, remote item ids)
    input: Path
    description: str
    outputs: dict[str, Path]  # role -> local output path
    stems: tuple[str, ...] = ()  # a stem split: the --stem texts in order (roles: their names)
    spans: Spans = ()  # the input's span prompts (--span, or the YAML item's spans:)

    @property
    def label(self) -> str:
        return f"{self.input.name} [{self.description}]"

    @property
    def stem_names(self) -> list[str]:
        return stem_names(list(self.stems))


@dataclass
class BatchPlan:
    units: list[Unit] = field(default_factory=list)
    out_dir: Path = Path(".")
    extension: str = "wav"


def slug(text: str) -> str:
    """A description as a file-name part: 'Female vocals!' -> 'female-vocals'."""
    cleaned = re.sub(r"[^\w]+", "-", text.strip().lower(), flags=re.UNICODE).strip("-_")
    return cleaned[:60] or "desc"


def expand_inputs(specs: list[str], base: Path | None = None) -> list[Path]:
    """Files, folders (recursive, audio extensions only) and globs -> sorted unique files."""
    found: dict[Path, None] = {}
    for spec in specs:
        path = Path(spec).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in AUDIO_EXTENSIONS:
                    found.setdefault(child.resolve(), None)
        elif path.is_file():
            found.setdefault(path.resolve(), None)
        elif glob.has_magic(str(path)):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise BadAudio(f"{spec}: the pattern matches no file")
            for match in files:
                found.setdefault(match.resolve(), None)
        else:
            raise BadAudio(f"{spec}: no such file or folder")
    return list(found)


def check_template(template: str) -> None:
    """Refuse unknown fields up front (a typo would otherwise fail after uploads)."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"--name-template {template!r}: {exc}") from exc
    unknown = names - TEMPLATE_FIELDS
    if unknown:
        raise ConfigError(
            f"--name-template {template!r}: unknown field(s) {sorted(unknown)}",
            hint=f"fields: {', '.join(sorted(TEMPLATE_FIELDS))}",
        )
    if "role" not in names:
        raise ConfigError(f"--name-template {template!r} needs {{role}} (target/residual)")


def load_manifest(path: Path) -> list[tuple[str, list[str]]]:
    """A batch YAML: ``items: [{input: a.wav, descriptions: [vocals, drums]}, …]``.

    ``input`` may be a file, a folder or a glob (relative to the YAML's folder);
    ``descriptions`` (or a single ``desc``) default to the command line's ``--desc``;
    ``stems: [vocals, drums]`` makes the item a stem split instead (``load_manifest_stems``);
    ``spans: ["+1.5:3", "-0:0.5"]`` (or ``[[+, 1.5, 3]]``) are its span prompts (default:
    the command line's ``--span``).
    """
    return [(spec, descs) for spec, descs, _ in load_manifest_stems(path)]


def load_manifest_stems(path: Path) -> list[tuple[str, list[str], list[str]]]:
    """``load_manifest`` with each item's ``stems`` (empty: not a split)."""
    return [entry[:3] for entry in load_manifest_items(path)]


def load_manifest_items(path: Path) -> list[tuple[str, list[str], list[str], Spans | None]]:
    """``load_manifest_stems`` with each item's ``spans`` (None: not given)."""
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the batch manifest ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    raw_items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(raw_items, list):
        raise ConfigError(f"{path}: needs a top-level 'items:' list")
    entries: list[tuple[str, list[str], list[str], Spans | None]] = []
    for i, raw in enumerate(raw_items):
        where = f"{path}: items[{i}]"
        if isinstance(raw, str):
            raw = {"input": raw}
        if not isinstance(raw, dict) or not isinstance(raw.get("input"), str):
            raise ConfigError(f"{where}: needs 'input: <file, folder or glob>'")
        unknown = set(raw) - {"input", "descriptions", "desc", "stems", "spans"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
        descs = raw.get("descriptions", raw.get("desc", []))
        if isinstance(descs, str):
            descs = [descs]
        if not isinstance(descs, list) or not all(isinstance(d, str) for d in descs):
            raise ConfigError(f"{where}: 'descriptions' must be a list of strings")
        stems = raw.get("stems", [])
        if not isinstance(stems, list) or not all(isinstance(d, str) for d in stems):
            raise ConfigError(f"{where}: 'stems' must be a list of strings")
        if stems and descs:
            raise ConfigError(f"{where}: give 'stems' (a split) or 'descriptions', not both")
        spans = None if raw.get("spans") is None else \
            tuple(tuple(s) for s in spans_from_yaml(raw["spans"], where))
        if spans and stems:
            raise ConfigError(f"{where}: 'spans' do not work with 'stems' (a split)")
        entries.append((str(path.parent / raw["input"]), descs, stems, spans))
    return entries


def plan_batch(
    inputs: list[str],
    descriptions: list[str],
    out_dir: Path,
    *,
    template: str | None = None,
    extension: str = "wav",
    manifest: Path | None = None,
    stems: list[str] | None = None,
    spans: Spans = (),
) -> BatchPlan:
    """Expand inputs and descriptions (or the stems of a split) into units with their
    output paths. ``template`` None: DEFAULT_TEMPLATE, SPLIT_TEMPLATE for a split.
    ``spans`` (the --span options, parsed) go with every input the YAML gives no spans of
    its own; not with a split (its stages run without anchors)."""
    for name in (template, DEFAULT_TEMPLATE if template is None else None):
        if name is not None:
            check_template(name)
    stems = list(stems or [])
    if stems and descriptions:
        raise ConfigError("give --stem (a split) or --desc, not both")
    if stems and spans:
        raise ConfigError("--span does not work with --stem (a split)")
    for desc in descriptions:
        if not desc.strip():
            raise ConfigError("--desc must not be empty", kind="bad_description")
    if stems:
        stem_names(stems)  # checked now: empty, 'other', two alike
    entries: list[tuple[list[Path], list[str], list[str], Spans]] = []
    if inputs:
        if not descriptions and not stems:
            raise ConfigError("give at least one --desc or --stem (or descriptions in "
                              "--manifest)")
        entries.append((expand_inputs(inputs), list(descriptions), stems, spans))
    if manifest is not None:
        for spec, descs, item_stems, own_spans in load_manifest_items(manifest):
            if item_stems:
                stem_names(item_stems)
            elif not descs:
                descs, item_stems = list(descriptions), stems
            if not descs and not item_stems:
                raise ConfigError(f"{manifest}: {spec} has no descriptions and no --desc given")
            item_spans = (() if item_stems else spans) if own_spans is None else own_spans
            entries.append((expand_inputs([spec]), descs, item_stems, item_spans))
    if not entries:
        raise ConfigError("nothing to do: give INPUTS or --manifest")
    plan = BatchPlan(out_dir=out_dir, extension=extension)
    taken: dict[Path, str] = {}
    seen: set[str] = set()
    for files, descs, split_stems, file_spans in entries:
        for file in files:
            _check_spans_fit(file, file_spans)
            jobs = [(" > ".join(split_stems), tuple(split_stems))] if split_stems else \
                [(desc, ()) for desc in descs]
            for desc, unit_stems in jobs:
                if not desc.strip():
                    raise ConfigError(f"{file}: empty description", kind="bad_description")
                key = unit_key(file, desc, unit_stems)
                if key in seen:
                    continue
                seen.add(key)
                unit_template = template or (SPLIT_TEMPLATE if unit_stems else DEFAULT_TEMPLATE)
                unit = _make_unit(len(plan.units), file, desc, out_dir, unit_template,
                                  extension, unit_stems, file_spans)
                for path in unit.outputs.values():
                    if path in taken:
                        raise ConfigError(
                            f"{unit.label} and {taken[path]} would both write {path}",
                            hint="use {parent} or {index} in --name-template",
                        )
                    taken[path] = unit.label
                plan.units.append(unit)
    if not plan.units:
        raise BadAudio("the inputs hold no audio file")
    return plan


def unit_key(file: Path, description: str, stems: tuple[str, ...] = ()) -> str:
    """A unit's key (resume state): ``path\ndescription`` as before when neither part holds
    a newline, else a JSON pair. A JSON pair holds no raw newline, so it never equals a
    plain key: plain keys alone made ('a\nb', 'c') and ('a', 'b\nc') one unit. A split's
    key is a JSON triple (never a plain key or a pair)."""
    path = str(file)
    if stems:
        return json.dumps([path, description, list(stems)])
    if "\n" in path or "\n" in description:
        return json.dumps([path, description])
    return f"{path}\n{description}"


def _check_spans_fit(file: Path, spans: Spans) -> None:
    """Spans must lie inside their file: its length read here, before anything runs."""
    if not spans:
        return
    try:
        info = soundfile.info(str(file))
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types
        raise BadAudio(f"{file}: spans are given but soundfile cannot read it ({exc})") from None
    check_spans_fit(spans, info.frames / info.samplerate, f"{file.name}")


def _make_unit(index: int, file: Path, desc: str, out_dir: Path, template: str, ext: str,
               stems: tuple[str, ...] = (), spans: Spans = ()) -> Unit:
    label = f"{file.name} [{desc}]"
    _check_storable(str(file), f"input {file.name!r}", BadAudio)
    _check_storable(desc, f"description {desc!r} of {file.name!r}", ConfigError)
    outputs = {}
    for role in (output_kinds(stem_names(list(stems))) if stems else ROLES):
        name = template.format(stem=file.stem, desc=slug(desc), role=role, ext=ext,
                               parent=file.parent.name, index=index, description=desc)
        _check_output_name(name, label)
        path = (out_dir / name).resolve()
        if out_dir.resolve() not in path.parents:
            raise ConfigError(f"--name-template puts {name!r} outside the output folder")
        outputs[role] = path
    return Unit(key=unit_key(file, desc, stems), index=index, input=file, description=desc,
                outputs=outputs, stems=stems, spans=spans)


def _check_storable(text: str, what: str, error: type[RemoteSepError]) -> None:
    """Names go into the UTF-8 resume state and item files: a name the file system gave
    us undecoded (not UTF-8) would fail there mid-batch, so refuse it now."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{what} is not valid UTF-8; rename it") from None


def _check_output_name(name: str, label: str) -> None:
    """Refuse an output name no folder can hold, before anything runs."""
    hint = "shorten --name-template (e.g. use {index}) or rename the input"
    if "\0" in name:
        raise ConfigError(f"{label}: output name {name!r} holds a NUL character", hint=hint)
    _check_storable(name, f"{label}: output name {name!r}", ConfigError)
    for part in Path(name).parts:
        size = len(part.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            raise ConfigError(f"{label}: output name {part!r} is {size} bytes; at most "
                              f"{MAX_NAME_BYTES} fit", hint=hint)


def relative_to(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)
