"""Which needed components are missing from this host's Hugging Face cache (GPU side).

Looks only at the cache (``huggingface_hub.try_to_load_from_cache``: the refs of the
revision, then the snapshot's files), never at the network. ``preflight`` is what a job
runs before its first item: with the Hub declared offline (``HF_HUB_OFFLINE``) a needed
component that is not cached fails the job at once, naming it and the prefetch command;
a needed component whose Python package is missing fails it whatever the network; and
when every needed component is cached the job loads offline (``go_offline``).
A Hub that is merely unreachable shows up at load time instead (huggingface_hub raises
``LocalEntryNotFoundError``), and ``describe_missing`` names the components there too.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

from .components import Component, needed, resolve_model

TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (constants.py: _is_true)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE


def model_config(model: str) -> dict | None:
    """The model's config.json from its folder or the cache; None when not readable here."""
    path: Any = os.path.join(model, "config.json") if os.path.isdir(model) else None
    if path is None:
        path = _cached(model, "config.json", None)
    if not isinstance(path, str) or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as source:
            config = json.load(source)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _hf_home() -> str:
    return os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache",
                                                     "huggingface")


def hub_cache_dir() -> str:
    """The Hub cache as the environment names it now (huggingface_hub's own constant is
    fixed when it is first imported, which may be before HF_HOME was set)."""
    return os.environ.get("HF_HUB_CACHE") or os.path.join(_hf_home(), "hub")


def checkpoint_dir() -> str:
    """Where URL components live, shared by every job: ImageBind downloads into the
    process's ``./.checkpoints/`` (imagebind_model.py imagebind_huge), so each job folder
    links its ``.checkpoints`` here (``link_checkpoints``) instead of fetching 4.5 GB again."""
    return os.path.join(_hf_home(), "remote-sep", "checkpoints")


def link_checkpoints(cwd: str) -> None:
    """``cwd/.checkpoints`` -> the shared folder (kept if the job folder already has one)."""
    link = os.path.join(cwd, ".checkpoints")
    if os.path.lexists(link):
        return
    os.makedirs(checkpoint_dir(), exist_ok=True)
    os.symlink(checkpoint_dir(), link)


def is_cached(comp: Component, cwd: str = ".") -> bool:
    """Every file the loader reads is in the cache (one of each entry's alternatives)."""
    if comp.url:
        folders = (checkpoint_dir(), os.path.join(cwd, ".checkpoints"))
        return all(any(os.path.isfile(os.path.join(d, f)) for d in folders for f in alts)
                   for alts in comp.files)
    return all(any(_cached(comp.repo, name, comp.revision) for name in alternatives)
               for alternatives in comp.files)


def _valid(repo: str | None) -> bool:
    if repo is None:
        return True
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(repo)
    except Exception:
        return False
    return True


def _cached(repo: str | None, name: str, revision: str | None) -> str | None:
    """The cached file's path, else None (a malformed id is for the load to report)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(repo, name, revision=revision, cache_dir=hub_cache_dir())
    except Exception:  # ImportError, HFValidationError for an id that is no repo id
        return None
    return path if isinstance(path, str) else None


def missing_packages(components: list[Component]) -> list[Component]:
    return [c for c in components
            if c.package and importlib.util.find_spec(c.package) is None]


def missing_components(settings: Any, cwd: str = ".") -> tuple[list[Component], bool]:
    """(needed components not in the cache, whether the model's config could be read)."""
    model = resolve_model(settings.model)
    config = model_config(model)
    comps = needed(settings, config)
    return [c for c in comps if not is_cached(c, cwd)], config is not None


def describe(missing: list[Component], config_known: bool = True) -> str:
    names = "; ".join(f"{c.name} ({c.where})" for c in missing)
    flags = sorted({c.flag for c in missing if c.flag})
    command = "remote-sep bootstrap HOST --prefetch" + "".join(f" {f}" for f in flags)
    more = "" if config_known else " (and whatever else its config.json names)"
    return f"{names}{more}; download them first with `{command}`"


PACKAGE_FOR = {"laion_clap": "the CLAP text ranker", "imagebind": "the ImageBind visual ranker"}


def package_problem(name: str | None) -> str | None:
    """The message for a component's missing Python package (None: not one of them)."""
    if name not in PACKAGE_FOR:
        return None
    return (f"the Python package {name} (for {PACKAGE_FOR[name]}) is not installed on this "
            "host; install it into the host's venv (sam_audio's own dependencies include it: "
            "rerun `remote-sep bootstrap HOST`)")


def describe_packages(missing: list[Component]) -> str:
    packages = sorted({c.package for c in missing if c.package})
    return "; ".join(package_problem(p) or f"the Python package {p} is not installed"
                     for p in packages)


def preflight(settings: Any, cwd: str = ".") -> tuple[str, str] | None:
    """(kind, message) when the job cannot load what it needs; None when it can try."""
    model = resolve_model(settings.model)
    comps = needed(settings, model_config(model))
    packages = missing_packages(comps)
    if packages:
        return "not_provisioned", describe_packages(packages)
    if any(c.url for c in comps):
        link_checkpoints(cwd)
    missing, known = missing_components(settings, cwd)
    if not missing:
        go_offline()
        return None
    if not hub_offline() or not all(_valid(c.repo) for c in missing):
        # (an id that is no repo id at all is the load's unknown_model, not a missing part)
        return None  # the load fetches what is missing (or says the Hub is unreachable)
    return "not_provisioned", ("the Hub is offline on this host (HF_HUB_OFFLINE) and its "
                               "Hugging Face cache lacks " + describe(missing, known))


def go_offline() -> None:
    """Every file the load reads is cached: load with HF_HUB_OFFLINE, no Hub round trip.
    (Without it an unreachable Hub costs huggingface_hub's HEAD retries, 1+2+4+8+8 s per
    file the loaders touch, before it falls back to the very same cache.) Set for this
    process before sam_audio/transformers are imported; huggingface_hub's constants are
    already loaded (try_to_load_from_cache), so they are switched too."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    constants.HF_HUB_OFFLINE = True


def describe_missing(settings: Any, cwd: str = ".") -> str | None:
    """For a load that found the Hub unreachable: what is missing, or None if nothing is."""
    missing, known = missing_components(settings, cwd)
    return describe(missing, known) if missing else None
