"""Reply specs, auto mode, usage, splitting and the timing schedule (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccr_fast.mock.dialects import ANTHROPIC, OPENAI
from ccr_fast.mock.replies import (
    CHUNK,
    DEFAULT_TEXT,
    META,
    TAIL,
    Frame,
    Outcome,
    Quirks,
    Reply,
    RequestContext,
    ToolCall,
    Turn,
    UsageOverride,
    auto_reply,
    parse_reply,
    respond,
    schedule,
    split_even,
    split_words,
    usage_for,
)


def test_parse_reply_full_spec() -> None:
    reply = parse_reply(
        {
            "text": "hi",
            "thinking": "hmm",
            "tool_calls": [
                {"id": "c1", "name": "t", "arguments": {"a": 1}},
                {"name": "u", "arguments": "raw"},
            ],
            "chunks": 3,
            "ttft_ms": 5,
            "chunk_delay_ms": 1.5,
            "latency_ms": 2,
            "usage": {"prompt_tokens": 10, "cached_tokens": 4},
            "finish_reason": "length",
            "error": {"status": 429, "message": "slow", "retry_after": 1, "type": "rate_limit_error"},
            "fail_after_chunks": 0,
            "midstream_error": {"message": "boom"},
            "quirks": {"crlf": True, "args_fragments": 3, "reasoning_field": "reasoning"},
        }
    )
    assert reply.tool_calls == (ToolCall("t", '{"a":1}', "c1"), ToolCall("u", "raw", None))
    assert (reply.chunks, reply.ttft_ms, reply.chunk_delay_ms, reply.latency_ms) == (3, 5.0, 1.5, 2.0)
    assert reply.usage == UsageOverride(prompt_tokens=10, cached_tokens=4)
    assert reply.error is not None and (reply.error.status, reply.error.retry_after) == (429, 1.0)
    assert reply.fail_after_chunks == 0
    assert reply.midstream_error is not None and reply.midstream_error.message == "boom"
    assert reply.quirks == Quirks(crlf=True, args_fragments=3, reasoning_field="reasoning")


def test_content_is_inherited_as_a_group_and_the_rest_field_by_field() -> None:
    base = parse_reply({"text": "default", "thinking": "deep", "chunks": 4, "ttft_ms": 9})
    assert parse_reply({}, base) == base
    tools_only = parse_reply({"tool_calls": [{"name": "t"}]}, base)
    assert (tools_only.text, tools_only.thinking) == ("", "")
    assert (tools_only.chunks, tools_only.ttft_ms) == (4, 9.0)
    delayed = parse_reply({"chunk_delay_ms": 3}, base)
    assert (delayed.text, delayed.thinking, delayed.chunk_delay_ms) == ("default", "deep", 3.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"txt": "x"}, "unknown reply field"),
        ({"text": 3}, "text must be a string"),
        ({"chunks": 0}, "chunks"),
        ({"chunks": True}, "chunks"),
        ({"ttft_ms": -1}, "ttft_ms"),
        ({"tool_calls": [{"arguments": {}}]}, "name"),
        ({"tool_calls": [{"name": "t", "arguments": 5}]}, "arguments"),
        ({"tool_calls": {}}, "list"),
        ({"usage": {"tokens": 1}}, "unknown usage"),
        ({"error": {"status": 200}}, "status"),
        ({"error": {"status": 600}}, "400-599"),
        ({"error": "boom"}, "object"),
        ({"quirks": {"crlf": "yes"}}, "boolean"),
        ({"quirks": {"nope": True}}, "unknown quirk"),
        ({"quirks": {"reasoning_field": "thoughts"}}, "reasoning_field"),
        ({"quirks": {"args_fragments": 0}}, "args_fragments"),
        ({"finish_reason": 1}, "finish_reason"),
        ({"midstream_error": []}, "object"),
    ],
)
def test_parse_reply_rejects_bad_specs(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_reply(spec)


def test_auto_reply_priorities() -> None:
    defaults = Reply(text="plain", ttft_ms=3)
    assert auto_reply(Turn(None, "just chatting"), defaults) is defaults
    tool = auto_reply(Turn(None, 'look\nMOCK_TOOL:Read:{"file_path": "/a"}  \nmore'), defaults)
    assert tool.tool_calls == (ToolCall("Read", '{"file_path":"/a"}'),)
    assert tool.text == "" and tool.ttft_ms == 3
    raw = auto_reply(Turn(None, "MOCK_TOOL:Bash:not json"), defaults)
    assert raw.tool_calls == (ToolCall("Bash", "not json"),)
    empty = auto_reply(Turn(None, "MOCK_TOOL:Bash:"), defaults)
    assert empty.tool_calls == (ToolCall("Bash", "{}"),)
    result = auto_reply(Turn("r" * 500, "MOCK_TOOL:Bash:{}"), defaults)
    assert result.text == "Tool result received: " + "r" * 200 and result.tool_calls == ()


def test_latest_turn_extraction() -> None:
    openai_body = {
        "messages": [
            {"role": "user", "content": "MOCK_TOOL:old:{}"},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "out"}]},
            {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
        ]
    }
    assert OPENAI.latest_turn(openai_body) == Turn("out", "and now?")
    assert OPENAI.latest_turn({"messages": "nope"}) == Turn(None, "")
    anthropic_body = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>"}]},
            {"role": "system", "content": "mid-conversation note"},
        ]
    }
    assert ANTHROPIC.latest_turn(anthropic_body) == Turn(None, "<system-reminder>x</system-reminder>")


def test_usage_for_counts_words_and_honours_overrides() -> None:
    reply = Reply(text="one two three", thinking="a b", tool_calls=(ToolCall("t", '{"x": 1}'),))
    usage = usage_for(reply, 41)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, usage.cached_tokens) == (
        10,
        8,
        2,
        0,
    )
    forced = usage_for(
        Reply(usage=UsageOverride(prompt_tokens=5, completion_tokens=1, cached_tokens=9)), 1000
    )
    assert (
        forced.prompt_tokens,
        forced.completion_tokens,
        forced.cached_tokens,
        forced.reasoning_tokens,
    ) == (5, 1, 5, 0)


@given(st.text(alphabet=" \nab\u2028é", max_size=60), st.integers(min_value=1, max_value=12))
def test_split_words_round_trips(text: str, parts: int) -> None:
    pieces = split_words(text, parts)
    assert "".join(pieces) == text
    assert len(pieces) <= max(parts, 1)
    assert all(pieces)


@given(st.text(max_size=60), st.integers(min_value=1, max_value=12))
def test_split_even_round_trips(text: str, parts: int) -> None:
    pieces = split_even(text, parts)
    assert "".join(pieces) == text
    assert len(pieces) == max(1, min(parts, len(text)))
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_split_words_default_sentence() -> None:
    assert split_words(DEFAULT_TEXT, 10) == ["Hello ", "from ", "the ", "ccr-fast ", "mock ", "provider."]
    assert split_words("a b c d e", 2) == ["a b c ", "d e"]


FRAMES = [
    Frame(META, b"m"),
    Frame(CHUNK, b"1"),
    Frame(META, b"s"),
    Frame(CHUNK, b"2"),
    Frame(CHUNK, b"3"),
    Frame(TAIL, b"t"),
    Frame(TAIL, b"d"),
]


def test_schedule_without_delays_is_one_write() -> None:
    assert schedule(FRAMES, 0, 0, None) == (((0.0, b"m1s23td"),), False)


def test_schedule_places_ttft_and_chunk_delays() -> None:
    segments, aborted = schedule(FRAMES, 0.5, 0.1, None)
    assert segments == ((0.0, b"m"), (0.5, b"1s"), (0.1, b"2"), (0.1, b"3td"))
    assert not aborted
    assert schedule([Frame(TAIL, b"t")], 0.5, 0.1, None) == (((0.5, b"t"),), False)


@pytest.mark.parametrize(
    ("fail_after", "sent"),
    [(0, b"m"), (1, b"m1s"), (2, b"m1s2"), (3, b"m1s23"), (9, b"m1s23")],
)
def test_schedule_fail_after_chunks(fail_after: int, sent: bytes) -> None:
    segments, aborted = schedule(FRAMES, 0, 0, fail_after)
    assert aborted
    assert b"".join(data for _, data in segments) == sent


def context(stream: bool) -> RequestContext:
    return RequestContext("m", stream, False, True, 10, 1, 0)


def test_respond_error_headers_and_immediacy() -> None:
    error = respond(ANTHROPIC, parse_reply({"error": {"status": 429, "retry_after": 1.5}}), context(False))
    assert error.status == 429
    assert ("retry-after", "1.5") in error.headers and ("request-id", "req_mock1") in error.headers
    assert error.immediate
    slow = respond(OPENAI, parse_reply({"latency_ms": 10}), context(False))
    assert slow.delay == 0.01 and not slow.immediate
    stream = respond(OPENAI, parse_reply({"chunk_delay_ms": 1}), context(True))
    assert stream.segments is not None and not stream.immediate
    assert respond(OPENAI, Reply(), context(True)).immediate
    assert not Outcome(200, "x", segments=((0.0, b""),), aborted=True).immediate
