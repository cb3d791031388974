"""sampling, maxcompletiontokens, cerebras, vercel: what each makes of the request sent upstream."""

from __future__ import annotations

from typing import Any

import pytest

from ccr_fast.protocol.openai_request import anthropic_to_openai
from ccr_fast.transformers.base import PlanBuilder, Transformer
from ccr_fast.transformers.builtin import AnthropicTransformer, CustomParamsTransformer, MaxTokenTransformer
from ccr_fast.transformers.sampling import (
    CerebrasTransformer,
    MaxCompletionTokensTransformer,
    SamplingTransformer,
    VercelTransformer,
    flatten_text_content,
)


def configured(*steps: Transformer) -> PlanBuilder:
    plan = PlanBuilder()
    for step in steps:
        step.configure(plan)
    return plan


def request(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 20000,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(extra)
    return body


def anthropic_side(plan: PlanBuilder, body: dict[str, Any]) -> dict[str, Any]:
    for hook in plan.anthropic_hooks:
        hook(body)
    return body


def upstream(plan: PlanBuilder, **extra: Any) -> dict[str, Any]:
    out = anthropic_to_openai(anthropic_side(plan, request(**extra)), model="up", dialect=plan.dialect)
    for hook in plan.upstream_hooks:
        hook(out)
    return out


# --- sampling -------------------------------------------------------------------------------------------

OPTIONS = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "repetition_penalty": 1.05, "max_tokens": 8192}


def test_sampling_options_override_what_the_client_sent() -> None:
    out = upstream(configured(SamplingTransformer(OPTIONS)), temperature=1.0, top_p=0.5, top_k=5)
    assert {
        k: out[k] for k in ("temperature", "top_p", "top_k", "repetition_penalty", "max_tokens")
    } == OPTIONS


def test_sampling_passes_through_what_it_does_not_set() -> None:
    out = upstream(configured(SamplingTransformer({"temperature": 0.2})), top_p=0.7, top_k=40, max_tokens=100)
    assert (out["temperature"], out["top_p"], out["top_k"], out["max_tokens"]) == (0.2, 0.7, 40, 100)
    assert "repetition_penalty" not in out


def test_sampling_max_tokens_only_lowers() -> None:
    plan = configured(SamplingTransformer({"max_tokens": 8192}))
    assert upstream(plan, max_tokens=1000)["max_tokens"] == 1000
    assert upstream(plan, max_tokens=30000)["max_tokens"] == 8192
    assert (
        configured(
            MaxTokenTransformer({"max_tokens": 4096}), SamplingTransformer({"max_tokens": 8192})
        ).dialect.max_tokens_cap
        == 4096
    )


def test_sampling_without_options_still_lets_top_k_through() -> None:
    plan = configured(SamplingTransformer())
    assert plan.anthropic_hooks == [] and plan.upstream_hooks == []
    assert upstream(plan, top_k=7)["top_k"] == 7


def test_sampling_on_the_anthropic_endpoint_sets_only_anthropic_fields() -> None:
    plan = configured(AnthropicTransformer(), SamplingTransformer(OPTIONS))
    body = anthropic_side(plan, request(temperature=1.0))
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (0.6, 0.95, 20, 8192)
    assert "repetition_penalty" not in body


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_p": True}, "top_p must be a number"),
        ({"top_k": 2.5}, "top_k must be a positive integer"),
        ({"max_tokens": 0}, "max_tokens must be a positive integer"),
        ({"repetition_penalty": [1]}, "repetition_penalty must be a number"),
    ],
)
def test_sampling_rejects_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configured(SamplingTransformer(options))


# --- maxcompletiontokens --------------------------------------------------------------------------------


def test_maxcompletiontokens_renames_the_limit() -> None:
    out = upstream(configured(MaxCompletionTokensTransformer()), max_tokens=3000)
    assert out["max_completion_tokens"] == 3000
    assert "max_tokens" not in out


def test_maxcompletiontokens_option_sets_the_value_and_caps_still_apply() -> None:
    plan = configured(MaxCompletionTokensTransformer({"max_completion_tokens": 16000}))
    assert upstream(plan, max_tokens=3000)["max_completion_tokens"] == 16000
    capped = configured(
        MaxCompletionTokensTransformer({"max_completion_tokens": 16000}),
        MaxTokenTransformer({"max_tokens": 5000}),
    )
    assert upstream(capped)["max_completion_tokens"] == 5000


def test_maxcompletiontokens_rejects_a_bad_value() -> None:
    with pytest.raises(ValueError, match="max_completion_tokens must be a positive integer"):
        configured(MaxCompletionTokensTransformer({"max_completion_tokens": "many"}))


# --- cerebras -------------------------------------------------------------------------------------------


def test_cerebras_sends_text_as_strings_and_no_parallel_tool_calls() -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}},
            ],
        },
    ]
    out = upstream(
        configured(CerebrasTransformer()),
        messages=messages,
        tools=tools,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    assert out["messages"][0] == {"role": "user", "content": "ab"}
    assert isinstance(out["messages"][2]["content"], list)
    assert "parallel_tool_calls" not in out
    assert not {"reasoning", "reasoning_effort", "thinking"} & set(out)


@pytest.mark.parametrize("endpoint", ["anthropic", "gemini"])
def test_openai_body_hooks_are_not_added_for_other_endpoints(endpoint: Any) -> None:
    plan = PlanBuilder(endpoint=endpoint)
    CerebrasTransformer().configure(plan)
    SamplingTransformer({"repetition_penalty": 1.2}).configure(plan)
    assert plan.upstream_hooks == []
    assert plan.dialect.drop_keys == ()


def test_cerebras_does_not_repeat_a_dropped_key() -> None:
    plan = configured(CerebrasTransformer(), CerebrasTransformer())
    assert plan.dialect.drop_keys == ("parallel_tool_calls",)


def test_flatten_text_content_skips_odd_messages() -> None:
    body: dict[str, Any] = {
        "messages": ["junk", {"role": "user", "content": []}, {"content": [{"type": "text", "text": 1}]}]
    }
    flatten_text_content(body)
    assert body["messages"][1]["content"] == ""
    assert body["messages"][2]["content"] == [{"type": "text", "text": 1}]


# --- vercel ---------------------------------------------------------------------------------------------


def test_vercel_turns_on_gateway_caching_and_sends_reasoning_as_an_object() -> None:
    out = upstream(configured(VercelTransformer()), thinking={"type": "enabled", "budget_tokens": 5000})
    assert out["providerOptions"] == {"gateway": {"caching": "auto"}}
    assert out["reasoning"] == {"max_tokens": 5000}


def test_vercel_options_are_merged_into_the_body_over_the_defaults() -> None:
    options = {"providerOptions": {"gateway": {"order": ["bedrock"], "caching": "off"}}, "user": "me"}
    plan = configured(CustomParamsTransformer({"seed": 1}), VercelTransformer(options))
    out = upstream(plan)
    assert out["providerOptions"] == {"gateway": {"caching": "off", "order": ["bedrock"]}}
    assert (out["user"], out["seed"]) == ("me", 1)
    assert "reasoning" not in out
