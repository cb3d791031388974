"""enhancetool: broken tool arguments repaired in streamed tool_use blocks and in complete messages."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ccr_fast.protocol.openai_response import UNPARSED_ARGUMENTS_KEY, openai_to_anthropic
from ccr_fast.transformers.base import PlanBuilder
from ccr_fast.transformers.enhancetool import (
    EnhanceToolTransformer,
    ToolArgumentsRepair,
    repair_tool_inputs,
    repaired_arguments,
)
from ccr_fast.transformers.tooluse import EXIT_TOOL, ExitToolFilter
from tests.sse_checks import blocks, checked, parse
from tests.transformers.sse_helpers import (
    PING,
    USAGE,
    openai_stream,
    random_pieces,
    run_chain,
    run_filter,
    stream,
    text,
    thinking,
    tool_use,
    translated,
)

BROKEN = "```json\n{'command': 'ls -la', 'recursive': True,}\n```"
REPAIRED = {"command": "ls -la", "recursive": True}


def test_configure_registers_a_stream_filter_and_a_message_hook() -> None:
    plan = PlanBuilder()
    EnhanceToolTransformer().configure(plan)
    assert plan.response_filters == [ToolArgumentsRepair]
    assert plan.message_hooks == [repair_tool_inputs]
    assert plan.anthropic_hooks == [] and plan.upstream_hooks == []


@pytest.mark.parametrize("seed", range(8))
def test_streamed_broken_arguments_arrive_repaired_in_one_delta(seed: int) -> None:
    rng = random.Random(seed)
    events = stream(
        thinking("let me", " look"),
        text("Listing", " files."),
        tool_use("Bash", *random_pieces(BROKEN, rng)),
        stop_reason="tool_use",
    )
    events.insert(rng.randrange(2, len(events) - 2), PING)
    out = run_filter(ToolArgumentsRepair, events, rng)
    message = checked(out)
    assert blocks(message) == [
        {"type": "thinking", "thinking": "let me look", "signature": "sig"},
        {"type": "text", "text": "Listing files."},
        {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": REPAIRED},
    ]
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == USAGE["output_tokens"]
    json_deltas = [e for e in parse(out) if e.get("delta", {}).get("type") == "input_json_delta"]
    assert len(json_deltas) == 1


def test_valid_arguments_are_sent_as_the_model_wrote_them() -> None:
    written = '{"path":  "a.py",\n "line": 3}'
    out = run_filter(
        ToolArgumentsRepair, stream(tool_use("Read", written[:9], written[9:]), stop_reason="tool_use")
    )
    (delta,) = [e["delta"] for e in parse(out) if e["type"] == "content_block_delta"]
    assert delta == {"type": "input_json_delta", "partial_json": written}


def test_each_tool_block_is_repaired_on_its_own() -> None:
    events = stream(
        tool_use("A", "{'x': 1", tool_id="toolu_a"),
        text("and"),
        tool_use("B", '{"y": [1,', tool_id="toolu_b"),
        stop_reason="tool_use",
    )
    message = checked(run_filter(ToolArgumentsRepair, events))
    assert [b.get("input") for b in blocks(message)] == [{"x": 1}, None, {"y": [1]}]


def test_blank_arguments_send_no_delta_and_leave_the_input_empty() -> None:
    out = run_filter(ToolArgumentsRepair, stream(tool_use("Now", "", "  "), stop_reason="tool_use"))
    assert not [e for e in parse(out) if e["type"] == "content_block_delta"]
    assert blocks(checked(out))[0]["input"] == {}


def test_arguments_nothing_can_be_made_of_are_passed_on_unchanged() -> None:
    assert repaired_arguments("[1, 2]") == "[1, 2]"
    assert repaired_arguments("no json here") == "no json here"
    assert repaired_arguments("{'a': 1}") == '{"a":1}'
    assert repaired_arguments(" \n") == ""


@pytest.mark.parametrize("seed", range(5))
def test_broken_arguments_from_an_openai_stream_reach_the_client_repaired(seed: int) -> None:
    rng = random.Random(seed)
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "Edit", "arguments": ""}}
    chunks: list[dict[str, Any] | str] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Editing."}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]},
    ]
    for piece in random_pieces('{"file": "x.py", "new": "line1\nline2', rng):
        chunks.append(
            {
                "choices": [
                    {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}}
                ]
            }
        )
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 9}})
    chunks.append("[DONE]")
    out = run_chain([ToolArgumentsRepair], translated(openai_stream(*chunks), rng))
    message = checked(out)
    assert message.content[1].type == "tool_use"
    assert message.content[1].input == {"file": "x.py", "new": "line1\nline2"}
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 9)


# --- non-stream -----------------------------------------------------------------------------------------


def test_the_message_hook_repairs_what_the_translator_could_not_parse() -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "A", "arguments": BROKEN}},
                        {"id": "c2", "type": "function", "function": {"name": "B", "arguments": '{"ok": 1}'}},
                        {"id": "c3", "type": "function", "function": {"name": "C", "arguments": "[1]"}},
                    ],
                },
            }
        ]
    }
    message = openai_to_anthropic(body, model="claude-test")
    assert message["content"][0]["input"] == {UNPARSED_ARGUMENTS_KEY: BROKEN}
    repair_tool_inputs(message)
    assert [b["input"] for b in message["content"]] == [REPAIRED, {"ok": 1}, {UNPARSED_ARGUMENTS_KEY: "[1]"}]
    assert message["stop_reason"] == "tool_use"


def test_the_message_hook_leaves_other_blocks_and_odd_shapes_alone() -> None:
    message: dict[str, Any] = {
        "content": [
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "name": "x", "input": {UNPARSED_ARGUMENTS_KEY: "{}", "other": 1}},
            "junk",
        ]
    }
    before = repr(message)
    repair_tool_inputs(message)
    assert repr(message) == before
    repair_tool_inputs({"content": None})


def test_exit_tool_calls_are_left_streaming_for_tooluse() -> None:
    events = stream(tool_use(EXIT_TOOL, '{"response": "a', 'nswer"}'), stop_reason="tool_use")
    assert run_filter(ToolArgumentsRepair, events) == b"".join(events)
    answer = checked(run_chain([ToolArgumentsRepair, ExitToolFilter], events))
    assert blocks(answer) == [{"type": "text", "text": "answer"}]
