"""Checks for the Anthropic streams we emit: strict framing, the event-order rules, and the SDK's view.

Every translator and response filter has to produce a stream the official ``anthropic`` client can
assemble. Its accumulator trusts the event order without checking it (protocols.md §2.3), so a wrong order
shows up as a silently wrong message rather than an error; the tests therefore check the rules themselves
and then let the real SDK assemble the bytes through a mock transport.
"""

from __future__ import annotations

import re
from typing import Any

import anthropic
import httpx2
import orjson
import pytest

JSONDict = dict[str, Any]

USAGE_FIELDS = {"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}
#: which delta types each block type accepts (protocols.md §2.3, rule 4)
DELTA_FOR: dict[str, set[str]] = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
    "server_tool_use": {"input_json_delta"},
    "web_search_tool_result": set(),
}
#: tool ids the translators mint at random, and what a comparison sees instead
MINTED_IDS = [
    (re.compile(r"toolu_01[0-9A-Za-z]{24}"), "toolu_01*"),
    (re.compile(r"toolu_sha_[0-9a-f]{48}"), "toolu_sha_*"),
]


def parse(out: bytes) -> list[JSONDict]:
    """Anthropic frames, strictly: ``event: <type>\\ndata: <json>\\n\\n`` with data.type == type.

    The event name is dropped from the result because the check makes it equal to the payload's ``type``.
    """
    assert out.endswith(b"\n\n") or not out
    events = []
    for frame in out.split(b"\n\n")[:-1]:
        head, data = frame.split(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: ")
        name, body = head[7:].decode(), orjson.loads(data[6:])
        assert body["type"] == name
        events.append(body)
    return events


def check_order(events: list[JSONDict]) -> None:
    """The rules of protocols.md §2.3, which the SDK accumulator assumes without checking.

    Pings may come anywhere (§2.4), so they are passed over.
    """
    events = [e for e in events if e["type"] != "ping"]
    assert events and events[0]["type"] == "message_start"
    assert isinstance(events[0]["message"]["usage"], dict)
    started = 0
    open_block: JSONDict | None = None
    message_deltas = 0
    for position, event in enumerate(events[1:], start=1):
        kind = event["type"]
        last = position == len(events) - 1
        if kind == "content_block_start":
            assert open_block is None and message_deltas == 0
            assert event["index"] == started
            started += 1
            open_block = {"index": event["index"], "type": event["content_block"]["type"], "signature": False}
        elif kind == "content_block_delta":
            assert open_block is not None and event["index"] == open_block["index"]
            assert event["delta"]["type"] in DELTA_FOR[open_block["type"]]
            assert not open_block["signature"], "nothing may follow a thinking block's signature"
            open_block["signature"] = event["delta"]["type"] == "signature_delta"
        elif kind == "content_block_stop":
            assert open_block is not None and event["index"] == open_block["index"]
            if open_block["type"] == "thinking":
                assert open_block["signature"], "a thinking block ends with its signature_delta"
            open_block = None
        elif kind == "message_delta":
            assert open_block is None
            message_deltas += 1
            assert event["delta"]["stop_reason"] is not None
            assert set(event["usage"]) >= USAGE_FIELDS
        elif kind == "message_stop":
            assert last and message_deltas == 1
        elif kind == "error":
            assert last and message_deltas == 0
        else:
            raise AssertionError(f"unexpected event {kind}")
    assert events[-1]["type"] in ("message_stop", "error")


def sdk_message(out: bytes) -> anthropic.types.Message:
    """What the official SDK assembles from our bytes (raises the SDK's error for an ``event: error``)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=out)

    client = anthropic.Anthropic(
        api_key="test",
        base_url="http://upstream.test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client.messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        return stream.get_final_message()


def checked(out: bytes) -> anthropic.types.Message:
    """``out`` checked for framing and event order, then assembled by the SDK."""
    check_order(parse(out))
    return sdk_message(out)


def blocks(message: anthropic.types.Message) -> list[JSONDict]:
    """The message's content as plain dicts, without the fields the SDK fills in on its own."""
    out = []
    for block in message.content:
        dumped = block.model_dump(exclude_none=True)
        dumped.pop("caller", None)
        dumped.pop("toolset_name", None)
        out.append(dumped)
    return out


# --- shared translator vectors (tests/vectors/<upstream>/*.json) ----------------------------------------


def without_minted_ids(out: bytes) -> bytes:
    """Stream bytes with minted (random) tool ids replaced, so that two runs compare byte for byte."""
    for pattern, placeholder in MINTED_IDS:
        out = re.sub(pattern.pattern.encode(), placeholder.encode(), out)
    return out


def normalise(value: Any) -> Any:
    """``value`` with every minted tool id replaced by its placeholder, as the vector files write them."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        for pattern, placeholder in MINTED_IDS:
            if pattern.fullmatch(value):
                return placeholder
    return value


def sdk_view(message: anthropic.types.Message) -> Any:
    """The parts of an SDK-assembled message a vector's ``message`` pins down."""
    return normalise(
        {
            "content": blocks(message),
            "stop_reason": message.stop_reason,
            "usage": message.usage.model_dump(include=USAGE_FIELDS),
        }
    )


def check_vector(expected: JSONDict, out: bytes) -> None:
    """``out`` against a vector: the order rules, the exact events, and what the SDK makes of them."""
    events = parse(out)
    check_order(events)
    assert normalise([{"event": e["type"], "data": e} for e in events]) == expected["events"]
    if "error" in expected:
        with pytest.raises(anthropic.APIStatusError) as raised:
            sdk_message(out)
        assert isinstance(raised.value.body, dict)
        assert raised.value.body["error"] == expected["error"]
    else:
        assert sdk_view(sdk_message(out)) == expected["message"]
