"""Gemini stream → Anthropic stream: shared vectors (compiled and pure SSE decoder), event-order rules, the
SDK's view, agreement with the non-stream translator, and a real round trip through the mock provider.

Every vector output is checked three ways: against the vector's expected event list, against the ordering
rules the Anthropic SDK's accumulator relies on (protocols.md §2.3), and by feeding the bytes to the official
``anthropic`` client through a mock transport and comparing the message it assembles.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sse_checks import (
    blocks,
    check_order,
    check_vector,
    normalise,
    parse,
    sdk_message,
    without_minted_ids,
)

from ccr_fast import _speedups
from ccr_fast.mock import MockProvider
from ccr_fast.protocol.gemini_request import anthropic_to_gemini, gemini_url
from ccr_fast.protocol.gemini_response import gemini_to_anthropic
from ccr_fast.protocol.gemini_stream import GeminiStreamTranslator

VECTORS = Path(__file__).parent.parent / "vectors" / "gemini"
NAMES = sorted(p.stem for p in VECTORS.glob("*.sse"))
#: the vectors that end in a message (the others end in an error event)
MESSAGE_NAMES = [n for n in NAMES if "message" in json.loads((VECTORS / f"{n}.json").read_text())]
BUILT = _speedups.compiled("sse_framer") is not None


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


# --- helpers ----------------------------------------------------------------------------------------------


def load_vector(name: str) -> tuple[bytes, dict[str, Any]]:
    return (VECTORS / f"{name}.sse").read_bytes(), json.loads((VECTORS / f"{name}.json").read_text())


def translator(input_tokens: int = 0) -> GeminiStreamTranslator:
    return GeminiStreamTranslator(model="claude-vector", message_id="msg_vector", input_tokens=input_tokens)


def run(reads: list[bytes], input_tokens: int = 0) -> bytes:
    t = translator(input_tokens)
    return b"".join(t.feed(read) for read in reads) + t.close()


def run_stable(reads: list[bytes], input_tokens: int = 0) -> bytes:
    """``run`` with minted (random) tool ids replaced, so that two runs can be compared byte for byte."""
    return without_minted_ids(run(reads, input_tokens))


def sse(*chunks: Any) -> bytes:
    """Gemini SSE (CRLF framing) for the given response objects."""
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)


def response(parts: list[Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **extra}


def upstream_chunks(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in raw.splitlines() if line.startswith(b"data: ")]


# --- the shared vectors -----------------------------------------------------------------------------------


def test_vectors_are_present() -> None:
    assert len(NAMES) >= 15
    for name in NAMES:
        assert (VECTORS / f"{name}.json").exists(), name


@pytest.mark.parametrize("name", NAMES)
def test_vector_in_one_read(decoder: str, name: str) -> None:
    raw, expected = load_vector(name)
    check_vector(expected, run([raw], expected["input_tokens"]))


@pytest.mark.parametrize("name", NAMES)
def test_vector_line_by_line_and_byte_by_byte(decoder: str, name: str) -> None:
    """protocols §6.1: any split of the upstream bytes gives the same output bytes (CRLF split included)."""
    raw, expected = load_vector(name)
    whole = run_stable([raw], expected["input_tokens"])
    assert run_stable(raw.splitlines(keepends=True), expected["input_tokens"]) == whole
    assert run_stable([raw[i : i + 1] for i in range(len(raw))], expected["input_tokens"]) == whole


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_splits_match_the_unsplit_feed(decoder: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NAMES))
    raw, expected = load_vector(name)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=40)))
    reads = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert run_stable(reads, expected["input_tokens"]) == run_stable([raw], expected["input_tokens"])


@pytest.mark.parametrize("name", MESSAGE_NAMES)
def test_non_stream_translation_of_the_same_parts_agrees(name: str) -> None:
    """All parts of a stream in one ``generateContent`` body give the content the SDK assembled from the
    stream: both translators follow the same block rules."""
    raw, expected = load_vector(name)
    chunks = upstream_chunks(raw)
    candidates = [c for chunk in chunks for c in chunk.get("candidates", [])]
    body: dict[str, Any] = {}
    if candidates:
        parts = [part for c in candidates for part in c["content"]["parts"]]
        body["candidates"] = [{"content": {"role": "model", "parts": parts}, "index": 0}]
        finish = [c["finishReason"] for c in candidates if "finishReason" in c]
        if finish:
            body["candidates"][0]["finishReason"] = finish[-1]
    for chunk in chunks:  # the last usage and feedback count, as in the stream
        body.update({k: chunk[k] for k in ("usageMetadata", "promptFeedback") if k in chunk})
    message = gemini_to_anthropic(body, model="claude-vector", message_id="msg_vector")
    assert normalise(message["content"]) == expected["message"]["content"]
    assert message["stop_reason"] == expected["message"]["stop_reason"]
    if "usageMetadata" in body:
        assert message["usage"] == expected["message"]["usage"]


# --- behaviours beyond the vectors ------------------------------------------------------------------------


def test_empty_stream_still_ends_the_message(decoder: str) -> None:
    t = translator(input_tokens=9)
    events = parse(t.feed(b"") + t.close())
    check_order(events)
    assert [e["type"] for e in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1]["usage"]["input_tokens"] == 9
    assert t.finished and not t.errored and t.stop_reason == "end_turn"
    assert t.close() == b"" and t.feed(sse(response([{"text": "late"}]))) == b""


def test_error_as_the_first_chunk_is_the_only_event(decoder: str) -> None:
    t = translator()
    error = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    events = parse(t.feed(sse(error)))
    assert events == [{"type": "error", "error": {"type": "rate_limit_error", "message": "Quota exceeded"}}]
    assert t.finished and t.errored and t.stop_reason is None
    assert t.close() == b"" and t.fail("api_error", "again") == b""


def test_nothing_is_emitted_after_an_error_chunk_in_the_same_read(decoder: str) -> None:
    raw = sse(
        response([{"text": "a"}]),
        {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}},
        response([{"text": "b"}], "STOP"),
    )
    events = parse(run([raw]))
    check_order(events)
    assert events[-1]["error"] == {"type": "api_error", "message": "Internal error"}
    assert [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"] == ["a"]


def test_fail_mid_stream_ends_with_an_error_event(decoder: str) -> None:
    t = translator()
    head = t.feed(sse(response([{"text": "Hel"}])))
    tail = t.fail("api_error", "upstream connection reset")
    events = parse(head + tail)
    check_order(events)
    assert events[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream connection reset"},
    }
    assert t.errored and t.finished
    assert t.feed(sse(response([{"text": "lo"}]))) == b"" and t.close() == b""


def test_garbage_other_candidates_and_unknown_parts_are_ignored(decoder: str) -> None:
    raw = b"data: not json\r\n\r\n" + sse(
        [1, 2],
        {"candidates": [{"index": 1, "content": {"parts": [{"text": "alternative"}]}}]},
        response([{"text": "mine"}, {"executableCode": {"code": "print(1)"}}, "junk", {"text": ""}]),
        response([{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}], "STOP"),
    )
    message = sdk_message(run([raw]))
    assert blocks(message) == [{"type": "text", "text": "mine"}]
    assert message.stop_reason == "end_turn"


def test_usage_and_stop_reason_are_readable_for_accounting(decoder: str) -> None:
    t = translator(input_tokens=5)
    t.feed(sse(response([{"text": "x"}], usageMetadata={"promptTokenCount": 40, "candidatesTokenCount": 1})))
    assert t.usage["input_tokens"] == 40 and t.stop_reason is None and not t.finished
    t.feed(
        sse(
            response(
                [{"functionCall": {"name": "Bash", "args": {"command": "ls"}}}],
                "STOP",
                usageMetadata={"promptTokenCount": 40, "candidatesTokenCount": 7, "thoughtsTokenCount": 3},
            )
        )
    )
    t.close()
    assert t.usage == {
        "input_tokens": 40,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 10,
    }
    assert t.stop_reason == "tool_use" and t.finished and not t.errored


def test_a_ten_megabyte_signature_passes_through(decoder: str) -> None:
    """protocols §5.2: no line-length cap; a huge thoughtSignature arrives whole, in any number of reads."""
    signature = "A" * 10_000_000
    raw = sse(
        response([{"functionCall": {"name": "Read", "args": {}}, "thoughtSignature": signature}], "STOP")
    )
    t = translator()
    out = b"".join(t.feed(raw[i : i + 65536]) for i in range(0, len(raw), 65536)) + t.close()
    message = sdk_message(out)
    assert message.content[0].signature == "gemini:" + signature  # type: ignore[union-attr]
    assert message.content[1].type == "tool_use"


# --- a real round trip through the mock provider -----------------------------------------------------------


async def stream_through(mock: MockProvider, body: dict[str, Any], model: str) -> bytes:
    """POST the translated body to the mock's Gemini stream endpoint and translate what comes back."""
    t = GeminiStreamTranslator(model=body["model"], input_tokens=3)
    out = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gemini_url(mock.url + "/v1beta/models/", model, stream=True),
            json=anthropic_to_gemini(body, model=model),
            headers={"x-goog-api-key": "test"},
        ) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for piece in resp.content.iter_any():
            out.append(t.feed(piece))
    out.append(t.close())
    assert t.finished and not t.errored
    return b"".join(out)


async def test_round_trip_with_the_mock_provider_including_a_tool_call(mock: MockProvider) -> None:
    mock.script(
        [
            {
                "thinking": "The user wants the listing.",
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
            "input_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"command": {"type": "string"}, "timeout": {"type": ["integer", "null"]}},
                "required": ["command"],
                "additionalProperties": False,
            },
        }
    ]
    first: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "max_tokens": 1024,
        "stream": True,
        "system": "You are terse.",
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": tools,
        "messages": [{"role": "user", "content": "list the files"}],
    }
    out = await stream_through(mock, first, "gemini-2.5-flash")
    check_order(parse(out))
    message = sdk_message(out)
    assert [b.type for b in message.content] == ["thinking", "tool_use"]
    call = message.content[1]
    assert call.type == "tool_use" and call.name == "Bash" and call.input == {"command": "ls"}
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 30 and message.usage.cache_read_input_tokens == 20

    sent = mock.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sent["query"] == "alt=sse"
    assert sent["body"]["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert sent["body"]["generationConfig"] == {
        "maxOutputTokens": 1024,
        "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True},
    }
    assert sent["body"]["tools"][0]["functionDeclarations"][0]["parameters"] == {
        "type": "OBJECT",
        "properties": {"command": {"type": "STRING"}, "timeout": {"type": "INTEGER", "nullable": True}},
        "required": ["command"],
    }

    # The client runs the tool and sends the whole history back; unscripted, the mock echoes the result.
    second = dict(first)
    second["messages"] = [
        *first["messages"],
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "a.txt\nb.txt"}],
        },
    ]
    reply = sdk_message(await stream_through(mock, second, "gemini-2.5-flash"))
    assert [b.type for b in reply.content] == ["text"]
    assert reply.content[0].text.startswith("Tool result received: a.txt")  # type: ignore[union-attr]
    assert reply.stop_reason == "end_turn"
    contents = mock.requests[-1]["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {
            "functionCall": {"name": "Bash", "args": {"command": "ls"}},
            "thoughtSignature": "skip_thought_signature_validator",  # the mock signs nothing
        }
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "Bash", "response": {"result": "a.txt\nb.txt"}}}
    ]


async def test_round_trip_mid_stream_error_from_the_mock(mock: MockProvider) -> None:
    mock.script([{"text": "one two three", "midstream_error": {"message": "backend died"}}])
    body = {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    t = GeminiStreamTranslator(model="claude")
    out = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gemini_url(mock.url + "/v1beta/models", "gemini-2.5-pro", stream=True),
            json=anthropic_to_gemini(body, model="gemini-2.5-pro"),
        ) as resp,
    ):
        async for piece in resp.content.iter_any():
            out.append(t.feed(piece))
    out.append(t.close())
    events = parse(b"".join(out))
    check_order(events)
    assert events[-1]["error"] == {"type": "api_error", "message": "backend died"}
    assert t.errored
