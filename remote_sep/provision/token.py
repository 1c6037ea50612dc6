"""The Hugging Face token: found on the laptop, written to the host over SFTP, never shown.

Sources, in order: the `HF_TOKEN` environment variable, the local `hf auth login` cache
file (read directly, as huggingface_hub resolves it: `$HF_TOKEN_PATH`, else
`$HF_HOME/token`, else `$XDG_CACHE_HOME/huggingface/token`, else
`~/.cache/huggingface/token`; no huggingface_hub needed on the laptop), a hidden prompt.
The token travels only as file content (`Host.write_bytes`, mode 0600 in a 0700 dir) or on
a remote process's stdin.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from remote_sep.errors import AuthFailed

REDACTED = "<HF token redacted>"


def login_cache_path() -> Path:
    """Where `hf auth login` keeps the token on this machine (the file need not exist)."""
    explicit = os.environ.get("HF_TOKEN_PATH", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME", "").strip()
    if home:
        return Path(home).expanduser() / "token"
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(cache).expanduser() / "huggingface" / "token"


def find_local_token() -> tuple[str | None, str]:
    """(token, where it came from) without prompting; (None, '') when there is none."""
    env = os.environ.get("HF_TOKEN", "").strip()
    if env:
        return env, "HF_TOKEN"
    path = login_cache_path()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None, ""
    return (token, f"the `hf auth login` cache ({path})") if token else (None, "")


def token_origin(remote_has_token: bool) -> str:
    """Where a bootstrap would take the token from, in words (never the token itself)."""
    token, where = find_local_token()
    if token:
        return where
    if remote_has_token:
        return "none here; the host already has one (kept)"
    if sys.stdin.isatty():
        return "a hidden prompt (no HF_TOKEN, no `hf auth login` cache here)"
    return "nowhere: no HF_TOKEN, no `hf auth login` cache, no terminal to ask on"


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
