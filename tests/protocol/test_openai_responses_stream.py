"""OpenAI Responses API stream → Anthropic stream: event order, the SDK's view, agreement with the non-stream
translator, random splits, the edges of the event protocol, and a real round trip through the mock provider.

Most upstream streams are rendered by the mock provider's Responses API (the reference this project tests
against, ``ccr_fast.mock.responses_api``); the edge cases real servers show but the mock does not are
written out by hand.  Every output is checked against the event-order rules the Anthropic SDK's accumulator
relies on (protocols.md §2.3) and then assembled by the official ``anthropic`` client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sse_checks import blocks, check_order, checked, parse, sdk_message, sdk_view, without_minted_ids

from ccr_fast import _speedups
from ccr_fast.mock import MockProvider
from ccr_fast.mock.replies import parse_reply, usage_for
from ccr_fast.mock.responses_api import RESPONSES, encrypted_reasoning
from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.protocol.openai_responses_request import anthropic_to_responses
from ccr_fast.protocol.openai_responses_response import SIGNATURE_PREFIX, responses_to_anthropic
from ccr_fast.protocol.openai_responses_stream import CUT_SHORT_MESSAGE, ResponsesStreamTranslator

JSONDict = dict[str, Any]
BUILT = _speedups.compiled("sse_framer") is not None
THOUGHT = "The user wants two files. Read both at once."
TWO_CALLS = [
    {"name": "Read", "arguments": {"file_path": "/repo/a.py"}},
    {"name": "Grep", "arguments": {"pattern": "def load\\(", "path": None}},
]


@pytest.fixture(
    params=[
        pytest.param("compiled", marks=pytest.mark.skipif(not BUILT, reason="extensions not built")),
        "pure",
    ]
)
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs a test once with the compiled SSE decoder and once with its pure-Python twin."""
    monkeypatch.setenv("CCR_FAST_PURE", "1" if request.param == "pure" else "0")
    yield request.param


# --- upstream streams ---------------------------------------------------------------------------------------


def mock_context(*, stream: bool, summary: bool = True, encrypted: bool = True) -> Any:
    body: JSONDict = {"model": "gpt-5", "stream": stream}
    if summary:
        body["reasoning"] = {"effort": "low", "summary": "auto"}
    if encrypted:
        body["include"] = ["reasoning.encrypted_content"]
    return RESPONSES.context(body, path="/v1/responses", query="", body_len=400, serial=7)


def mock_stream(spec: JSONDict, **asked: bool) -> bytes:
    """The upstream bytes the mock's Responses API sends for a reply spec."""
    reply = parse_reply(spec)
    frames = RESPONSES.stream(reply, usage_for(reply, 400), mock_context(stream=True, **asked))
    return b"".join(frame.data for frame in frames)


def mock_body(spec: JSONDict, **asked: bool) -> JSONDict:
    """The complete response the mock sends for the same reply, without streaming."""
    reply = parse_reply(spec)
    return dict(
        orjson.loads(RESPONSES.message(reply, usage_for(reply, 400), mock_context(stream=False, **asked)))
    )


def sse(*events: JSONDict) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def completed(*output: JSONDict, status: str = "completed", **extra: Any) -> JSONDict:
    usage = {"input_tokens": 50, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 9}
    response = {"id": "resp_1", "status": status, "output": list(output), "usage": usage, **extra}
    return {"type": f"response.{status}", "response": response}


def added(index: int, item: JSONDict) -> JSONDict:
    return {"type": "response.output_item.added", "output_index": index, "item": item}


def done(index: int, item: JSONDict) -> JSONDict:
    return {"type": "response.output_item.done", "output_index": index, "item": item}


def text_delta(index: int, text: str) -> JSONDict:
    return {"type": "response.output_text.delta", "output_index": index, "content_index": 0, "delta": text}


def message_item(text: str, item_id: str = "msg_1") -> JSONDict:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return {"id": item_id, "type": "message", "role": "assistant", "content": content}


def call_item(name: str, arguments: str, call_id: str = "call_1") -> JSONDict:
    return {
        "id": "fc_" + call_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


CREATED = {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress", "output": []}}

#: upstream streams for the split tests: the mock's renderings and the hand-written edge cases
SCENARIOS: dict[str, bytes] = {
    "text": mock_stream({"text": "Hello there, how can I help you today?", "chunks": 6}),
    "thinking_text_calls": mock_stream(
        {"thinking": THOUGHT, "text": "Reading both.", "tool_calls": TWO_CALLS, "chunks": 4}
    ),
    "interleaved_calls": mock_stream(
        {"text": "", "tool_calls": TWO_CALLS, "quirks": {"interleave_tool_args": True, "args_fragments": 5}}
    ),
    "crlf_unicode": mock_stream({"text": "Grüße 😀 東京\u2028next", "chunks": 5, "quirks": {"crlf": True}}),
    "max_tokens": mock_stream({"text": "Once upon a time", "finish_reason": "length"}),
    "failed": mock_stream({"text": "one two three", "midstream_error": {"message": "backend died"}}),
    "no_deltas": sse(
        CREATED,
        added(0, {**message_item(""), "content": []}),
        done(0, message_item("whole text at once")),
        added(1, {**call_item("Read", ""), "arguments": ""}),
        done(1, call_item("Read", '{"file_path": "/x"}')),
        completed(message_item("whole text at once"), call_item("Read", '{"file_path": "/x"}')),
    ),
    "error_event": sse(
        CREATED, text_delta(0, "par"), {"type": "error", "code": "server_error", "message": "oops"}
    ),
    "keepalives": b": keep-alive\n\ndata: [DONE]\n\ndata: not json\n\n"
    + sse(CREATED, text_delta(0, "hi"), completed(message_item("hi"))),
}


def translator(input_tokens: int = 0) -> ResponsesStreamTranslator:
    return ResponsesStreamTranslator(
        model="claude-vector", message_id="msg_vector", input_tokens=input_tokens
    )


def run(reads: list[bytes], input_tokens: int = 0) -> bytes:
    t = translator(input_tokens)
    return b"".join(t.feed(read) for read in reads) + t.close()


def run_stable(reads: list[bytes]) -> bytes:
    return without_minted_ids(run(reads))


# --- the mock's renderings ----------------------------------------------------------------------------------


def test_text_stream_event_by_event(decoder: str) -> None:
    raw = mock_stream(
        {"text": "Hello there friend", "chunks": 3, "usage": {"prompt_tokens": 80, "cached_tokens": 30}}
    )
    events = parse(run([raw], input_tokens=5))
    check_order(events)
    assert events[0]["message"]["usage"]["input_tokens"] == 5
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert (
        "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
        == "Hello there friend"
    )
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"] == {
        "input_tokens": 50,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 30,
        "output_tokens": 3,
    }


def test_thinking_text_and_parallel_calls(decoder: str) -> None:
    t = translator()
    message = checked(t.feed(SCENARIOS["thinking_text_calls"]) + t.close())
    assert blocks(message) == [
        {
            "type": "thinking",
            "thinking": THOUGHT,
            "signature": SIGNATURE_PREFIX + encrypted_reasoning(THOUGHT),
        },
        {"type": "text", "text": "Reading both."},
        {"type": "tool_use", "id": "call_mock7_0", "name": "Read", "input": {"file_path": "/repo/a.py"}},
        {
            "type": "tool_use",
            "id": "call_mock7_1",
            "name": "Grep",
            "input": {"pattern": "def load\\(", "path": None},
        },
    ]
    assert message.stop_reason == "tool_use" and t.stop_reason == "tool_use"
    assert t.finished and not t.errored


def test_interleaved_calls_wait_for_the_earlier_call(decoder: str) -> None:
    raw = SCENARIOS["interleaved_calls"]
    outputs = [e["output_index"] for e in map(orjson.loads, _data_lines(raw)) if "delta" in e]
    assert outputs != sorted(outputs), "the scenario must interleave the two calls' deltas"
    message = checked(run([raw]))
    assert [(b["name"], b["input"]) for b in blocks(message)] == [
        (c["name"], c["arguments"]) for c in TWO_CALLS
    ]


def _data_lines(raw: bytes) -> list[bytes]:
    return [line[6:] for line in raw.splitlines() if line.startswith(b"data: {")]


@pytest.mark.parametrize(
    "spec",
    [
        {"text": "Plain answer.", "chunks": 3},
        {"thinking": THOUGHT, "text": "Reading both.", "tool_calls": TWO_CALLS},
        {"text": "", "tool_calls": TWO_CALLS, "quirks": {"interleave_tool_args": True, "args_fragments": 4}},
        {"text": "cut", "finish_reason": "length", "usage": {"cached_tokens": 100}},
        {"thinking": "quiet thought", "text": "hi"},
    ],
)
def test_stream_and_complete_answer_agree(decoder: str, spec: JSONDict) -> None:
    streamed = sdk_view(checked(run([mock_stream(spec)])))
    whole = responses_to_anthropic(mock_body(spec), model="claude-vector")
    assert streamed == sdk_view_of(whole)


def sdk_view_of(message: JSONDict) -> JSONDict:
    usage = message["usage"]
    return {
        "content": [{k: v for k, v in block.items() if v is not None} for block in message["content"]],
        "stop_reason": message["stop_reason"],
        "usage": {k: usage[k] for k in sorted(usage)},
    }


def test_reasoning_without_summary_still_carries_its_signature(decoder: str) -> None:
    raw = mock_stream({"thinking": "hidden", "text": "ok"}, summary=False)
    message = checked(run([raw]))
    assert blocks(message)[0] == {
        "type": "thinking",
        "thinking": "",
        "signature": SIGNATURE_PREFIX + encrypted_reasoning("hidden"),
    }
    nothing = checked(
        run([mock_stream({"thinking": "hidden", "text": "ok"}, summary=False, encrypted=False)])
    )
    assert [b["type"] for b in blocks(nothing)] == ["text"]


def test_max_output_tokens_stops_with_max_tokens(decoder: str) -> None:
    t = translator()
    message = checked(t.feed(SCENARIOS["max_tokens"]) + t.close())
    assert message.stop_reason == "max_tokens" and t.stop_reason == "max_tokens"


def test_failed_response_ends_with_an_error_event(decoder: str) -> None:
    t = translator()
    events = parse(t.feed(SCENARIOS["failed"]) + t.close())
    check_order(events)
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "backend died"}}
    assert t.errored and t.finished and t.stop_reason is None
    assert t.feed(sse(text_delta(0, "late"))) == b"" and t.close() == b""


# --- the split property -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_line_by_line_and_byte_by_byte_give_the_same_bytes(decoder: str, name: str) -> None:
    raw = SCENARIOS[name]
    whole = run_stable([raw])
    assert run_stable(raw.splitlines(keepends=True)) == whole
    assert run_stable([raw[i : i + 1] for i in range(len(raw))]) == whole


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_splits_match_the_unsplit_feed(decoder: str, data: st.DataObject) -> None:
    raw = SCENARIOS[data.draw(st.sampled_from(sorted(SCENARIOS)))]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=40)))
    reads = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    out = run_stable(reads)
    assert out == run_stable([raw])
    check_order(parse(out))


# --- edges of the event protocol ----------------------------------------------------------------------------


def test_an_error_event_first_is_the_only_event(decoder: str) -> None:
    t = translator()
    error = {"type": "error", "code": "rate_limit_exceeded", "message": "Rate limit reached", "param": None}
    assert parse(t.feed(sse(error))) == [
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}}
    ]
    assert t.errored and t.close() == b"" and t.fail("api_error", "again") == b""


def test_an_error_event_mid_stream_keeps_what_came_before(decoder: str) -> None:
    events = parse(run([SCENARIOS["error_event"]]))
    check_order(events)
    assert [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"] == ["par"]
    assert events[-1]["error"] == {"type": "api_error", "message": "oops"}
    nested = parse(
        run([sse({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})])
    )
    assert nested == [{"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}]


def test_a_stream_cut_before_its_terminal_event_ends_with_an_error(decoder: str) -> None:
    t = translator()
    out = t.feed(sse(CREATED, added(0, message_item("")), text_delta(0, "partial"))) + t.close()
    events = parse(out)
    check_order(events)
    assert events[-1]["error"] == {"type": "api_error", "message": CUT_SHORT_MESSAGE}
    assert t.errored and t.stop_reason is None
    empty = translator()
    assert parse(empty.close()) == [
        {"type": "error", "error": {"type": "api_error", "message": CUT_SHORT_MESSAGE}}
    ]


def test_fail_mid_stream(decoder: str) -> None:
    t = translator()
    head = t.feed(sse(CREATED, text_delta(0, "Hel")))
    events = parse(head + t.fail("timeout_error", "upstream timed out"))
    check_order(events)
    assert events[-1]["error"] == {"type": "timeout_error", "message": "upstream timed out"}
    assert t.feed(sse(text_delta(0, "lo"))) == b"" and t.close() == b""


def test_summary_parts_are_separated_and_the_signature_comes_last(decoder: str) -> None:
    reasoning = {"id": "rs_1", "type": "reasoning", "summary": []}
    final = {
        **reasoning,
        "summary": [{"type": "summary_text", "text": "First."}, {"type": "summary_text", "text": "Second."}],
        "encrypted_content": "gAAAAABenc",
    }

    def part(index: int, kind: str, **extra: Any) -> JSONDict:
        return {"type": kind, "item_id": "rs_1", "output_index": 0, "summary_index": index, **extra}

    raw = sse(
        CREATED,
        added(0, reasoning),
        part(0, "response.reasoning_summary_part.added", part={"type": "summary_text", "text": ""}),
        part(0, "response.reasoning_summary_text.delta", delta="Fir"),
        part(0, "response.reasoning_summary_text.delta", delta="st."),
        part(1, "response.reasoning_summary_part.added", part={"type": "summary_text", "text": ""}),
        part(1, "response.reasoning_summary_text.delta", delta="Second."),
        done(0, final),
        added(1, message_item("")),
        text_delta(1, "Answer."),
        done(1, message_item("Answer.")),
        completed(final, message_item("Answer.")),
    )
    events = parse(run([raw]))
    check_order(events)
    thinking = [e["delta"] for e in events if e.get("index") == 0 and e["type"] == "content_block_delta"]
    assert thinking == [
        {"type": "thinking_delta", "thinking": "Fir"},
        {"type": "thinking_delta", "thinking": "st."},
        {"type": "thinking_delta", "thinking": "\n\nSecond."},
        {"type": "signature_delta", "signature": SIGNATURE_PREFIX + "gAAAAABenc"},
    ]
    assert responses_to_anthropic(completed(final)["response"], model="m")["content"][0]["thinking"] == (
        "First.\n\nSecond."
    )


def test_raw_reasoning_text_is_shown_when_there_is_no_summary(decoder: str) -> None:
    """gpt-oss behind vLLM or Ollama streams its raw reasoning instead of a summary."""
    item = {"id": "rs_1", "type": "reasoning", "summary": []}
    final = {**item, "content": [{"type": "reasoning_text", "text": "raw thoughts"}]}
    delta = {
        "type": "response.reasoning_text.delta",
        "item_id": "rs_1",
        "output_index": 0,
        "content_index": 0,
    }
    raw = sse(
        added(0, item),
        {**delta, "delta": "raw "},
        {
            "type": "response.reasoning_summary_text.delta",
            "output_index": 0,
            "summary_index": 0,
            "delta": "x",
        },
        {**delta, "delta": "thoughts"},
        done(0, final),
        completed(final, message_item("ok")),
    )
    message = checked(run([raw]))
    assert blocks(message) == [
        {"type": "thinking", "thinking": "raw thoughts", "signature": ""},
        {"type": "text", "text": "ok"},
    ]


def test_the_done_item_completes_what_the_deltas_missed(decoder: str) -> None:
    raw = sse(
        added(0, message_item("")),
        text_delta(0, "Hello"),
        done(0, message_item("Hello, world")),
        added(1, call_item("Read", "")),
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"file_'},
        done(1, call_item("Read", '{"file_path": "/a"}')),
        completed(message_item("Hello, world"), call_item("Read", '{"file_path": "/a"}')),
    )
    message = checked(run([raw]))
    assert blocks(message) == [
        {"type": "text", "text": "Hello, world"},
        {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "/a"}},
    ]
    whole = checked(run([SCENARIOS["no_deltas"]]))
    assert [b.get("text") or b.get("input") for b in blocks(whole)] == [
        "whole text at once",
        {"file_path": "/x"},
    ]


def test_a_call_named_only_when_done_holds_its_arguments_back(decoder: str) -> None:
    anonymous = {"id": "fc_1", "type": "function_call", "call_id": "call_9", "arguments": ""}
    arguments = {"type": "response.function_call_arguments.delta", "output_index": 0}
    raw = sse(
        added(0, anonymous),
        {**arguments, "delta": '{"q":'},
        {**arguments, "delta": ' "x"}'},
        done(0, call_item("Search", '{"q": "x"}', call_id="call_9")),
        completed(call_item("Search", '{"q": "x"}', call_id="call_9")),
    )
    events = parse(run([raw]))
    check_order(events)
    assert events[1]["content_block"] == {"type": "tool_use", "id": "call_9", "name": "Search", "input": {}}
    assert [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"] == [
        '{"q": "x"}'
    ]


def test_events_without_an_added_item_and_refusals(decoder: str) -> None:
    refusal = {"type": "response.refusal.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0}
    final = {"id": "msg_1", "type": "message", "content": [{"type": "refusal", "refusal": "I can't."}]}
    raw = sse({**refusal, "delta": "I can"}, {**refusal, "delta": "'t."}, done(0, final), completed(final))
    t = translator()
    message = checked(t.feed(raw) + t.close())
    assert blocks(message) == [{"type": "text", "text": "I can't."}]
    assert message.stop_reason == "refusal"


def test_items_the_stream_never_showed_are_taken_from_the_final_response(decoder: str) -> None:
    raw = sse(
        CREATED,
        completed(
            {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}]},
            message_item("late text"),
            call_item("Read", '{"file_path": "/z"}'),
        ),
    )
    message = checked(run([raw]))
    assert [b["type"] for b in blocks(message)] == ["thinking", "text", "tool_use"]
    assert message.stop_reason == "tool_use"


def test_incomplete_mid_call_closes_the_open_block(decoder: str) -> None:
    raw = sse(
        added(0, call_item("Write", "")),
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '{"content": "abc'},
        completed(status="incomplete", incomplete_details={"reason": "max_output_tokens"}),
    )
    events = parse(run([raw]))
    check_order(events)
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert sdk_message(run([raw])).stop_reason == "max_tokens"


def test_events_named_only_by_their_event_line(decoder: str) -> None:
    body = {"output_index": 0, "content_index": 0, "delta": "named"}
    raw = b"event: response.output_text.delta\ndata: " + orjson.dumps(body) + b"\n\n"
    raw += b"event: response.completed\ndata: " + orjson.dumps({"response": {"output": []}}) + b"\n\n"
    message = checked(run([raw]))
    assert blocks(message) == [{"type": "text", "text": "named"}]
    assert parse(run([b"event: error\ndata: upstream exploded\n\n"])) == [
        {"type": "error", "error": {"type": "api_error", "message": "upstream exploded"}}
    ]


def test_usage_and_stop_reason_for_accounting(decoder: str) -> None:
    t = translator(input_tokens=11)
    t.feed(sse(CREATED, text_delta(0, "x")))
    assert t.usage["input_tokens"] == 11 and t.stop_reason is None and not t.finished
    t.feed(sse(completed(message_item("x"))))
    assert t.usage == {
        "input_tokens": 50,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 9,
    }
    assert t.stop_reason == "end_turn" and t.finished
    no_count = translator(input_tokens=11)
    no_count.feed(
        sse({"type": "response.completed", "response": {"output": [], "usage": {"output_tokens": 2}}})
    )
    assert no_count.usage["input_tokens"] == 11 and no_count.usage["output_tokens"] == 2


def test_a_huge_encrypted_reasoning_passes_through(decoder: str) -> None:
    encrypted = "gAAAAAB" + "A" * 5_000_000
    final = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": encrypted}
    raw = sse(
        added(0, {**final, "encrypted_content": None}), done(0, final), completed(final, message_item("ok"))
    )
    t = translator()
    out = b"".join(t.feed(raw[i : i + 65536]) for i in range(0, len(raw), 65536)) + t.close()
    message = sdk_message(out)
    assert message.content[0].signature == SIGNATURE_PREFIX + encrypted  # type: ignore[union-attr]


# --- a real round trip through the mock provider ------------------------------------------------------------


async def stream_through(mock: MockProvider, body: JSONDict) -> bytes:
    """POST the translated body to the mock's Responses API and translate the stream it sends back."""
    t = ResponsesStreamTranslator(model=body["model"], input_tokens=3)
    out = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            mock.url + "/v1/responses",
            json=anthropic_to_responses(body, model="gpt-5", dialect=OpenAIDialect()),
            headers={"authorization": "Bearer test"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for piece in resp.content.iter_any():
            out.append(t.feed(piece))
    out.append(t.close())
    assert t.finished and not t.errored
    return b"".join(out)


async def test_round_trip_with_reasoning_replayed_on_the_next_turn(mock: MockProvider) -> None:
    mock.script(
        [
            {
                "thinking": THOUGHT,
                "text": "",
                "tool_calls": [{"name": "Bash", "arguments": {"command": "ls"}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 9, "cached_tokens": 20},
            }
        ]
    )
    tools = [
        {
            "name": "Bash",
            "description": "Run a command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
        }
    ]
    first: JSONDict = {
        "model": "claude-sonnet-5",
        "max_tokens": 1024,
        "stream": True,
        "system": "You are terse.",
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": tools,
        "messages": [{"role": "user", "content": "list the files"}],
    }
    message = checked(await stream_through(mock, first))
    assert [b.type for b in message.content] == ["thinking", "tool_use"]
    thinking, call = message.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT
    assert call.type == "tool_use" and call.input == {"command": "ls"}
    assert message.usage.input_tokens == 30 and message.usage.cache_read_input_tokens == 20
    sent = mock.requests[-1]["body"]
    assert sent["reasoning"] == {"effort": "low", "summary": "auto"}
    assert sent["include"] == ["reasoning.encrypted_content"] and sent["store"] is False

    second = dict(first)
    second["messages"] = [
        *first["messages"],
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "a.txt"}]},
    ]
    reply = checked(await stream_through(mock, second))
    assert reply.content[0].text == "Tool result received: a.txt"  # type: ignore[union-attr]
    items = mock.requests[-1]["body"]["input"]
    assert items[1] == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": THOUGHT}],
        "encrypted_content": encrypted_reasoning(THOUGHT),
    }
    assert [i["type"] for i in items[2:]] == ["function_call", "function_call_output"]


async def test_the_mock_rejects_reasoning_it_did_not_issue(mock: MockProvider) -> None:
    """The replay test above can fail: a mangled encrypted content is refused like OpenAI refuses it."""
    bad = {
        "model": "gpt-5",
        "input": [{"type": "reasoning", "summary": [], "encrypted_content": SIGNATURE_PREFIX + "gAAAAABx"}],
        "store": False,
    }
    async with aiohttp.ClientSession() as session, session.post(mock.url + "/v1/responses", json=bad) as resp:
        assert resp.status == 400
        assert "could not be verified" in (await resp.json())["error"]["message"]
