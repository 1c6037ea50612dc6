"""Local token discovery, redaction and the gated verdict mapping."""

from __future__ import annotations

import pytest

from remote_payload.protocol import exit_code_for
from remote_sep.errors import AuthFailed, RemoteSepError
from remote_sep.provision import gated
from remote_sep.provision.token import REDACTED, find_local_token, prompt_token, redact


@pytest.fixture(autouse=True)
def no_token_env(monkeypatch):
    for name in ("HF_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


def test_hf_token_env_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    (tmp_path / "token").write_text("hf_fromLoginCache")
    monkeypatch.setenv("HF_TOKEN", "hf_fromEnv")
    assert find_local_token() == ("hf_fromEnv", "HF_TOKEN")


def test_login_cache_is_used(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    (tmp_path / "token").write_text("hf_fromLoginCache\n")
    token, where = find_local_token()
    assert token == "hf_fromLoginCache" and str(tmp_path / "token") in where


def test_login_cache_is_read_without_huggingface_hub(monkeypatch, tmp_path):
    """The laptop needs no huggingface_hub: the cache file is read where `hf auth login`
    writes it (HF_TOKEN_PATH, then HF_HOME, then XDG_CACHE_HOME, then ~/.cache)."""
    import subprocess
    import sys

    (tmp_path / "xdg" / "huggingface").mkdir(parents=True)
    (tmp_path / "xdg" / "huggingface" / "token").write_text("hf_xdg\n")
    (tmp_path / "home" / ".cache" / "huggingface").mkdir(parents=True)
    (tmp_path / "home" / ".cache" / "huggingface" / "token").write_text("hf_home\n")
    (tmp_path / "explicit").write_text("hf_explicit")
    code = ("import sys; sys.modules['huggingface_hub'] = None\n"
            "from remote_sep.provision.token import find_local_token\n"
            "print(find_local_token()[0])")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}

    def token(**extra: str) -> str:
        return subprocess.run([sys.executable, "-c", code], env={**env, **extra},
                              capture_output=True, text=True, check=True).stdout.strip()

    assert token() == "hf_home"
    assert token(XDG_CACHE_HOME=str(tmp_path / "xdg")) == "hf_xdg"
    assert token(XDG_CACHE_HOME=str(tmp_path / "xdg"), HF_HOME=str(tmp_path / "nohf")) == "None"
    assert token(HF_TOKEN_PATH=str(tmp_path / "explicit"),
                 HF_HOME=str(tmp_path / "xdg" / "huggingface")) == "hf_explicit"


def test_token_origin_names_the_source_never_the_token(monkeypatch, tmp_path):
    from remote_sep.provision.token import token_origin

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert "host already has one" in token_origin(True)
    assert token_origin(False).startswith("nowhere")
    (tmp_path / "token").write_text("hf_secretvalue")
    assert "hf auth login" in token_origin(False) and "hf_secret" not in token_origin(False)
    monkeypatch.setenv("HF_TOKEN", "hf_envsecret")
    assert token_origin(False) == "HF_TOKEN"


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
