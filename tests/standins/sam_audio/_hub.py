"""Where the stand-in meets the Hub: the real huggingface_hub errors, chosen by env vars."""

from __future__ import annotations

import json
import os

KNOWN_PREFIX = "facebook/sam-audio-"
DEFAULT_CONFIG = {
    "audio_codec": {"sample_rate": 48_000, "hop_length": 1920},
    "text_ranker": {"kind": "judge", "checkpoint_or_model_id": "facebook/sam-audio-judge"},
    "visual_ranker": {"kind": "imagebind"},
    "span_predictor": "pe-a-frame-large",
}


JUDGE_ID = "facebook/sam-audio-judge"
DEFAULT_JUDGE_CONFIG = {
    "audio_codec": {"sample_rate": 48_000, "hop_length": 1920},
    "transformer": {"max_position_embeddings": 10_000},
}


def _url(repo_id: str) -> str:
    return f"https://huggingface.co/{repo_id}"


def _listed(variable: str, model_id: str) -> bool:
    return model_id in os.environ.get(variable, "").split(",")


def resolve_config(model_id: str, default: dict | None = None,
                   revision: str | None = None) -> dict:
    """The config a real load would read (config.json), or the real Hub error."""
    from huggingface_hub.utils import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    default = DEFAULT_CONFIG if default is None else default
    if os.path.isdir(model_id):
        path = os.path.join(model_id, "config.json")
        with open(path, encoding="utf-8") as fin:
            return {**default, **json.load(fin)}
    if os.environ.get("SAM_STANDIN_HUB") == "1":
        from huggingface_hub import snapshot_download

        # base.py:36 (revision None; the judge's is "sam_audio"), offline-aware
        folder = snapshot_download(model_id, revision=revision)
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as fin:
            config = {**default, **json.load(fin)}
        require_checkpoint(folder)
        return config
    fail = os.environ.get("SAM_STANDIN_FAIL", "")
    if _listed("SAM_STANDIN_UNCACHED", model_id):  # this repo only: not cached, no Hub
        fail = "offline"
    elif _listed("SAM_STANDIN_GATED", model_id):
        fail = "gated"
    elif model_id == JUDGE_ID and fail not in ("offline", "auth"):
        fail = ""  # SAM_STANDIN_FAIL=gated/missing is about the separation model
    if fail == "gated":
        raise GatedRepoError(
            f"403 Client Error. Cannot access gated repo for url {_url(model_id)}/resolve/main/"
            f"config.json. Access to model {model_id} is restricted and you are not in the "
            "authorized list. Visit the model page to ask for access."
        )
    if fail == "offline":  # what the real load raises with no cache and no reachable Hub
        raise LocalEntryNotFoundError(
            "An error happened while trying to locate the files on the Hub and we cannot find "
            "the appropriate snapshot folder for the specified revision on the local disk. "
            "Please check your internet connection and try again.")
    if fail == "auth":
        import requests

        response = requests.Response()
        response.status_code = 401
        raise HfHubHTTPError("401 Client Error: Unauthorized. Invalid credentials in "
                             "Authorization header", response=response)
    if fail == "missing" or not model_id.startswith(KNOWN_PREFIX):
        raise RepositoryNotFoundError(
            f"404 Client Error. Repository Not Found for url: {_url(model_id)}/resolve/main/"
            "config.json. Please make sure you specified the correct `repo_id`."
        )
    return dict(default)


def judge_config(model_id: str) -> dict:
    """The judge's config.json (``facebook/sam-audio-judge`` revision sam_audio, or a folder)."""
    return resolve_config(model_id, DEFAULT_JUDGE_CONFIG, revision="sam_audio")


def require_checkpoint(model_id: str) -> None:
    """The real ``SAMAudio`` load also reads ``checkpoint.pt`` from a folder (torch.load)."""
    if os.path.isdir(model_id):
        path = os.path.join(model_id, "checkpoint.pt")
        if not os.path.isfile(path):
            raise FileNotFoundError(2, "No such file or directory", path)


def fetch_components(config: dict) -> None:
    """With SAM_STANDIN_HUB=1: read every component the real constructor reads from the Hub
    (or the cache, offline), after the overrides (None: not built, nothing read)."""
    if os.environ.get("SAM_STANDIN_HUB") != "1":
        return
    from huggingface_hub import hf_hub_download, snapshot_download

    encoder = (config.get("text_encoder") or {}).get("name") or "t5-base"
    if not os.path.isdir(encoder):  # text_encoder.py:14-15 (transformers from_pretrained)
        hf_hub_download(encoder, "config.json")
        hf_hub_download(encoder, "model.safetensors")
    span = config.get("span_predictor")
    if span and not os.path.isdir(span):  # model.py:96-101 -> pe.py:239
        folder = snapshot_download(f"facebook/{span}", revision="perception_models")
        _read(folder, "model.safetensors")
    for role in ("text_ranker", "visual_ranker"):
        _fetch_ranker(config.get(role), hf_hub_download, snapshot_download)


def _fetch_ranker(cfg, hf_hub_download, snapshot_download) -> None:
    if not isinstance(cfg, dict):
        return
    kind = cfg.get("kind")
    if kind == "ensemble":
        for sub, _weight in (cfg.get("rankers") or {}).values():
            _fetch_ranker(sub, hf_hub_download, snapshot_download)
    elif kind == "clap":  # ranking/clap.py: import laion_clap, then the weights
        import laion_clap  # noqa: F401  (the real ImportError when it is missing)

        if not cfg.get("checkpoint"):
            hf_hub_download("lukewys/laion_clap", "630k-best.pt")
        hf_hub_download("roberta-base", "config.json")
    elif kind == "judge":  # ranking/judge.py -> judge.py:37, processor.py:279
        repo = cfg.get("checkpoint_or_model_id") or "facebook/sam-audio-judge"
        _read(snapshot_download(repo, revision="sam_audio"), "checkpoint.pt")
        hf_hub_download(repo, "tokenizer_config.json")
    elif kind == "imagebind" and not cfg.get("checkpoint"):  # imagebind.py:160
        path = os.path.join(".checkpoints", "imagebind_huge.pth")
        if not os.path.isfile(path):
            from urllib.error import URLError

            raise URLError("stand-in: ImageBind would download imagebind_huge.pth here")


def _read(folder: str, name: str) -> None:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(2, "No such file or directory", path)
