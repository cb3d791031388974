"""Which bundled encoding is a model's reference: OpenAI's names by tiktoken's table, Hugging Face ids."""

from __future__ import annotations

import pytest

from ccr_fast.tokens import encoding_for_model, hf_encoding, tiktoken_encoding


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
        "chatgpt-4o-latest",
        "gpt-4.1",
        "gpt-4.1-nano",
        "gpt-4.5-preview",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5.1-codex",
        "o1",
        "o1-mini",
        "o3",
        "o3-mini",
        "o4-mini",
        "o4-mini-2025-04-16",
        "gpt-oss-120b",
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",
        # as gateways and local servers spell them
        "openai/gpt-4o",
        "openai/gpt-oss-20b",
        "openai/gpt-oss-120b:free",
        "gpt-oss:20b",
        "GPT-4o",
    ],
)
def test_openai_models_that_use_o200k(model: str) -> None:
    assert encoding_for_model(model) == "o200k_base"


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4",
        "gpt-4-turbo",
        "gpt-3.5-turbo",
        "gpt-35-turbo",
        "text-davinci-003",  # p50k_base: not bundled, CCR's count as before
        "claude-sonnet-4-5",
        "deepseek-chat",
        "qwen3-coder-plus",
        "gemini-2.5-pro",
        "gpt-test",
        "o4",
        "",
    ],
)
def test_everything_else_counts_like_ccr(model: str) -> None:
    assert encoding_for_model(model) == "cl100k_base"


@pytest.mark.parametrize(
    ("name", "bundled"),
    [
        ("cl100k_base", "cl100k_base"),
        ("o200k_base", "o200k_base"),
        ("o200k_harmony", "o200k_base"),
        ("p50k_base", None),
        ("r50k_base", None),
        ("qwen", None),  # Qwen and DeepSeek are reached through huggingface settings
    ],
)
def test_tiktoken_encoding_names(name: str, bundled: str | None) -> None:
    assert tiktoken_encoding(name) == bundled


@pytest.mark.parametrize(
    ("model_id", "bundled"),
    [
        ("Qwen/Qwen2.5-Coder-32B-Instruct", "qwen"),
        ("Qwen/Qwen3-Coder-480B-A35B-Instruct", "qwen"),
        ("Qwen/QwQ-32B", "qwen"),
        ("qwen3-coder-plus", "qwen"),
        ("deepseek-ai/DeepSeek-V3", "deepseek_v3"),
        ("deepseek-ai/DeepSeek-V3.2-Exp", "deepseek_v3"),
        ("deepseek-ai/DeepSeek-R1-0528", "deepseek_v3"),
        ("deepseek-chat", "deepseek_v3"),
        ("deepseek-reasoner", "deepseek_v3"),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "qwen"),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", None),
        ("deepseek-ai/deepseek-coder-6.7b-instruct", None),
        ("meta-llama/Llama-3.3-70B-Instruct", None),
        ("google/gemma-3-27b-it", None),
        ("moonshotai/Kimi-K2-Instruct", None),
    ],
)
def test_hugging_face_ids_with_a_bundled_tokenizer(model_id: str, bundled: str | None) -> None:
    assert hf_encoding(model_id) == bundled
