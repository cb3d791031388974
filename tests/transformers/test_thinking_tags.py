"""Inline reasoning between tags at the start of an answer -> a thinking block, streamed and not."""

from __future__ import annotations

import random
from functools import partial
from typing import Any

import pytest

from ccr_fast.transformers.thinking_tags import TaggedThinking, split_tagged_thinking
from tests.sse_checks import blocks, checked
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

THINK = partial(TaggedThinking, "<think>", "</think>")
ANSWER = "<think>\nFirst, 2+2.\nIt is 4 </thin k></think>\n\nThe answer is **4**."


def thought(value: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": ""}


def said(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


# --- non-stream -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([said(ANSWER)], [thought("\nFirst, 2+2.\nIt is 4 </thin k>"), said("The answer is **4**.")]),
        ([said("  \n<think>a</think>b")], [thought("a"), said("b")]),
        ([said("<think>never closed")], [thought("never closed")]),
        ([said("<think>only</think> \n")], [thought("only")]),
        ([said("Say <think> out loud")], [said("Say <think> out loud")]),
        ([said("no tags"), said("<think>x</think>y")], [said("no tags"), said("<think>x</think>y")]),
        (
            [{"type": "thinking", "thinking": "native", "signature": "s"}, said("<think>t</think>a")],
            [{"type": "thinking", "thinking": "native", "signature": "s"}, thought("t"), said("a")],
        ),
        (
            [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        ),
    ],
)
def test_complete_messages(content: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    message: dict[str, Any] = {"content": content, "stop_reason": "end_turn", "usage": dict(USAGE)}
    split_tagged_thinking(message, "<think>", "</think>")
    assert message["content"] == expected
    assert message["stop_reason"] == "end_turn" and message["usage"] == USAGE


def test_odd_messages_are_left_alone() -> None:
    for message in (
        {"content": None},
        {"content": [said("x")]},
        {"content": ["junk", {"type": "text", "text": 5}]},
    ):
        before = repr(message)
        split_tagged_thinking(message, "<think>", "</think>")
        assert repr(message) == before


# --- stream ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_tags_split_anywhere_across_deltas_and_reads(seed: int) -> None:
    rng = random.Random(seed)
    events = stream(
        text(*random_pieces(ANSWER, rng, most=3)), tool_use("f", '{"a": 1}'), stop_reason="tool_use"
    )
    events.insert(rng.randrange(1, len(events) - 1), PING)
    msg = checked(run_filter(THINK, events, rng))
    assert blocks(msg) == [
        thought("\nFirst, 2+2.\nIt is 4 </thin k>"),
        said("The answer is **4**."),
        {"type": "tool_use", "id": "toolu_01", "name": "f", "input": {"a": 1}},
    ]
    assert msg.stop_reason == "tool_use"
    assert msg.usage.output_tokens == USAGE["output_tokens"]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["  <thi", "nk? no"], [said("  <think? no")]),
        (["<th"], [said("<th")]),
        ([" ", "\n"], [said(" \n")]),
        (["<think>", "never", " closed </thi"], [thought("never closed </thi")]),
        (["<think>x</think>", "  ", "\n"], [thought("x")]),
        (["<think>x</think>", " ", " y", " z"], [thought("x"), said("y z")]),
        (["plain <think>text</think>"], [said("plain <think>text</think>")]),
    ],
)
def test_edge_cases(pieces: list[str], expected: list[dict[str, Any]]) -> None:
    msg = checked(run_filter(THINK, stream(text(*pieces))))
    assert blocks(msg) == expected
    assert msg.stop_reason == "end_turn"


def test_an_empty_text_block_disappears() -> None:
    msg = checked(run_filter(THINK, stream(text(), tool_use("f", "{}"), stop_reason="tool_use")))
    assert [b["type"] for b in blocks(msg)] == ["tool_use"]


def test_only_the_first_text_block_is_looked_at() -> None:
    events = stream(
        text("I will look."), tool_use("f", "{}"), text("<think>not thinking</think>"), stop_reason="tool_use"
    )
    assert run_filter(THINK, events) == b"".join(events)


def test_a_native_thinking_block_before_the_tagged_text_keeps_its_place() -> None:
    events = stream(thinking("native"), text("<think>tagged</think>", "answer"))
    msg = checked(run_filter(THINK, events))
    assert blocks(msg) == [
        {"type": "thinking", "thinking": "native", "signature": "sig"},
        thought("tagged"),
        said("answer"),
    ]


def test_reasoning_content_tags_work_the_same_way() -> None:
    make = partial(TaggedThinking, "<reasoning_content>", "</reasoning_content>")
    value = "<reasoning_content>step 1</reasoning_content>\n\nDone."
    msg = checked(run_filter(make, stream(text(*random_pieces(value, random.Random(2), most=2)))))
    assert blocks(msg) == [thought("step 1"), said("Done.")]


@pytest.mark.parametrize("seed", range(5))
def test_think_tags_from_an_openai_stream(seed: int) -> None:
    rng = random.Random(seed)
    chunks: list[dict[str, Any] | str] = [
        {"choices": [{"index": 0, "delta": {"content": piece}}]}
        for piece in random_pieces(ANSWER, rng, most=4)
    ]
    chunks += [
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 30}},
        "[DONE]",
    ]
    msg = checked(run_chain([THINK], translated(openai_stream(*chunks), rng)))
    assert blocks(msg) == [thought("\nFirst, 2+2.\nIt is 4 </thin k>"), said("The answer is **4**.")]
    assert msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (7, 30)
