"""The Hugging Face token: found on the laptop, written to the host over SFTP, never shown.

Sources, in order: the `HF_TOKEN` environment variable, the local `hf auth login` cache
(`huggingface_hub.get_token()`, when installed), a hidden prompt. The token travels only as
file content (`Host.write_bytes`, mode 0600 in a 0700 dir) or on a remote process's stdin.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import sys
from collections.abc import Callable

from remote_sep.errors import AuthFailed

REDACTED = "<HF token redacted>"


def find_local_token() -> tuple[str | None, str]:
    """(token, where it came from) without prompting; (None, '') when there is none."""
    env = os.environ.get("HF_TOKEN", "").strip()
    if env:
        return env, "HF_TOKEN"
    try:
        from huggingface_hub import get_token  # optional: the `hf` extra
    except ImportError:
        return None, ""
    token = (get_token() or "").strip()
    return (token, "huggingface_hub login cache") if token else (None, "")


def prompt_token(ask: Callable[[str], str] = getpass.getpass) -> str:
    """Hidden prompt; refuses when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        raise AuthFailed(
            "no Hugging Face token found (HF_TOKEN unset, no `hf auth login` cache)",
            hint="set HF_TOKEN or run `hf auth login` on this machine, then rerun bootstrap",
        )
    token = ask("Hugging Face token (input hidden): ").strip()
    if not token:
        raise AuthFailed("no Hugging Face token given")
    return token


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def redact(text: str, token: str | None) -> str:
    """Text with every occurrence of the token replaced (for messages built from remote output)."""
    return text.replace(token, REDACTED) if token else text
