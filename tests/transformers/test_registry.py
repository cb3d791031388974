"""Transformer names: CCR's spellings, case-insensitive lookup, and what `GET /api/transformers` lists."""

from __future__ import annotations

import pytest

from ccr_fast.transformers import REGISTRY, describe_transformers
from ccr_fast.transformers.builtin import (
    AnthropicTransformer,
    CleancacheTransformer,
    CustomParamsTransformer,
    DeepseekTransformer,
    MaxTokenTransformer,
    OpenAITransformer,
)
from ccr_fast.transformers.registry import NOT_YET_AVAILABLE, lookup

#: what the core release must implement
CORE_BUILTINS = {
    "Anthropic",
    "OpenAI",
    "deepseek",
    "openrouter",
    "groq",
    "maxtoken",
    "cleancache",
    "streamoptions",
    "customparams",
    "gemini",
}
#: every transformer name CCR ships (llms v1.0.53)
CCR_NAMES = CORE_BUILTINS | {
    "vertex-gemini",
    "vertex-claude",
    "tooluse",
    "enhancetool",
    "reasoning",
    "sampling",
    "maxcompletiontokens",
    "cerebras",
    "vercel",
    "openai-responses",
    "forcereasoning",
    "extrathinktag",
}


def test_registry_holds_ccrs_builtin_names_exactly() -> None:
    assert set(REGISTRY) >= CORE_BUILTINS
    # every CCR name is either implemented or recognised as pending, and nothing else is registered
    assert set(REGISTRY) | NOT_YET_AVAILABLE == CCR_NAMES
    for name, cls in REGISTRY.items():
        assert cls.name == name


def test_implemented_and_not_yet_available_names_do_not_overlap() -> None:
    folded = {name.lower() for name in REGISTRY}
    assert not folded & {name.lower() for name in NOT_YET_AVAILABLE}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Anthropic", AnthropicTransformer),
        ("anthropic", AnthropicTransformer),
        ("ANTHROPIC", AnthropicTransformer),
        ("OpenAI", OpenAITransformer),
        ("openai", OpenAITransformer),
        ("DeepSeek", DeepseekTransformer),
        ("MaxToken", MaxTokenTransformer),
        ("cleancache", CleancacheTransformer),
        ("CustomParams", CustomParamsTransformer),
    ],
)
def test_lookup_finds_exact_and_case_folded_names(name: str, expected: type) -> None:
    assert lookup(name) is expected


@pytest.mark.parametrize("name", ["", "gemini-pro", "tool-use", "open-ai", "deepseek ", "nope"])
def test_lookup_returns_none_for_names_it_does_not_implement(name: str) -> None:
    assert lookup(name) is None


def test_describe_lists_every_builtin_then_the_pending_ones_sorted() -> None:
    listed = describe_transformers()
    names = [entry["name"] for entry in listed]
    assert names[: len(REGISTRY)] == list(REGISTRY)
    assert names[len(REGISTRY) :] == sorted(NOT_YET_AVAILABLE)
    for entry in listed:
        assert set(entry) == {"name", "endpoint", "description", "available"}


def test_describe_marks_endpoints_and_availability() -> None:
    by_name = {entry["name"]: entry for entry in describe_transformers()}
    assert by_name["Anthropic"]["endpoint"] == "/v1/messages"
    assert by_name["OpenAI"]["endpoint"] == "/v1/chat/completions"
    assert by_name["deepseek"]["endpoint"] is None
    assert all(by_name[name]["available"] is True for name in REGISTRY)
    assert all(by_name[name]["available"] is False for name in NOT_YET_AVAILABLE)
    assert all(by_name[name]["endpoint"] is None for name in NOT_YET_AVAILABLE)


def test_describe_uses_the_first_docstring_line_of_each_builtin() -> None:
    by_name = {entry["name"]: entry for entry in describe_transformers()}
    for name in REGISTRY:
        description = by_name[name]["description"]
        assert description and "\n" not in description
    assert by_name["deepseek"]["description"].startswith("DeepSeek:")
    assert "8192" in by_name["deepseek"]["description"]
