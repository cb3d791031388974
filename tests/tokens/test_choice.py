"""Reading a provider's ``tokenizer`` setting (CCR v2's shape) into the counter that answers count_tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.tokens.hf_files import write_tokenizer_json

from ccr_fast.config import ProviderConfig, config_from_dict
from ccr_fast.tokens import counter_for, file_counter, tokenizer_file
from ccr_fast.tokens.choice import TokenizerChoice, local_counter, tokenizer_choice


def provider(tokenizer: dict[str, Any] | None, name: str = "p") -> ProviderConfig:
    entry: dict[str, Any] = {"name": name, "api_base_url": "https://p.example.test/v1/chat/completions"}
    entry["api_key"] = "sk-test"
    if tokenizer is not None:
        entry["tokenizer"] = tokenizer
    config = config_from_dict({"Providers": [entry], "Router": {"default": f"{name},m"}}, env={})
    found = config.provider(name)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("tokenizer", "model", "expected"),
    [
        # no setting: the model's own encoding when known, else CCR's
        (None, "gpt-4o", TokenizerChoice(encoding="o200k_base")),
        (None, "gpt-5-mini", TokenizerChoice(encoding="o200k_base")),
        (None, "deepseek-chat", TokenizerChoice()),
        (None, "claude-sonnet-4-5", TokenizerChoice()),
        # tiktoken
        (
            {"default": {"type": "tiktoken", "encoding": "o200k_base"}},
            "m",
            TokenizerChoice(encoding="o200k_base"),
        ),
        ({"default": {"type": "tiktoken", "encoding": "cl100k_base"}}, "gpt-4o", TokenizerChoice()),
        (
            {"default": {"type": "tiktoken", "encoding": "o200k_harmony"}},
            "m",
            TokenizerChoice(encoding="o200k_base"),
        ),
        ({"default": {"type": "tiktoken"}}, "gpt-4.1", TokenizerChoice(encoding="o200k_base")),
        ({"default": {}}, "m", TokenizerChoice()),
        # api keeps the model's encoding for its fallback
        ({"default": {"type": "api"}}, "gpt-4o", TokenizerChoice("api", "o200k_base")),
        ({"default": {"type": "api"}}, "claude-opus-4", TokenizerChoice("api")),
        # huggingface with a bundled tokenizer
        (
            {"default": {"type": "huggingface", "model": "Qwen/Qwen2.5-Coder-32B-Instruct"}},
            "qwen2.5-coder",
            TokenizerChoice(encoding="qwen"),
        ),
        (
            {"default": {"type": "huggingface", "model": "deepseek-ai/DeepSeek-V3.1"}},
            "deepseek-chat",
            TokenizerChoice(encoding="deepseek_v3"),
        ),
        # per model wins over default
        (
            {"default": {"type": "api"}, "models": {"local": {"type": "tiktoken", "encoding": "o200k_base"}}},
            "local",
            TokenizerChoice(encoding="o200k_base"),
        ),
        (
            {"default": {"type": "api"}, "models": {"other": {"type": "tiktoken"}}},
            "m",
            TokenizerChoice("api"),
        ),
    ],
)
def test_settings_that_are_followed(
    tokenizer: dict[str, Any] | None, model: str, expected: TokenizerChoice
) -> None:
    assert tokenizer_choice(provider(tokenizer), model) == expected


@pytest.mark.parametrize(
    ("entry", "model", "fallback", "problem"),
    [
        ({"type": "tiktoken", "encoding": "p50k_base"}, "m", "cl100k_base", "'p50k_base' is not bundled"),
        ({"type": "tiktoken", "encoding": "r50k_base"}, "gpt-4o", "o200k_base", "'r50k_base' is not bundled"),
        (
            {"type": "huggingface", "model": "meta-llama/Llama-3.3-70B-Instruct"},
            "llama",
            "cl100k_base",
            "is not bundled (Qwen's and DeepSeek-V3's are) and is never downloaded; give 'path'",
        ),
        ({"type": "huggingface"}, "m", "cl100k_base", "needs 'model'"),
        (
            {"type": "huggingface", "path": ""},
            "m",
            "cl100k_base",
            "'path' must be the path of a tokenizer.json",
        ),
        (
            {"type": "huggingface", "path": "/nonexistent/tokenizer.json"},
            "m",
            "cl100k_base",
            "does not exist",
        ),
        ({"type": "sentencepiece"}, "gpt-4o", "o200k_base", "unknown tokenizer type 'sentencepiece'"),
    ],
)
def test_settings_that_cannot_be_followed_name_why(
    entry: dict[str, Any], model: str, fallback: str, problem: str
) -> None:
    choice = tokenizer_choice(provider({"models": {model: entry}}, name="prov"), model)
    assert choice.kind == "local" and choice.encoding == fallback and choice.path is None
    assert choice.note is not None
    assert choice.note.startswith(f"provider 'prov', model '{model}': ")
    assert problem in choice.note and choice.note.endswith(f"counting with {fallback}")


def test_a_tokenizer_json_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tokenizer_json(tmp_path / "tokenizer.json")
    monkeypatch.chdir(tmp_path)
    choice = tokenizer_choice(
        provider({"default": {"type": "huggingface", "path": "tokenizer.json"}}), "gpt-4o"
    )
    assert choice == TokenizerChoice(encoding="o200k_base", path=path)
    assert not choice.counts_like_routing
    assert local_counter(choice) is file_counter(path)
    # path wins over model
    both = {"type": "huggingface", "path": str(path), "model": "Qwen/Qwen3-8B"}
    assert tokenizer_choice(provider({"default": both}), "m").path == path
    # without the tokenizers package the setting cannot be followed
    monkeypatch.setattr(tokenizer_file, "available", lambda: False)
    choice = tokenizer_choice(provider({"default": {"type": "huggingface", "path": str(path)}}), "m")
    assert choice.path is None and choice.note is not None and "ccr-fast[huggingface]" in choice.note


def test_local_counter_and_routing_reuse() -> None:
    assert TokenizerChoice().counts_like_routing
    assert TokenizerChoice("api").counts_like_routing
    assert not TokenizerChoice(encoding="o200k_base").counts_like_routing
    assert local_counter(TokenizerChoice(encoding="qwen")) is counter_for("qwen")
