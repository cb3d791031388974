"""Each dialect's rendering, and each OpenAI quirk doing exactly what it claims."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from ccr_fast.mock import MockProvider
from ccr_fast.mock.dialects import ANTHROPIC, GEMINI, OPENAI
from ccr_fast.mock.replies import CHUNK, META, TAIL, Frame, Reply, RequestContext, parse_reply, usage_for

TWO_CALLS = [
    {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
    {"id": "call_b", "name": "get_time", "arguments": {"timezone": "Europe/Paris"}},
]


def context(*, stream: bool = True, include_usage: bool = False, sse: bool = True) -> RequestContext:
    return RequestContext(
        model="model-x",
        stream=stream,
        include_usage=include_usage,
        sse=sse,
        body_len=400,
        serial=7,
        created=1,
    )


def openai_frames(spec: dict[str, Any], include_usage: bool = False) -> list[Frame]:
    reply = parse_reply(spec)
    return OPENAI.stream(reply, usage_for(reply, 400), context(include_usage=include_usage))


def openai_chunks(spec: dict[str, Any], include_usage: bool = False) -> list[Any]:
    """Decoded data of each frame: a dict, or the string "[DONE]"."""
    out: list[Any] = []
    for frame in openai_frames(spec, include_usage):
        assert frame.data.startswith(b"data: ")
        data = frame.data[6:].strip()
        out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


def tool_deltas(chunks: list[Any]) -> list[dict[str, Any]]:
    return [
        call
        for chunk in chunks
        if isinstance(chunk, dict) and chunk["choices"]
        for call in chunk["choices"][0]["delta"].get("tool_calls", [])
    ]


def finish_chunks(chunks: list[Any]) -> list[dict[str, Any]]:
    return [
        c for c in chunks if isinstance(c, dict) and c.get("choices") and c["choices"][0]["finish_reason"]
    ]


# --- OpenAI --------------------------------------------------------------------------------------------


def test_openai_default_stream_shape() -> None:
    chunks = openai_chunks({"text": "a b c d", "chunks": 2})
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["a b ", "c d"]
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1] == "[DONE]"
    assert all("usage" not in c for c in chunks if isinstance(c, dict))
    assert {c["model"] for c in chunks if isinstance(c, dict)} == {"model-x"}


def test_openai_include_usage_adds_usage_chunk() -> None:
    chunks = openai_chunks({"text": "a b c"}, include_usage=True)
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 100
    assert usage_chunk["usage"]["completion_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:-2])


def test_quirk_reasoning_field() -> None:
    for field in ("reasoning_content", "reasoning"):
        chunks = openai_chunks({"thinking": "hmm ok", "text": "x", "quirks": {"reasoning_field": field}})
        thought = "".join(c["choices"][0]["delta"].get(field, "") for c in chunks if isinstance(c, dict))
        assert thought == "hmm ok"


def test_quirk_usage_on_finish_chunk() -> None:
    chunks = openai_chunks({"text": "a b", "quirks": {"usage_on_finish_chunk": True}}, include_usage=True)
    (finish,) = finish_chunks(chunks)
    assert finish["usage"]["completion_tokens"] == 2
    assert not [c for c in chunks if isinstance(c, dict) and c["choices"] == []]


def test_quirk_usage_every_chunk_is_cumulative() -> None:
    chunks = [
        c for c in openai_chunks({"text": "a b c d e f", "chunks": 6, "quirks": {"usage_every_chunk": True}})
    ]
    dicts = [c for c in chunks if isinstance(c, dict)]
    totals = [c["usage"]["completion_tokens"] for c in dicts]
    assert totals == sorted(totals)
    assert totals[-1] == 6 and totals[0] < 6


def test_quirk_groq_usage() -> None:
    chunks = openai_chunks({"text": "a b", "quirks": {"groq_usage": True}}, include_usage=True)
    (finish,) = finish_chunks(chunks)
    assert finish["x_groq"]["usage"]["completion_tokens"] == 2
    assert "usage" not in finish
    assert not [c for c in chunks if isinstance(c, dict) and c["choices"] == []]


def test_quirk_no_finish_reason() -> None:
    chunks = openai_chunks({"tool_calls": TWO_CALLS, "quirks": {"no_finish_reason": True}})
    assert finish_chunks(chunks) == []
    assert chunks[-1] == "[DONE]"


def test_tool_finish_reason_and_quirk_finish_stop_with_tools() -> None:
    (normal,) = finish_chunks(openai_chunks({"tool_calls": TWO_CALLS}))
    assert normal["choices"][0]["finish_reason"] == "tool_calls"
    (quirky,) = finish_chunks(
        openai_chunks({"tool_calls": TWO_CALLS, "quirks": {"finish_stop_with_tools": True}})
    )
    assert quirky["choices"][0]["finish_reason"] == "stop"


def test_tool_indexes_and_quirks_tool_index_zero_and_no_tool_index() -> None:
    normal = tool_deltas(openai_chunks({"tool_calls": TWO_CALLS}))
    assert [d["index"] for d in normal] == [0, 0, 1, 1]
    assert [d.get("id") for d in normal] == ["call_a", None, "call_b", None]
    zero = tool_deltas(openai_chunks({"tool_calls": TWO_CALLS, "quirks": {"tool_index_zero": True}}))
    assert {d["index"] for d in zero} == {0}
    assert [d["id"] for d in zero if "id" in d] == ["call_a", "call_b"]
    missing = tool_deltas(openai_chunks({"tool_calls": TWO_CALLS, "quirks": {"no_tool_index": True}}))
    assert missing and all("index" not in d for d in missing)


def test_quirk_args_fragments_and_interleave() -> None:
    quirks = {"args_fragments": 4, "interleave_tool_args": True}
    deltas = tool_deltas(openai_chunks({"tool_calls": TWO_CALLS, "quirks": quirks}))
    fragments = [d for d in deltas if "id" not in d]
    assert [d["index"] for d in fragments] == [0, 1, 0, 1, 0, 1, 0, 1]
    for index, call in enumerate(TWO_CALLS):
        joined = "".join(d["function"]["arguments"] for d in deltas if d["index"] == index)
        assert orjson.loads(joined) == call["arguments"]
    plain = tool_deltas(openai_chunks({"tool_calls": TWO_CALLS, "quirks": {"args_fragments": 3}}))
    assert [d["index"] for d in plain] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_raw_string_arguments_are_sent_verbatim() -> None:
    deltas = tool_deltas(openai_chunks({"tool_calls": [{"name": "t", "arguments": '{"broken": '}]}))
    assert "".join(d["function"]["arguments"] for d in deltas) == '{"broken": '


def test_quirk_no_done_and_crlf() -> None:
    assert openai_chunks({"text": "a", "quirks": {"no_done": True}})[-1] != "[DONE]"
    frames = openai_frames({"text": "a b", "quirks": {"crlf": True}})
    assert all(f.data.endswith(b"\r\n\r\n") and f.data.count(b"\n") == 2 for f in frames)


def test_openai_midstream_error_replaces_the_tail() -> None:
    chunks = openai_chunks({"text": "a b", "midstream_error": {"message": "boom"}}, include_usage=True)
    assert chunks[-1] == {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}
    assert finish_chunks(chunks) == []


def test_frame_kinds_mark_content() -> None:
    kinds = [f.kind for f in openai_frames({"text": "a b c", "chunks": 3}, include_usage=True)]
    assert kinds == [META, CHUNK, CHUNK, CHUNK, TAIL, TAIL, TAIL]


def test_openai_non_stream_message() -> None:
    reply = parse_reply(
        {"thinking": "t", "tool_calls": TWO_CALLS[:1], "quirks": {"reasoning_field": "reasoning"}}
    )
    body = orjson.loads(OPENAI.message(reply, usage_for(reply, 40), context(stream=False)))
    message = body["choices"][0]["message"]
    assert message["content"] is None and message["reasoning"] == "t"
    assert message["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris","unit":"celsius"}',
    }
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"]["prompt_tokens"] == 10


# --- Anthropic -----------------------------------------------------------------------------------------


def anthropic_events(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    reply = parse_reply(spec)
    out = []
    for frame in ANTHROPIC.stream(reply, usage_for(reply, 400), context()):
        event_line, data_line, blank, end = frame.data.split(b"\n")
        assert (blank, end) == (b"", b"")
        name = event_line.removeprefix(b"event: ").decode()
        data = orjson.loads(data_line.removeprefix(b"data: "))
        assert data["type"] == name
        out.append((name, data))
    return out


def test_anthropic_event_sequence_obeys_the_sdk_rules() -> None:
    events = anthropic_events({"thinking": "x y", "text": "a b c", "tool_calls": TWO_CALLS, "chunks": 2})
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    open_index = None
    started = []
    for name, data in events:
        if name == "content_block_start":
            assert open_index is None
            open_index = data["index"]
            started.append((data["index"], data["content_block"]["type"]))
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
    assert started == [(0, "thinking"), (1, "text"), (2, "tool_use"), (3, "tool_use")]
    signature = [
        d for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"
    ]
    assert len(signature) == 1 and signature[0]["index"] == 0
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert (
        delta["usage"]["output_tokens"]
        == usage_for(
            parse_reply({"thinking": "x y", "text": "a b c", "tool_calls": TWO_CALLS}), 0
        ).completion_tokens
    )


def test_anthropic_stop_reason_mapping() -> None:
    assert (
        anthropic_events({"text": "a", "finish_reason": "length"})[-2][1]["delta"]["stop_reason"]
        == "max_tokens"
    )
    assert anthropic_events({"text": "a"})[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_anthropic_midstream_error_and_crlf() -> None:
    events = anthropic_events({"text": "a b", "midstream_error": {"message": "gone"}})
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "gone"}})
    assert "message_stop" not in [name for name, _ in events]
    reply = parse_reply({"text": "a", "quirks": {"crlf": True}})
    frames = ANTHROPIC.stream(reply, usage_for(reply, 1), context())
    assert all(f.data.endswith(b"\r\n\r\n") and b"\n" not in f.data.replace(b"\r\n", b"") for f in frames)


def test_anthropic_error_body_shape() -> None:
    reply = parse_reply({"error": {"status": 413, "message": "too big"}})
    assert reply.error is not None
    body = orjson.loads(ANTHROPIC.error(reply.error, context()))
    assert body == {
        "type": "error",
        "error": {"type": "request_too_large", "message": "too big"},
        "request_id": "req_mock7",
    }


# --- Gemini, over the wire -----------------------------------------------------------------------------


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as provider:
        yield provider


GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


async def test_gemini_sse_uses_crlf_framing(mock: MockProvider) -> None:
    mock.script([{"thinking": "plan", "text": "one two three", "chunks": 3, "tool_calls": TWO_CALLS}])
    url = f"{mock.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    async with aiohttp.ClientSession() as session, session.post(url, json=GEMINI_BODY) as resp:
        assert resp.headers["content-type"] == "text/event-stream"
        raw = await resp.read()
    assert raw.endswith(b"\r\n\r\n")
    frames = raw.split(b"\r\n\r\n")[:-1]
    assert all(f.startswith(b"data: ") and b"\n" not in f for f in frames)
    chunks = [orjson.loads(f[6:]) for f in frames]
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert parts[0] == {"text": "plan", "thought": True}
    assert "".join(p.get("text", "") for p in parts if not p.get("thought")) == "one two three"
    calls = [c for c in chunks if "functionCall" in c["candidates"][0]["content"]["parts"][0]]
    assert len(calls) == 1
    assert [p["functionCall"] for p in calls[0]["candidates"][0]["content"]["parts"]] == [
        {"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}, "id": "call_a"},
        {"name": "get_time", "args": {"timezone": "Europe/Paris"}, "id": "call_b"},
    ]
    last = chunks[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"]["thoughtsTokenCount"] == 1
    assert last["modelVersion"] == "gemini-2.5-flash"


async def test_gemini_non_stream_and_json_array_stream(mock: MockProvider) -> None:
    base = f"{mock.url}/v1beta/models/gemini-pro"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}:generateContent?key=abc", json=GEMINI_BODY) as resp:
            body = await resp.json()
        assert body["candidates"][0]["content"]["parts"] == [
            {"text": "Hello from the ccr-fast mock provider."}
        ]
        assert body["candidates"][0]["finishReason"] == "STOP"
        assert body["usageMetadata"]["candidatesTokenCount"] == 6
        async with session.post(f"{base}:streamGenerateContent", json=GEMINI_BODY) as resp:
            array = orjson.loads(await resp.read())
        assert isinstance(array, list) and array[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_gemini_errors_and_auto_mode(mock: MockProvider) -> None:
    url = f"{mock.url}/v1beta/models/gemini-pro:generateContent"
    mock.script([{"error": {"status": 429, "message": "quota"}}])
    turn = {
        "contents": [
            {"role": "user", "parts": [{"text": "MOCK_TOOL:lookup:{}"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "lookup", "response": {"result": "42"}}}],
            },
        ]
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=GEMINI_BODY) as resp:
            assert resp.status == 429
            assert await resp.json() == {
                "error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}
            }
        async with session.post(url, json=turn) as resp:
            parts = (await resp.json())["candidates"][0]["content"]["parts"]
        assert parts == [{"text": "Tool result received: 42"}]
        async with session.post(url, json={"contents": turn["contents"][:1]}) as resp:
            parts = (await resp.json())["candidates"][0]["content"]["parts"]
        assert parts == [{"functionCall": {"name": "lookup", "args": {}}}]


def test_gemini_midstream_error_chunk() -> None:
    reply = parse_reply({"text": "a", "midstream_error": {"message": "bad"}})
    frames = GEMINI.stream(reply, usage_for(reply, 4), context())
    assert frames[-1] == Frame(
        TAIL, b'data: {"error":{"code":500,"message":"bad","status":"INTERNAL"}}\r\n\r\n'
    )


def test_every_dialect_echoes_the_model() -> None:
    reply = Reply()
    for dialect in (OPENAI, ANTHROPIC, GEMINI):
        assert b'"model-x"' in dialect.message(reply, usage_for(reply, 4), context(stream=False))
