"""Lean model load: build only what the run can use, weights memory-mapped and assigned in place.

The naive load (``SAMAudio.from_pretrained`` then ``.to(device, dtype)``, sam_audio 68b48d4
``model/base.py``) randomly initialises every parameter (one full fp32 copy in RAM), then
``torch.load``s the whole checkpoint (a second one), copies it over the first, and builds the
PE vision encoder (671 M parameters, 2.7 GB fp32: 18 % of large's checkpoint, 67 % of small's)
even when no video is given, where it only feeds zeros (``_get_video_features`` reads
nothing but ``vision_encoder.dim``). The lean load, same classes, same config:

- builds the model with ``torch.nn.init`` switched off (parameters are allocated but never
  written: untouched pages cost no RAM) except inside the components whose weights are not
  in the checkpoint (text encoder, rankers, span predictor), which load their own weights
  exactly as the naive path does;
- puts a :class:`LazyVisionEncoder` where the vision encoder goes: it has the real ``dim``
  and builds the real encoder from the same checkpoint on the first video it is given;
- ``torch.load(mmap=True, weights_only=True)`` and ``load_state_dict(assign=True)``: the
  parameters ARE the mapped checkpoint tensors (no copy); the key check is upstream's
  (``SAMAudio.load_state_dict``: every key but the text encoder's, the rankers' and the span
  predictor's must be there);
- casts each tensor to the run dtype on the host, then moves it (the rule of
  ``Module.to``), and drops the mapped pages of what it converted, so host RAM holds about
  one tensor at a time beyond what stays on the host.

Anything the lean path cannot do for a reason it recognises (a package without this
layout, a legacy checkpoint that cannot be mapped, keys that do not match) falls back to the
naive load with a warning; the naive load then gives the real error if there is one. Hub
errors and missing files are raised as they are (``Engine._hub_error`` maps them).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

from . import rankers

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
VISION = "vision_encoder"
# upstream SAMAudio.load_state_dict: these load from their own pretrained files, not the checkpoint
NOT_IN_CHECKPOINT = re.compile(r"(^text_encoder|^visual_ranker|^text_ranker|^span_predictor)")
# names SAMAudio.__init__ looks up in its module for the parts with their own pretrained weights
OWN_WEIGHTS = ("T5TextEncoder", "create_ranker", "PEAudioFrame", "PEAudioFrameTransform")


class LeanUnsupported(Exception):
    """The lean path cannot load this model; the naive path will (or will give the error)."""


def load_model(sam_cls: Any, model_id: str, overrides: dict[str, Any], dtype: Any, device: str,
               warn: Callable[[str], None], lean: bool = True) -> tuple[Any, dict[str, Any]]:
    """The model in eval mode, in ``dtype`` on ``device``, and the ``load`` event fields."""
    info: dict[str, Any] = {"loader": "naive", "components_off": sorted(overrides)}
    if lean and os.environ.get("REMOTE_SEP_NAIVE_LOAD") != "1":
        try:
            model, skipped = _lean(sam_cls, model_id, overrides, dtype, device)
        except LeanUnsupported as exc:
            if str(exc):  # an empty reason: this package has no lean layout at all (quiet)
                warn(f"lean model load not possible ({exc}); loading the naive way "
                     "(more host RAM, same output)")
                info["lean_fallback"] = str(exc)
        else:
            info.update(loader="lean", components_off=sorted([*overrides, *skipped]))
            return model, info
    model = sam_cls.from_pretrained(model_id, **overrides)
    return rankers.cast(model.eval(), device, dtype), info  # rankers stay fp32


def _lean(sam_cls: Any, model_id: str, overrides: dict[str, Any], dtype: Any,
          device: str) -> tuple[Any, list[str]]:
    module = sys.modules.get(sam_cls.__module__)
    config_cls = getattr(sam_cls, "config_cls", None)
    if module is None or config_cls is None or not hasattr(module, "PerceptionEncoder"):
        raise LeanUnsupported("")
    folder = _model_folder(sam_cls, model_id)
    with open(os.path.join(folder, CONFIG_FILE), encoding="utf-8") as fin:
        config = json.load(fin)
    config.update({k: v for k, v in overrides.items() if k in config})  # upstream's rule
    checkpoint = os.path.join(folder, CHECKPOINT_FILE)
    if not os.path.isfile(checkpoint):  # what the naive load raises (torch.load)
        raise FileNotFoundError(2, "No such file or directory", checkpoint)
    try:
        state = torch.load(checkpoint, mmap=True, weights_only=True, map_location="cpu")
    except RuntimeError as exc:  # e.g. a legacy (non-zip) checkpoint cannot be mapped
        raise LeanUnsupported(f"cannot memory-map {CHECKPOINT_FILE}: {exc}") from exc
    if not isinstance(state, dict):
        raise LeanUnsupported(f"{CHECKPOINT_FILE} holds no state dict")
    mapped = {t.untyped_storage().data_ptr() for t in state.values()}
    vision_state = {k[len(VISION) + 1:]: state.pop(k) for k in list(state)
                    if k.startswith(VISION + ".")}
    model = build_without_weights(sam_cls, config_cls(**config), vision_state, mapped)
    missing, unexpected = torch.nn.Module.load_state_dict(model, state, strict=False, assign=True)
    missing = [k for k in missing if not NOT_IN_CHECKPOINT.search(k)]
    if missing or unexpected:
        raise LeanUnsupported(f"checkpoint keys do not match the model (missing "
                              f"{missing[:3]}, unexpected {unexpected[:3]})")
    del state
    model.eval()
    with rankers.kept_fp32(model, device):  # bf16 ranker scores tie (rankers.py)
        cast_then_move(model, dtype, device, mapped)
    return model, [VISION]


def build_without_weights(sam_cls: Any, cfg: Any, vision_state: dict[str, Any] | None = None,
                          mapped: set[int] = frozenset()) -> Any:
    """``sam_cls(cfg)`` with nothing initialised but the parts with their own pretrained
    weights, and a :class:`LazyVisionEncoder` (fed ``vision_state``) for the vision encoder."""
    module = sys.modules[sam_cls.__module__]
    parts = {name: _with_init(getattr(module, name)) for name in OWN_WEIGHTS
             if hasattr(module, name)}
    real_vision = module.PerceptionEncoder
    parts["PerceptionEncoder"] = lambda vcfg: LazyVisionEncoder(real_vision, vcfg,
                                                                vision_state or {}, mapped)
    with _replaced(module, parts), _no_init():
        return sam_cls(cfg)


def _model_folder(sam_cls: Any, model_id: str) -> str:
    if os.path.isdir(model_id):
        return model_id
    try:
        from huggingface_hub import ModelHubMixin, snapshot_download
    except ImportError as exc:
        raise LeanUnsupported("") from exc
    if not issubclass(sam_cls, ModelHubMixin):  # the package resolves Hub ids its own way
        raise LeanUnsupported("")
    # the call upstream's BaseModel._from_pretrained makes (same errors, same cache)
    return snapshot_download(repo_id=model_id, revision=getattr(sam_cls, "revision", None))


# -- building without initialisation ---------------------------------------------------------

_INIT = threading.local()  # .skip: True while building, False inside the own-weights parts


def _init_functions() -> list[str]:
    init = torch.nn.init
    return [n for n in dir(init) if n.endswith("_") and not n.startswith("_")
            and callable(getattr(init, n))]


_ORIGINAL_INIT = {name: getattr(torch.nn.init, name) for name in _init_functions()}


def _skipping(original: Any) -> Any:
    def initialiser(tensor, *args, **kwargs):
        if getattr(_INIT, "skip", False):
            return tensor
        return original(tensor, *args, **kwargs)
    return initialiser


_SKIPPING = {name: _skipping(original) for name, original in _ORIGINAL_INIT.items()}


def _install(functions: dict[str, Any]) -> None:
    for name, function in functions.items():
        setattr(torch.nn.init, name, function)


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """``torch.nn.init``'s in-place initialisers become no-ops (the checkpoint overwrites all)."""
    _install(_SKIPPING)
    before = getattr(_INIT, "skip", False)
    _INIT.skip = True
    try:
        yield
    finally:
        _INIT.skip = before
        if not before:
            _install(_ORIGINAL_INIT)


def _with_init(factory: Any) -> Any:
    """``factory`` (a class, a function or a class with ``from_config``) run with init on."""
    def restore(call):
        def run(*args, **kwargs):
            before = getattr(_INIT, "skip", False)
            _INIT.skip = False
            try:
                return call(*args, **kwargs)
            finally:
                _INIT.skip = before
                # transformers' from_pretrained puts back the init functions it saw at its own
                # import time when it is done (no_init_weights): ours must go back in place
                _install(_SKIPPING)
        return run

    if hasattr(factory, "from_config"):  # PEAudioFrame(Transform).from_config(...)
        return type("InitOn", (), {"from_config": staticmethod(restore(factory.from_config))})
    return restore(factory)


@contextlib.contextmanager
def _replaced(module: Any, names: dict[str, Any]) -> Iterator[None]:
    originals = {name: getattr(module, name) for name in names}
    for name, value in names.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(module, name, value)


# -- the vision encoder, built on the first video ---------------------------------------------

class LazyVisionEncoder(torch.nn.Module):
    """Stands where the vision encoder goes: the real ``dim`` (all a text-only run reads), and
    the real encoder built from the same checkpoint tensors the first time a video comes."""

    def __init__(self, factory: Any, cfg: Any, state: dict[str, Any], mapped: set[int]):
        super().__init__()
        self.dim = cfg.dim
        self.batch_size = getattr(cfg, "batch_size", 0)
        self._factory, self._cfg, self._state, self._mapped = factory, cfg, state, mapped
        self.encoder: Any = None
        # follows model.to(): the dtype and device the real encoder must get
        self.register_buffer("_where", torch.zeros(1), persistent=False)

    def forward(self, videos: Any) -> Any:
        if self.encoder is None:
            self.encoder = self._build()
        return self.encoder(videos)

    def _build(self) -> Any:
        with torch.inference_mode(False):  # separate() runs in inference mode
            # built inside separate(), after the job seeded the RNG for its noise: building
            # draws from it (the real PE's torch.randn parameters, no nn.init), which would
            # shift the noise and change the output (seen with the real classes)
            with _no_init(), torch.random.fork_rng(devices=[]):
                encoder = self._factory(self._cfg)
            missing, unexpected = torch.nn.Module.load_state_dict(encoder, self._state,
                                                                  strict=False, assign=True)
            if missing or unexpected:
                raise RuntimeError(f"vision encoder keys do not match the checkpoint (missing "
                                   f"{missing[:3]}, unexpected {unexpected[:3]})")
            self._state = {}
            encoder.eval()
            cast_then_move(encoder, self._where.dtype, str(self._where.device), self._mapped)
        return encoder


# -- cast on the host, then move ---------------------------------------------------------------

def cast_then_move(model: Any, dtype: Any, device: str, mapped: set[int] = frozenset()) -> None:
    """``model.to(device, dtype)`` tensor by tensor, cast first; mapped pages dropped once read.

    ``mapped``: storage addresses of memory-mapped checkpoint tensors (see ``_drop_pages``).
    """
    def convert(tensor):
        wanted = dtype if tensor.is_floating_point() or tensor.is_complex() else None
        out = tensor if wanted is None else tensor.to(wanted)
        out = out.to(device)
        if (out.data_ptr() != tensor.data_ptr()
                and tensor.untyped_storage().data_ptr() in mapped):
            _drop_pages(tensor)
        return out

    model._apply(convert)  # what Module.to uses: same tensors converted, same rules
    _refresh_weight_norm(model)


def _refresh_weight_norm(model: Any) -> None:
    """The codec's old-style weight norm keeps a plain ``weight`` attribute, computed when it
    was built (fp32, on the host: the codec's size again) and recomputed before every forward.
    Computing it now, from the converted ``g`` and ``v``, frees the stale host copy; the
    forward recomputes it the same way, so nothing else changes."""
    from torch.nn.utils.weight_norm import WeightNorm

    with torch.no_grad():
        for module in model.modules():
            for hook in module._forward_pre_hooks.values():
                if isinstance(hook, WeightNorm):
                    setattr(module, hook.name, hook.compute_weight(module))


_LIBC: Any = None
MADV_DONTNEED = 4


def _drop_pages(tensor: Any) -> None:
    """Give back the whole pages inside a converted host tensor that nothing will read again.

    Only for tensors of a memory-mapped checkpoint (MAP_PRIVATE, never written): the kernel
    re-reads a dropped page from the file if anything touched it again, so this can only
    cost time. Other tensors are freed by torch when their last reference goes.
    """
    global _LIBC
    if sys.platform != "linux":
        return
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _LIBC = False
    if not _LIBC:
        return
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    page = mmap.PAGESIZE
    first, last = -(-start // page) * page, end // page * page  # whole pages inside only
    if last > first:
        _LIBC.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), MADV_DONTNEED)
