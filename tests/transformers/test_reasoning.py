"""reasoning, forcereasoning, extrathinktag: what each sends upstream and how reasoning comes back."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ccr_fast.protocol.openai_request import anthropic_to_openai
from ccr_fast.protocol.openai_response import openai_to_anthropic
from ccr_fast.transformers.base import PlanBuilder, Transformer
from ccr_fast.transformers.reasoning import (
    FORCE_REASONING_PROMPT,
    ExtraThinkTagTransformer,
    ForceReasoningTransformer,
    ReasoningTransformer,
    add_reasoning_prompt,
)
from tests.sse_checks import blocks, checked
from tests.transformers.sse_helpers import openai_stream, random_pieces, run_chain, stream, text, translated

REASONING_KEYS = {"reasoning", "reasoning_effort", "enable_thinking", "thinking"}


def configured(*steps: Transformer) -> PlanBuilder:
    plan = PlanBuilder()
    for step in steps:
        step.configure(plan)
    return plan


def upstream(plan: PlanBuilder, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 20000,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(extra)
    for hook in plan.anthropic_hooks:
        hook(body)
    out = anthropic_to_openai(body, model="up", dialect=plan.dialect)
    for hook in plan.upstream_hooks:
        hook(out)
    return out


def reasoning_fields(out: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in out.items() if k in REASONING_KEYS}


# --- reasoning: request ---------------------------------------------------------------------------------

ON = {"enable_thinking": True, "thinking": {"type": "enabled"}}


@pytest.mark.parametrize(
    ("thinking", "output_config", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 2048}, None, {"reasoning": {"effort": "low"}, **ON}),
        ({"type": "enabled", "budget_tokens": 10000}, None, {"reasoning": {"effort": "medium"}, **ON}),
        ({"type": "enabled", "budget_tokens": 31999}, None, {"reasoning": {"effort": "high"}, **ON}),
        ({"type": "adaptive"}, {"effort": "low"}, {"reasoning": {"effort": "low"}, **ON}),
        ({"type": "disabled"}, None, {}),
        (None, None, {}),
    ],
)
def test_reasoning_sends_an_effort_when_the_client_asks_to_think(
    thinking: Any, output_config: Any, expected: dict[str, Any]
) -> None:
    extra = {k: v for k, v in (("thinking", thinking), ("output_config", output_config)) if v is not None}
    assert reasoning_fields(upstream(configured(ReasoningTransformer()), **extra)) == expected


@pytest.mark.parametrize(
    ("thinking", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 8000}, {"reasoning": {"max_tokens": 8000}, **ON}),
        ({"type": "adaptive"}, {"reasoning": {"enabled": True}, **ON}),
        (None, {}),
    ],
)
def test_reasoning_can_send_the_budget_instead(thinking: Any, expected: dict[str, Any]) -> None:
    extra = {"thinking": thinking} if thinking else {}
    plan = configured(ReasoningTransformer({"format": "max_tokens"}))
    assert reasoning_fields(upstream(plan, **extra)) == expected


@pytest.mark.parametrize("thinking", [{"type": "enabled", "budget_tokens": 8000}, None])
def test_reasoning_disabled_asks_for_no_reasoning_on_every_request(thinking: Any) -> None:
    extra = {"thinking": thinking} if thinking else {}
    plan = configured(ReasoningTransformer({"enable": False}))
    assert reasoning_fields(upstream(plan, **extra)) == {
        "enable_thinking": False,
        "thinking": {"type": "disabled"},
    }


def test_reasoning_disabled_overrides_an_earlier_reasoning_dialect() -> None:
    plan = PlanBuilder()
    plan.tune(thinking_param="openrouter")
    ReasoningTransformer({"enable": False}).configure(plan)
    out = upstream(plan, thinking={"type": "enabled", "budget_tokens": 4096})
    assert "reasoning" not in out


@pytest.mark.parametrize(
    ("options", "message"),
    [({"enable": "yes"}, "enable must be true or false"), ({"format": "tokens"}, "format must be one of")],
)
def test_reasoning_rejects_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configured(ReasoningTransformer(options))


# --- reasoning: response (the translators read both field names) ----------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_streamed_reasoning_fields_become_a_thinking_block(field: str) -> None:
    rng = random.Random(4)
    chunks: list[dict[str, Any] | str] = [
        {"choices": [{"index": 0, "delta": {field: piece}}]} for piece in random_pieces("Let me think.", rng)
    ]
    chunks += [
        {"choices": [{"index": 0, "delta": {"content": "Four."}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6}},
        "[DONE]",
    ]
    msg = checked(run_chain([], translated(openai_stream(*chunks), rng)))
    assert blocks(msg) == [
        {"type": "thinking", "thinking": "Let me think.", "signature": ""},
        {"type": "text", "text": "Four."},
    ]
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (5, 6)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_fields_of_a_complete_answer_become_a_thinking_block(field: str) -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Four.", field: "Hmm."},
            }
        ]
    }
    message = openai_to_anthropic(body, model="claude-x")
    assert message["content"] == [
        {"type": "thinking", "thinking": "Hmm.", "signature": ""},
        {"type": "text", "text": "Four."},
    ]


# --- forcereasoning -------------------------------------------------------------------------------------


def test_forcereasoning_appends_the_prompt_to_the_system_and_the_newest_user_turn() -> None:
    out = upstream(configured(ForceReasoningTransformer()), system="Be kind.")
    assert out["messages"][0] == {"role": "system", "content": f"Be kind.\n\n{FORCE_REASONING_PROMPT}"}
    assert out["messages"][-1]["role"] == "user"
    assert [p["text"] for p in out["messages"][-1]["content"]] == ["hi", FORCE_REASONING_PROMPT]


def test_forcereasoning_after_tool_results_adds_a_user_message_after_the_tool_messages() -> None:
    messages = [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"}]},
    ]
    out = upstream(configured(ForceReasoningTransformer()), messages=messages)
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert out["messages"][-1]["content"] == FORCE_REASONING_PROMPT


@pytest.mark.parametrize(
    ("body", "system", "last"),
    [
        (
            {
                "system": [{"type": "text", "text": "S"}],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
            },
            [{"type": "text", "text": "S"}, {"type": "text", "text": FORCE_REASONING_PROMPT}],
            {
                "role": "user",
                "content": [{"type": "text", "text": "q"}, {"type": "text", "text": FORCE_REASONING_PROMPT}],
            },
        ),
        (
            {"messages": [{"role": "assistant", "content": "prefill"}]},
            FORCE_REASONING_PROMPT,
            {"role": "assistant", "content": "prefill"},
        ),
    ],
)
def test_add_reasoning_prompt_shapes(body: dict[str, Any], system: Any, last: dict[str, Any]) -> None:
    add_reasoning_prompt(body)
    assert body["system"] == system
    assert body["messages"][-1] == last


def test_forcereasoning_turns_tagged_reasoning_into_thinking() -> None:
    plan = configured(ForceReasoningTransformer())
    value = "<reasoning_content>Check the units.</reasoning_content>\n\n42 m/s"
    pieces = random_pieces(value, random.Random(9), most=3)
    msg = checked(run_chain(plan.response_filters, stream(text(*pieces))))
    assert blocks(msg) == [
        {"type": "thinking", "thinking": "Check the units.", "signature": ""},
        {"type": "text", "text": "42 m/s"},
    ]
    message: dict[str, Any] = {"content": [{"type": "text", "text": value}]}
    for hook in plan.message_hooks:
        hook(message)
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]


# --- extrathinktag --------------------------------------------------------------------------------------


def test_extrathinktag_only_rewrites_responses() -> None:
    plan = configured(ExtraThinkTagTransformer())
    assert plan.anthropic_hooks == [] and plan.upstream_hooks == []
    value = "<think>short</think>long answer"
    msg = checked(
        run_chain(plan.response_filters, stream(text(*random_pieces(value, random.Random(5), most=2))))
    )
    assert blocks(msg) == [
        {"type": "thinking", "thinking": "short", "signature": ""},
        {"type": "text", "text": "long answer"},
    ]
    message: dict[str, Any] = {"content": [{"type": "text", "text": value}]}
    plan.message_hooks[0](message)
    assert message["content"][0] == {"type": "thinking", "thinking": "short", "signature": ""}


@pytest.mark.parametrize("endpoint", ["anthropic", "gemini"])
@pytest.mark.parametrize("options", [{}, {"enable": False}, {"format": "max_tokens"}])
def test_reasoning_leaves_other_endpoints_alone(endpoint: Any, options: dict[str, Any]) -> None:
    plan = PlanBuilder(endpoint=endpoint)
    ReasoningTransformer(options).configure(plan)
    assert plan.upstream_hooks == [] and plan.anthropic_hooks == []
    assert plan.dialect.thinking_param == "none"
