"""Ask the Hub, from the host's venv, whether the token may read the model.

The snippet runs with the remote venv's own huggingface_hub (so the remote's HF_ENDPOINT,
proxy and CA settings apply) and reads the token from stdin; an empty stdin falls back to
the remote token file. It prints one JSON verdict line; the laptop maps it to an error kind.
"""

from __future__ import annotations

import json

from remote_sep.errors import AuthFailed, RemoteSepError

HUB = "https://huggingface.co"

# stdlib + huggingface_hub only; never prints the token.
CHECK_SNIPPET = """\
import json, sys
token = sys.stdin.read().strip() or None
repo = sys.argv[1]
from huggingface_hub import HfApi
from huggingface_hub.utils import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
try:
    HfApi().auth_check(repo, token=token)
    verdict = {"status": "ok"}
except GatedRepoError:
    verdict = {"status": "gated"}
except RepositoryNotFoundError:
    verdict = {"status": "auth" if token is None else "not_found"}
except HfHubHTTPError as exc:
    code = getattr(exc.response, "status_code", None)
    verdict = {"status": "auth" if code == 401 else "error", "http": code}
except Exception as exc:
    verdict = {"status": "error", "error": type(exc).__name__}
print("REMOTE_SEP_VERDICT " + json.dumps(verdict))
"""


def model_page(repo: str) -> str:
    """Where access is requested: always the Hub itself (mirrors do not grant access)."""
    return f"{HUB}/{repo}"


def parse_verdict(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("REMOTE_SEP_VERDICT "):
            try:
                return json.loads(line.split(" ", 1)[1])
            except json.JSONDecodeError:
                break
    return {"status": "error", "error": "no verdict from the access check"}


def raise_for_verdict(verdict: dict, repo: str, endpoint: str | None = None) -> None:
    """One clear message and kind per outcome; returns when the token can read the model."""
    status = verdict.get("status")
    page = model_page(repo)
    if status == "ok":
        return
    if status == "gated":
        raise RemoteSepError(
            f"your Hugging Face account has no access yet to the gated model {repo}",
            hint=f"request access on {page} (accept the terms), wait for approval, then rerun",
            kind="gated",
        )
    if status == "auth":
        raise AuthFailed(
            "the Hugging Face token was rejected (invalid or expired)",
            hint="create a read token at https://huggingface.co/settings/tokens and set "
            "HF_TOKEN or run `hf auth login`, then rerun bootstrap",
        )
    if status == "not_found":
        raise RemoteSepError(f"model {repo} not found on the Hub ({page})", kind="unknown_model")
    detail = verdict.get("error") or f"HTTP {verdict.get('http')}"
    raise RemoteSepError(f"could not check access to {repo} on the Hub ({detail})",
                         hint=f"check the host's network access to {endpoint or HUB}")
