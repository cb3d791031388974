"""A whole Anthropic message rendered as the SSE stream that would have carried it.

Checked three ways: the frames parse back with our SSE decoder, the events come in the order the
protocol requires, and the official ``anthropic`` SDK's stream accumulator rebuilds the same message.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.sse_checks import sdk_message

from ccr_fast.protocol.anthropic_events import message_to_events
from ccr_fast.protocol.sse import SSEDecoder

USAGE = {
    "input_tokens": 12,
    "cache_creation_input_tokens": 3,
    "cache_read_input_tokens": 40,
    "output_tokens": 9,
}


def message(content: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": dict(USAGE),
    }
    out.update(extra)
    return out


TEXT = {"type": "text", "text": "Hello, world"}
THINKING = {"type": "thinking", "thinking": "Let me think.", "signature": "sig-abc"}
TOOL = {
    "type": "tool_use",
    "id": "toolu_1",
    "name": "get_weather",
    "input": {"city": "Zürich", "days": [1, 2]},
}
REDACTED = {"type": "redacted_thinking", "data": "opaque-bytes"}
SERVER_TOOL = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}}
SEARCH_RESULT = {
    "type": "web_search_tool_result",
    "tool_use_id": "srvtoolu_1",
    "content": [
        {
            "type": "web_search_result",
            "url": "https://e.test",
            "title": "E",
            "encrypted_content": "x",
            "page_age": None,
        }
    ],
}

MESSAGES = {
    "text": message([TEXT]),
    "thinking_text_tool": message([THINKING, TEXT, TOOL], stop_reason="tool_use"),
    "redacted": message([REDACTED, TEXT]),
    "server_tool": message([SERVER_TOOL, SEARCH_RESULT, TEXT]),
    "empty": message([], stop_reason="max_tokens"),
    "stop_sequence": message([TEXT], stop_reason="stop_sequence", stop_sequence="END"),
}


def parse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Strict framing: every frame is ``event: <type>`` + one ``data:`` line whose type matches."""
    assert raw.endswith(b"\n\n")
    for frame in raw.split(b"\n\n")[:-1]:
        head, data = frame.split(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: ")
    decoder = SSEDecoder()
    events = decoder.feed(raw)
    assert decoder.close() == []
    out = []
    for name, payload in events:
        assert name is not None
        data = orjson.loads(payload)
        assert data["type"] == name.decode()
        out.append((name.decode(), data))
    return out


def without_nones(value: Any) -> Any:
    """A copy without null-valued keys, as the SDK's ``model_dump(exclude_none=True)`` shows blocks."""
    if isinstance(value, dict):
        return {k: without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nones(v) for v in value]
    return value


# --- order and framing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_event_order(name: str) -> None:
    msg = MESSAGES[name]
    events = parse(message_to_events(msg))
    names = [n for n, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    body = names[1:-2]
    index = -1
    position = 0
    while position < len(body):
        assert body[position] == "content_block_start"
        index += 1
        assert events[1 + position][1]["index"] == index
        position += 1
        while body[position] == "content_block_delta":
            assert events[1 + position][1]["index"] == index
            position += 1
        assert body[position] == "content_block_stop"
        assert events[1 + position][1]["index"] == index
        position += 1
    assert index == len(msg["content"]) - 1


def test_message_start_is_an_empty_shell_with_input_usage() -> None:
    (_, start) = parse(message_to_events(MESSAGES["text"]))[0]
    assert start["message"] == {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-test",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 40,
            "output_tokens": 0,
        },
    }


def test_message_delta_carries_the_stop_reason_and_full_usage() -> None:
    events = parse(message_to_events(MESSAGES["stop_sequence"]))
    delta = next(d for n, d in events if n == "message_delta")
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    assert delta["usage"] == USAGE


def test_a_message_without_usage_still_reports_zero_counts() -> None:
    msg = message([TEXT])
    del msg["usage"]
    events = parse(message_to_events(msg))
    assert events[0][1]["message"]["usage"] == {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    assert events[-2][1]["usage"] == {"output_tokens": 0}


def test_block_payloads() -> None:
    events = parse(message_to_events(MESSAGES["thinking_text_tool"]))
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    assert starts == [
        {"type": "thinking", "thinking": ""},
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    ]
    assert deltas[:3] == [
        {"type": "thinking_delta", "thinking": "Let me think."},
        {"type": "signature_delta", "signature": "sig-abc"},
        {"type": "text_delta", "text": "Hello, world"},
    ]
    assert deltas[3]["type"] == "input_json_delta"
    assert orjson.loads(deltas[3]["partial_json"]) == TOOL["input"]


def test_thinking_without_a_signature_sends_no_signature_delta() -> None:
    events = parse(message_to_events(message([{"type": "thinking", "thinking": "t"}])))
    deltas = [d["delta"]["type"] for n, d in events if n == "content_block_delta"]
    assert deltas == ["thinking_delta"]


def test_blocks_without_deltas_arrive_whole_in_their_start_event() -> None:
    events = parse(message_to_events(MESSAGES["redacted"]))
    assert events[1] == (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": REDACTED},
    )
    assert events[2] == ("content_block_stop", {"type": "content_block_stop", "index": 0})


def test_missing_block_fields_become_empty_values() -> None:
    events = parse(
        message_to_events(message([{"type": "text"}, {"type": "tool_use", "id": "t", "name": "n"}]))
    )
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    assert deltas == [{"type": "text_delta", "text": ""}, {"type": "input_json_delta", "partial_json": "{}"}]


def test_the_input_message_is_not_changed() -> None:
    msg = MESSAGES["thinking_text_tool"]
    before = orjson.dumps(msg)
    message_to_events(msg)
    assert orjson.dumps(msg) == before


# --- what the SDK rebuilds ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_the_sdk_rebuilds_the_same_message(name: str) -> None:
    msg = MESSAGES[name]
    rebuilt = sdk_message(message_to_events(msg))
    assert rebuilt.id == msg["id"]
    assert rebuilt.model == msg["model"]
    assert rebuilt.stop_reason == msg["stop_reason"]
    assert rebuilt.stop_sequence == msg["stop_sequence"]
    assert rebuilt.usage.model_dump(include=set(USAGE)) == USAGE
    content = []
    for block in rebuilt.content:
        dumped = block.model_dump(exclude_none=True)
        for key in ("caller", "citations"):
            dumped.pop(key, None)
        content.append(dumped)
    assert content == without_nones(msg["content"])
