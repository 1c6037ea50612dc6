"""Local token discovery, redaction and the gated verdict mapping."""

from __future__ import annotations

import pytest

from remote_payload.protocol import exit_code_for
from remote_sep.errors import AuthFailed, RemoteSepError
from remote_sep.provision import gated
from remote_sep.provision.token import REDACTED, find_local_token, prompt_token, redact


@pytest.fixture(autouse=True)
def local_hf_home(monkeypatch, tmp_path):
    """huggingface_hub fixes its token path at import: point it at this test's HF_HOME."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "stored_tokens"))


def test_hf_token_env_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    (tmp_path / "token").write_text("hf_fromLoginCache")
    monkeypatch.setenv("HF_TOKEN", "hf_fromEnv")
    assert find_local_token() == ("hf_fromEnv", "HF_TOKEN")


def test_login_cache_is_used(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    (tmp_path / "token").write_text("hf_fromLoginCache\n")
    assert find_local_token() == ("hf_fromLoginCache", "huggingface_hub login cache")


def test_no_token_anywhere(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert find_local_token() == (None, "")


def test_prompt_refuses_without_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(AuthFailed, match="no Hugging Face token"):
        prompt_token(ask=lambda _: "hf_x")


def test_prompt_reads_hidden_input(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert prompt_token(ask=lambda _: " hf_typed \n") == "hf_typed"


def test_redact():
    assert redact("failed with hf_secret in it", "hf_secret") == f"failed with {REDACTED} in it"
    assert redact("nothing", None) == "nothing"


@pytest.mark.parametrize(("verdict", "kind", "text"), [
    ({"status": "gated"}, "gated", "https://huggingface.co/facebook/sam-audio-large"),
    ({"status": "auth"}, "auth", "huggingface.co/settings/tokens"),
    ({"status": "not_found"}, "unknown_model", "not found"),
    ({"status": "error", "http": 500}, "internal", "HTTP 500"),
])
def test_verdicts_map_to_kinds(verdict, kind, text):
    with pytest.raises(RemoteSepError) as err:
        gated.raise_for_verdict(verdict, "facebook/sam-audio-large")
    assert err.value.kind == kind and text in str(err.value)
    assert err.value.exit_code == exit_code_for(kind)


def test_ok_verdict_and_parsing():
    gated.raise_for_verdict({"status": "ok"}, "facebook/sam-audio-large")
    out = 'noise\nREMOTE_SEP_VERDICT {"status": "gated"}\n'
    assert gated.parse_verdict(out) == {"status": "gated"}
    assert gated.parse_verdict("garbage")["status"] == "error"
