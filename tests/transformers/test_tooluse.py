"""tooluse: ExitTool added to requests with tools; ExitTool calls come back as plain text."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.protocol.openai_request import anthropic_to_openai
from ccr_fast.protocol.openai_response import UNPARSED_ARGUMENTS_KEY
from ccr_fast.transformers.base import PlanBuilder
from ccr_fast.transformers.tooluse import (
    EXIT_TOOL,
    REMINDER,
    ExitToolFilter,
    ResponseReader,
    TooluseTransformer,
    add_exit_tool,
    exit_tool_to_text,
)
from tests.sse_checks import blocks, checked, parse
from tests.transformers.sse_helpers import (
    USAGE,
    openai_stream,
    random_pieces,
    run_chain,
    run_filter,
    stream,
    text,
    tool_use,
    translated,
)

TOOL = {"name": "Read", "description": "read a file", "input_schema": {"type": "object", "properties": {}}}
ANSWER = 'Hello "world" — é😀\nsecond line \\ done'


def request(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 100,
        "tools": [dict(TOOL)],
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(extra)
    return body


def exit_arguments(response: Any) -> str:
    return orjson.dumps({"response": response}).decode()


# --- request --------------------------------------------------------------------------------------------


def test_configure_registers_the_request_hook_filter_and_message_hook() -> None:
    plan = PlanBuilder()
    TooluseTransformer().configure(plan)
    assert len(plan.anthropic_hooks) == 1
    assert plan.response_filters == [ExitToolFilter]
    assert plan.message_hooks == [exit_tool_to_text]


def test_exit_tool_forced_choice_and_reminder_are_added() -> None:
    body = request(system="Be brief.")
    add_exit_tool(body, endpoint="openai")
    assert [t["name"] for t in body["tools"]] == ["Read", EXIT_TOOL]
    assert body["tools"][1]["input_schema"]["required"] == ["response"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["system"] == f"Be brief.\n\n{REMINDER}"
    out = anthropic_to_openai(body, model="up", dialect=OpenAIDialect())
    assert out["tool_choice"] == "required"
    assert [t["function"]["name"] for t in out["tools"]] == ["Read", EXIT_TOOL]
    assert out["messages"][0] == {"role": "system", "content": f"Be brief.\n\n{REMINDER}"}


def test_the_reminder_joins_a_block_system_prompt_or_becomes_the_system_prompt() -> None:
    blocks_body = request(system=[{"type": "text", "text": "A"}])
    add_exit_tool(blocks_body, endpoint="openai")
    assert blocks_body["system"] == [{"type": "text", "text": "A"}, {"type": "text", "text": REMINDER}]
    bare = request()
    add_exit_tool(bare, endpoint="openai")
    assert bare["system"] == REMINDER


def test_adding_twice_changes_nothing_more() -> None:
    body = request()
    add_exit_tool(body, endpoint="openai")
    once = orjson.dumps(body)
    add_exit_tool(body, endpoint="openai")
    assert orjson.dumps(body) == once


def test_requests_without_tools_are_left_alone() -> None:
    for body in (request(tools=[]), {"model": "m", "messages": []}):
        before = orjson.dumps(body)
        add_exit_tool(body, endpoint="openai")
        assert orjson.dumps(body) == before


def test_the_clients_tool_choice_is_kept() -> None:
    body = request(tool_choice={"type": "auto"})
    add_exit_tool(body, endpoint="openai")
    assert body["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(("endpoint", "forced"), [("anthropic", False), ("openai", True)])
def test_thinking_requests_are_forced_only_where_that_is_allowed(endpoint: Any, forced: bool) -> None:
    body = request(thinking={"type": "enabled", "budget_tokens": 2048})
    add_exit_tool(body, endpoint=endpoint)
    assert ("tool_choice" in body) is forced
    assert body["tools"][-1]["name"] == EXIT_TOOL


# --- non-stream -----------------------------------------------------------------------------------------


def message(*content: dict[str, Any], stop_reason: str = "tool_use") -> dict[str, Any]:
    return {"content": list(content), "stop_reason": stop_reason, "usage": dict(USAGE)}


def exit_block(tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_x", "name": EXIT_TOOL, "input": tool_input}


def test_an_exit_call_alone_becomes_the_answer_and_ends_the_turn() -> None:
    msg = message({"type": "thinking", "thinking": "t", "signature": ""}, exit_block({"response": ANSWER}))
    exit_tool_to_text(msg)
    assert msg["content"][1] == {"type": "text", "text": ANSWER}
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"] == USAGE


def test_an_exit_call_beside_a_real_call_keeps_tool_use() -> None:
    real = {"type": "tool_use", "id": "toolu_r", "name": "Read", "input": {}}
    msg = message(exit_block({"response": "first"}), real)
    exit_tool_to_text(msg)
    assert msg["content"] == [{"type": "text", "text": "first"}, real]
    assert msg["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("tool_input", "expected"),
    [
        ({"response": ""}, []),
        ({}, []),
        ({"response": 42}, [{"type": "text", "text": "42"}]),
        ({UNPARSED_ARGUMENTS_KEY: "{'response': 'fixed'"}, [{"type": "text", "text": "fixed"}]),
        ({UNPARSED_ARGUMENTS_KEY: "[1]"}, []),
    ],
)
def test_exit_call_inputs_of_every_shape(tool_input: Any, expected: list[dict[str, Any]]) -> None:
    msg = message(exit_block(tool_input))
    exit_tool_to_text(msg)
    assert msg["content"] == expected
    assert msg["stop_reason"] == "end_turn"


def test_messages_without_exit_calls_are_untouched() -> None:
    msg = message({"type": "text", "text": "x"}, stop_reason="end_turn")
    exit_tool_to_text(msg)
    assert msg == message({"type": "text", "text": "x"}, stop_reason="end_turn")
    exit_tool_to_text({"content": "odd"})


# --- stream ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_a_streamed_exit_call_becomes_streamed_text_and_ends_the_turn(seed: int) -> None:
    rng = random.Random(seed)
    fragments = random_pieces(exit_arguments(ANSWER), rng, most=4)
    out = run_filter(ExitToolFilter, stream(tool_use(EXIT_TOOL, "", *fragments), stop_reason="tool_use"), rng)
    msg = checked(out)
    assert blocks(msg) == [{"type": "text", "text": ANSWER}]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == USAGE["input_tokens"]
    assert msg.usage.output_tokens == USAGE["output_tokens"]
    text_deltas = [e for e in parse(out) if e.get("delta", {}).get("type") == "text_delta"]
    assert len(text_deltas) > 1, "the answer streams as it arrives"


def test_text_before_the_exit_call_and_a_real_call_after_it() -> None:
    events = stream(
        text("Let me answer."),
        tool_use(EXIT_TOOL, exit_arguments("The answer.")),
        tool_use("Read", '{"path": "a"}', tool_id="toolu_r"),
        stop_reason="tool_use",
    )
    msg = checked(run_filter(ExitToolFilter, events))
    assert blocks(msg) == [
        {"type": "text", "text": "Let me answer."},
        {"type": "text", "text": "The answer."},
        {"type": "tool_use", "id": "toolu_r", "name": "Read", "input": {"path": "a"}},
    ]
    assert msg.stop_reason == "tool_use"


def test_an_empty_exit_call_leaves_no_block() -> None:
    events = stream(text("Done."), tool_use(EXIT_TOOL, '{"response": ""}'), stop_reason="tool_use")
    msg = checked(run_filter(ExitToolFilter, events))
    assert blocks(msg) == [{"type": "text", "text": "Done."}]
    assert msg.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"reason": "none fit", "response": "late key"}', "late key"),
        ('{"response": ["a", 1]}', '["a",1]'),
        ("{'response': 'single quotes'}", "single quotes"),
        ('{"response": "cut sho', "cut sho"),
    ],
)
def test_exit_arguments_that_cannot_stream_are_read_at_the_stop(arguments: str, expected: str) -> None:
    events = stream(tool_use(EXIT_TOOL, *random_pieces(arguments, random.Random(1))), stop_reason="tool_use")
    msg = checked(run_filter(ExitToolFilter, events))
    assert blocks(msg) == [{"type": "text", "text": expected}]


def test_other_streams_pass_through_unchanged() -> None:
    events = stream(text("plain"), tool_use("Read", "{}"), stop_reason="tool_use")
    assert run_filter(ExitToolFilter, events) == b"".join(events)


@pytest.mark.parametrize("seed", range(5))
def test_an_exit_call_from_an_openai_stream(seed: int) -> None:
    rng = random.Random(seed)
    start = {"index": 0, "id": "call_9", "type": "function", "function": {"name": EXIT_TOOL, "arguments": ""}}
    chunks: list[dict[str, Any] | str] = [{"choices": [{"index": 0, "delta": {"tool_calls": [start]}}]}]
    for piece in random_pieces(exit_arguments(ANSWER), rng):
        call = {"index": 0, "function": {"arguments": piece}}
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    chunks += [
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 11}},
        "[DONE]",
    ]
    msg = checked(run_chain([ExitToolFilter], translated(openai_stream(*chunks), rng)))
    assert blocks(msg) == [{"type": "text", "text": ANSWER}]
    assert msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (40, 11)


# --- the incremental reader -----------------------------------------------------------------------------


def read_in_two(arguments: str, cut: int) -> str:
    reader = ResponseReader()
    return reader.feed(arguments[:cut]) + reader.feed(arguments[cut:]) + reader.finish()


@pytest.mark.parametrize(
    "answer", [ANSWER, 'tab\tquote"slash/', "\u2028 line sep", "🎉🎉", "", "\\u0041 literal"]
)
def test_the_reader_decodes_every_escape_wherever_the_arguments_are_cut(answer: str) -> None:
    written = [
        exit_arguments(answer),
        json.dumps({"response": answer}),  # every non-ASCII character as \uXXXX, astral ones as pairs
        json.dumps({"response": answer}, indent=2),
    ]
    for arguments in written:
        for cut in range(len(arguments) + 1):
            assert read_in_two(arguments, cut) == answer


def test_the_reader_joins_utf16_surrogate_pairs_split_across_fragments() -> None:
    arguments = '{"response": "a\\ud83d\\ude00b"}'
    for cut in range(len(arguments) + 1):
        assert read_in_two(arguments, cut) == "a😀b"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"response": "\\ud83d x"}', "\ufffd x"),
        ('{"response": "\\udc00"}', "\ufffd"),
        ('{"response": "\\uZZZZ"}', "uZZZZ"),
        ('{"response": "\\q"}', "q"),
    ],
)
def test_the_reader_survives_bad_escapes(arguments: str, expected: str) -> None:
    assert read_in_two(arguments, len(arguments)) == expected


def test_the_reader_streams_before_the_string_is_closed() -> None:
    reader = ResponseReader()
    assert reader.feed('{"resp') == ""
    assert reader.feed('onse": "Hel') == "Hel"
    assert reader.feed("lo") == "lo"
    assert reader.feed('", "extra": 1}') == ""
    assert reader.finish() == ""
