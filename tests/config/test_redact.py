"""Redaction for GET /api/config: no secret survives, everything else reads as written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from ccr_fast.config import load_config, redact
from ccr_fast.config.model import freeze
from ccr_fast.config.redact import MASK, is_secret_key, mask, redact_text

VECTORS = Path(__file__).parent.parent / "vectors" / "config"

SECRETS = {
    "router": "ccr-router-7f3a9c",
    "deepseek": "sk-deepseek-4c1e8b7a2d9f6e30",
    "openrouter": "sk-or-v1-9a8b7c6d5e4f3a2b1c0d",
    "proxy_password": "pr0xy-Pa55word",
    "query_key": "AIzaSyQueryKey0123456789",
    "bearer": "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
    "token": "ghp_tokenvalue0123456789",
    "password": "db-password-123",
    "client_secret": "client-secret-abcdef",
    "list_key": "sk-in-a-list-000000000000",
    "numeric": "424242424242",
}


def secret_config() -> dict[str, Any]:
    return {
        "APIKEY": SECRETS["router"],
        "PROXY_URL": f"http://alice:{SECRETS['proxy_password']}@proxy.internal:3128",
        "Providers": [
            {
                "name": "deepseek",
                "api_base_url": "https://api.deepseek.com/chat/completions",
                "api_key": SECRETS["deepseek"],
                "models": ["deepseek-chat"],
                "transformer": {"use": [["maxtoken", {"max_tokens": 16384}]]},
                "tokenizer": {"default": {"type": "tiktoken"}},
            },
            {
                "name": "gemini",
                "api_base_url": f"https://generativelanguage.googleapis.com/v1beta/models?alt=sse&key={SECRETS['query_key']}",
                "apiKey": SECRETS["openrouter"],
                "headers": {"Authorization": SECRETS["bearer"], "X-Title": "ccr"},
                "api_keys": [SECRETS["list_key"], int(SECRETS["numeric"])],
            },
        ],
        "transformers": [
            {
                "path": "/plugins/x.py",
                "options": {"access_token": SECRETS["token"], "db": {"password": SECRETS["password"]}},
            }
        ],
        "oauth": {"client_secret": SECRETS["client_secret"], "enabled": True},
        "notes": f"fallback proxy is http://bob:{SECRETS['proxy_password']}@10.0.0.1:8080 when on VPN",
    }


def test_no_secret_survives_anywhere() -> None:
    dumped = orjson.dumps(redact(secret_config())).decode()
    for name, secret in SECRETS.items():
        assert secret not in dumped, name


def test_everything_that_is_not_secret_reads_as_written() -> None:
    out = redact(secret_config())
    assert out["Providers"][0]["api_base_url"] == "https://api.deepseek.com/chat/completions"
    assert out["Providers"][0]["transformer"] == {"use": [["maxtoken", {"max_tokens": 16384}]]}
    assert out["Providers"][0]["tokenizer"] == {"default": {"type": "tiktoken"}}
    assert out["Providers"][0]["models"] == ["deepseek-chat"]
    assert out["Providers"][1]["headers"]["X-Title"] == "ccr"
    assert out["oauth"]["enabled"] is True
    assert out["PROXY_URL"] == f"http://{MASK}@proxy.internal:3128"
    assert out["Providers"][1]["api_base_url"] == (
        f"https://generativelanguage.googleapis.com/v1beta/models?alt=sse&key={MASK}"
    )
    assert out["notes"] == f"fallback proxy is http://{MASK}@10.0.0.1:8080 when on VPN"


def test_long_secrets_keep_their_last_four_characters() -> None:
    out = redact(secret_config())
    assert out["Providers"][0]["api_key"] == MASK + SECRETS["deepseek"][-4:]
    assert out["APIKEY"] == MASK  # short: nothing shown
    assert out["Providers"][1]["api_keys"] == [MASK + SECRETS["list_key"][-4:], MASK]


def test_input_is_not_changed_and_output_is_plain_json() -> None:
    data = secret_config()
    before = orjson.dumps(data)
    out = redact(data)
    assert orjson.dumps(data) == before
    assert type(out) is dict
    assert type(out["Providers"]) is list


def test_works_on_a_frozen_snapshot() -> None:
    frozen = freeze(secret_config())
    out = redact(frozen)
    assert type(out["Providers"][0]) is dict
    assert SECRETS["deepseek"] not in orjson.dumps(out).decode()


def test_real_world_config_snapshot_redacts_every_env_secret() -> None:
    env = {
        "HOME": "/home/dev",
        "CCR_APIKEY": "router-secret-from-env-0001",
        "DEEPSEEK_API_KEY": "sk-env-deepseek-000000000000",
        "OPENROUTER_API_KEY": "sk-env-openrouter-00000000",
        "GEMINI_API_KEY": "AIza-env-gemini-0000000000",
        "SILICONFLOW_API_KEY": "sk-env-silicon-00000000000",
    }
    config = load_config(VECTORS / "ccr-realworld.json5", env=env)
    dumped = orjson.dumps(redact(config.raw)).decode()
    for name, value in env.items():
        if name != "HOME":
            assert value not in dumped, name
    assert "ollama" in dumped  # provider names and non-secret values stay


def test_unresolved_environment_references_stay_visible() -> None:
    out = redact({"api_key": "$DEEPSEEK_API_KEY", "token": "${MY TOKEN}"})
    assert out == {"api_key": "$DEEPSEEK_API_KEY", "token": "${MY TOKEN}"}


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "APIKEY",
        "apiKey",
        "x-api-key",
        "x-goog-api-key",
        "OPENAI_API_KEY",
        "api_keys",
        "key",
        "access_token",
        "refresh_token",
        "token",
        "Authorization",
        "password",
        "passwd",
        "client_secret",
        "secret",
        "private_key",
        "cookie",
        "credentials",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "max_tokens",
        "maxTokens",
        "tokenizer",
        "longContextThreshold",
        "cache_key",
        "keyboard",
        "monkey",
        "models",
        "name",
        "api_base_url",
        "use",
        "options",
        "PROXY_URL",
        "HOST",
    ],
)
def test_non_secret_keys(key: str) -> None:
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("short", MASK),
        ("", MASK),
        ("x" * 19, MASK),
        ("a" * 16 + "WXYZ", MASK + "WXYZ"),
        ("$API_KEY", "$API_KEY"),
    ],
)
def test_mask(value: str, masked: str) -> None:
    assert mask(value) == masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://api.deepseek.com/chat/completions", "https://api.deepseek.com/chat/completions"),
        ("http://user:pw@h:1/p", f"http://{MASK}@h:1/p"),
        ("http://token@h/p", f"http://{MASK}@h/p"),
        ("https://h/p?alt=sse&key=abc", f"https://h/p?alt=sse&key={MASK}"),
        ("https://h/p?api_key=abc&x=1", f"https://h/p?api_key={MASK}&x=1"),
        ("https://h/p?token=abc#frag", f"https://h/p?token={MASK}#frag"),
        ("https://h/p?max_tokens=5", "https://h/p?max_tokens=5"),
        ("no url here", "no url here"),
        ("two: http://a:b@x and https://c:d@y/", f"two: http://{MASK}@x and https://{MASK}@y/"),
    ],
)
def test_redact_text_masks_url_credentials(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_non_string_secrets_are_masked_but_flags_kept() -> None:
    assert redact({"password": 1234, "token": None, "secret": False}) == {
        "password": MASK,
        "token": None,
        "secret": False,
    }
