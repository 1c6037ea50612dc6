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


def resolve_config(model_id: str, default: dict | None = None) -> dict:
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
    return resolve_config(model_id, DEFAULT_JUDGE_CONFIG)


def require_checkpoint(model_id: str) -> None:
    """The real ``SAMAudio`` load also reads ``checkpoint.pt`` from a folder (torch.load)."""
    if os.path.isdir(model_id):
        path = os.path.join(model_id, "checkpoint.pt")
        if not os.path.isfile(path):
            raise FileNotFoundError(2, "No such file or directory", path)
