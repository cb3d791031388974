"""Each built-in transformer on its own: what it does to the plan, and what its body hooks do to a request.

Where a transformer only tunes the OpenAI dialect, the effect is also checked on a real translation
(``anthropic_to_openai``), since the dialect flag is only a means to that end.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ccr_fast.protocol.openai_request import anthropic_to_openai
from ccr_fast.transformers.base import PlanBuilder, Transformer, deep_merge
from ccr_fast.transformers.builtin import (
    AnthropicTransformer,
    CleancacheTransformer,
    CustomParamsTransformer,
    DeepseekTransformer,
    GroqTransformer,
    MaxTokenTransformer,
    OpenAITransformer,
    OpenrouterTransformer,
    StreamOptionsTransformer,
    strip_cache_control,
)


def configured(*steps: Transformer) -> PlanBuilder:
    builder = PlanBuilder()
    for step in steps:
        step.configure(builder)
    return builder


def run_anthropic_hooks(builder: PlanBuilder, body: dict[str, Any]) -> dict[str, Any]:
    for hook in builder.anthropic_hooks:
        hook(body)
    return body


def translate(builder: PlanBuilder, body: dict[str, Any]) -> dict[str, Any]:
    out = anthropic_to_openai(body, model="up-model", dialect=builder.dialect)
    for hook in builder.upstream_hooks:
        hook(out)
    return out


def request(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": 32000,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(extra)
    return body


# --- endpoints ------------------------------------------------------------------------------------------


def test_anthropic_sets_the_endpoint_and_defaults_to_x_api_key() -> None:
    builder = configured(AnthropicTransformer())
    assert builder.endpoint == "anthropic"
    assert builder.use_bearer is False
    assert builder.headers == {}
    assert builder.anthropic_hooks == [] and builder.upstream_hooks == []


def test_anthropic_options_use_bearer_and_user_agent() -> None:
    builder = configured(AnthropicTransformer({"useBearer": True, "userAgent": "my-agent/1.0"}))
    assert builder.use_bearer is True
    assert builder.headers == {"user-agent": "my-agent/1.0"}


@pytest.mark.parametrize("ua", ["", 42, None])
def test_anthropic_ignores_an_empty_or_non_string_user_agent(ua: Any) -> None:
    assert configured(AnthropicTransformer({"userAgent": ua})).headers == {}


def test_openai_sets_the_openai_endpoint_and_nothing_else() -> None:
    builder = configured(OpenAITransformer())
    assert builder.endpoint == "openai"
    assert builder.dialect == PlanBuilder().dialect
    assert builder.anthropic_hooks == [] and builder.upstream_hooks == []


def test_the_last_endpoint_transformer_wins() -> None:
    assert configured(AnthropicTransformer(), OpenAITransformer()).endpoint == "openai"
    assert configured(OpenAITransformer(), AnthropicTransformer()).endpoint == "anthropic"


def test_non_endpoint_transformers_leave_the_endpoint_unset() -> None:
    builder = configured(DeepseekTransformer(), GroqTransformer(), CleancacheTransformer())
    assert builder.endpoint is None


# --- deepseek -------------------------------------------------------------------------------------------


def test_deepseek_caps_max_tokens_at_8192_and_sends_reasoning_content() -> None:
    builder = configured(DeepseekTransformer())
    assert builder.dialect.max_tokens_cap == 8192
    assert builder.dialect.reasoning_out == "reasoning_content"
    assert translate(builder, request(max_tokens=32000))["max_tokens"] == 8192
    assert translate(builder, request(max_tokens=100))["max_tokens"] == 100


def test_deepseek_keeps_a_lower_cap_set_earlier_in_the_chain() -> None:
    builder = configured(MaxTokenTransformer({"max_tokens": 1000}), DeepseekTransformer())
    assert builder.dialect.max_tokens_cap == 1000


def test_deepseek_replays_thinking_as_reasoning_content() -> None:
    body = request(
        messages=[
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "let me think", "signature": "s"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
        ]
    )
    out = translate(configured(DeepseekTransformer()), body)
    assistant = next(m for m in out["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_content"] == "let me think"


# --- maxtoken -------------------------------------------------------------------------------------------


def test_maxtoken_only_lowers_max_tokens() -> None:
    builder = configured(MaxTokenTransformer({"max_tokens": 4096}))
    assert builder.dialect.max_tokens_cap == 4096
    assert run_anthropic_hooks(builder, request(max_tokens=10000))["max_tokens"] == 4096
    assert run_anthropic_hooks(builder, request(max_tokens=100))["max_tokens"] == 100
    assert run_anthropic_hooks(builder, request(max_tokens=4096))["max_tokens"] == 4096


def test_maxtoken_leaves_a_body_without_max_tokens_alone() -> None:
    builder = configured(MaxTokenTransformer({"max_tokens": 4096}))
    body = request()
    del body["max_tokens"]
    assert "max_tokens" not in run_anthropic_hooks(builder, body)


def test_maxtoken_never_raises_an_earlier_cap() -> None:
    builder = configured(DeepseekTransformer(), MaxTokenTransformer({"max_tokens": 20000}))
    assert builder.dialect.max_tokens_cap == 8192
    assert translate(builder, request(max_tokens=30000))["max_tokens"] == 8192


@pytest.mark.parametrize("value", [0, -5, True, 1.5, "100", None])
def test_maxtoken_rejects_anything_but_a_positive_integer(value: Any) -> None:
    with pytest.raises(ValueError, match="max_tokens must be a positive integer"):
        configured(MaxTokenTransformer({"max_tokens": value}))


def test_maxtoken_without_options_is_an_error() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        configured(MaxTokenTransformer())


# --- cleancache -----------------------------------------------------------------------------------------


def cached_body() -> dict[str, Any]:
    mark = {"type": "ephemeral"}
    return {
        "model": "m",
        "cache_control": dict(mark),
        "system": [{"type": "text", "text": "sys", "cache_control": dict(mark)}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": dict(mark)}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": dict(mark)}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "x", "name": "t", "input": {}, "cache_control": mark}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "x",
                        "cache_control": dict(mark),
                        "content": [
                            {"type": "text", "text": "r", "cache_control": dict(mark)},
                            {"type": "image", "source": {}, "cache_control": dict(mark)},
                        ],
                    }
                ],
            },
            {"role": "user", "content": "plain string content"},
        ],
    }


def contains_key(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(contains_key(v, key) for v in node.values())
    if isinstance(node, list):
        return any(contains_key(v, key) for v in node)
    return False


def test_cleancache_strips_every_cache_control_marker() -> None:
    body = cached_body()
    assert contains_key(body, "cache_control")
    run_anthropic_hooks(configured(CleancacheTransformer()), body)
    assert not contains_key(body, "cache_control")


def without_key(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return {k: without_key(v, key) for k, v in node.items() if k != key}
    if isinstance(node, list):
        return [without_key(v, key) for v in node]
    return node


def test_cleancache_changes_nothing_else() -> None:
    body = cached_body()
    expected = without_key(copy.deepcopy(body), "cache_control")
    strip_cache_control(body)
    assert body == expected
    assert body["messages"][2]["content"][0]["content"][0] == {"type": "text", "text": "r"}
    assert body["messages"][3]["content"] == "plain string content"


def test_strip_cache_control_tolerates_odd_shapes() -> None:
    body: dict[str, Any] = {
        "system": "a string system prompt",
        "tools": None,
        "messages": ["not a dict", {"role": "user", "content": ["not a block", {"type": "text"}]}],
    }
    strip_cache_control(body)
    assert body["messages"][1]["content"] == ["not a block", {"type": "text"}]


def test_cleancache_is_registered_as_an_anthropic_side_hook() -> None:
    builder = configured(CleancacheTransformer())
    assert len(builder.anthropic_hooks) == 1 and builder.upstream_hooks == []


# --- groq -----------------------------------------------------------------------------------------------


def schema_tool() -> dict[str, Any]:
    return {
        "name": "lookup",
        "cache_control": {"type": "ephemeral"},
        "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "q": {"type": "string", "$schema": "nested"},
                "filters": {
                    "type": "array",
                    "items": [{"type": "object", "$schema": "in-a-list", "properties": {}}],
                },
            },
        },
    }


def test_groq_strips_schema_keyword_at_every_depth() -> None:
    out = translate(configured(GroqTransformer()), request(tools=[schema_tool()]))
    params = out["tools"][0]["function"]["parameters"]
    assert not contains_key(params, "$schema")
    assert params["properties"]["q"] == {"type": "string"}
    assert params["properties"]["filters"]["items"] == [{"type": "object", "properties": {}}]


def test_groq_output_has_no_cache_control_either() -> None:
    out = translate(configured(GroqTransformer()), request(tools=[schema_tool()]))
    assert not contains_key(out, "cache_control")


def test_without_groq_the_schema_keyword_is_forwarded() -> None:
    out = translate(PlanBuilder(), request(tools=[schema_tool()]))
    assert "$schema" in out["tools"][0]["function"]["parameters"]


def test_groq_hook_tolerates_tools_without_functions() -> None:
    builder = configured(GroqTransformer())
    body: dict[str, Any] = {"tools": ["junk", {"type": "function"}, {"function": {"parameters": "x"}}]}
    for hook in builder.upstream_hooks:
        hook(body)
    assert body["tools"] == ["junk", {"type": "function"}, {"function": {"parameters": "x"}}]


# --- streamoptions --------------------------------------------------------------------------------------


def test_streamoptions_include_usage_defaults_on() -> None:
    builder = configured(StreamOptionsTransformer())
    assert translate(builder, request(stream=True))["stream_options"] == {"include_usage": True}


def test_streamoptions_include_usage_false_drops_stream_options() -> None:
    builder = configured(StreamOptionsTransformer({"include_usage": False}))
    assert builder.dialect.include_usage is False
    assert "stream_options" not in translate(builder, request(stream=True))


# --- customparams ---------------------------------------------------------------------------------------


def test_customparams_deep_merges_into_the_openai_body() -> None:
    options = {"temperature": 0.1, "provider": {"order": ["a"], "sort": "price"}}
    builder = configured(
        OpenrouterTransformer({"provider": {"order": ["z"], "allow_fallbacks": False}}),
        CustomParamsTransformer(options),
    )
    assert builder.anthropic_hooks == []
    out = translate(builder, request())
    assert out["temperature"] == 0.1
    assert out["provider"] == {"order": ["a"], "allow_fallbacks": False, "sort": "price"}


def test_customparams_on_the_anthropic_endpoint_merges_into_the_forwarded_body() -> None:
    options = {"metadata": {"team": "x"}, "top_k": 5}
    builder = configured(AnthropicTransformer(), CustomParamsTransformer(options))
    body = run_anthropic_hooks(builder, request(metadata={"user_id": "u"}))
    assert body["metadata"] == {"user_id": "u", "team": "x"}
    assert body["top_k"] == 5


def test_customparams_merges_copies_so_requests_cannot_change_the_options() -> None:
    options = {"extra": {"list": [1, 2]}}
    builder = configured(AnthropicTransformer(), CustomParamsTransformer(options))
    first = run_anthropic_hooks(builder, request())
    first["extra"]["list"].append(3)
    second = run_anthropic_hooks(builder, request())
    assert second["extra"] == {"list": [1, 2]}
    assert options == {"extra": {"list": [1, 2]}}


# --- openrouter -----------------------------------------------------------------------------------------


def test_openrouter_sets_reasoning_dialect_and_merges_options() -> None:
    builder = configured(OpenrouterTransformer({"provider": {"only": ["x"]}}))
    assert builder.dialect.reasoning_out == "reasoning_details"
    assert builder.dialect.thinking_param == "openrouter"
    assert builder.dialect.extra_body == {"provider": {"only": ["x"]}}
    out = translate(builder, request(thinking={"type": "enabled", "budget_tokens": 2048}))
    assert out["reasoning"] == {"max_tokens": 2048}
    assert out["provider"] == {"only": ["x"]}


def test_openrouter_without_options_adds_no_extra_body() -> None:
    assert configured(OpenrouterTransformer()).dialect.extra_body == {}


# --- deep_merge -----------------------------------------------------------------------------------------


def test_deep_merge_merges_objects_and_replaces_everything_else() -> None:
    target: dict[str, Any] = {"a": {"x": 1, "y": [1]}, "b": 1, "c": {"k": 1}}
    deep_merge(target, {"a": {"y": [2], "z": 3}, "b": {"now": "dict"}, "c": 5, "d": None})
    assert target == {"a": {"x": 1, "y": [2], "z": 3}, "b": {"now": "dict"}, "c": 5, "d": None}


def test_deep_merge_copies_what_it_inserts() -> None:
    extra: dict[str, Any] = {"nested": {"list": [{"k": 1}]}}
    target: dict[str, Any] = {}
    deep_merge(target, extra)
    target["nested"]["list"][0]["k"] = 2
    assert extra == {"nested": {"list": [{"k": 1}]}}
