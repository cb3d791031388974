"""Building Anthropic streams, running response filters over them, and checking what comes out.

Every filter test checks its output twice: against the event rules the Anthropic SDK's accumulator
relies on (protocols.md §2.3) and by letting the official ``anthropic`` client assemble the message from
the bytes through a mock transport.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import anthropic
import httpx2
import orjson

from ccr_fast.protocol.openai_stream import OpenAIStreamTranslator
from ccr_fast.transformers.base import ResponseFilter

JSONDict = dict[str, Any]

DELTA_FOR = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
}
PING = b'event: ping\ndata: {"type": "ping"}\n\n'
USAGE = {
    "input_tokens": 31,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 4,
    "output_tokens": 17,
}


def frame(name: str, data: JSONDict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def text(*pieces: str) -> JSONDict:
    return {
        "block": {"type": "text", "text": ""},
        "deltas": [{"type": "text_delta", "text": p} for p in pieces],
    }


def thinking(*pieces: str) -> JSONDict:
    deltas: list[JSONDict] = [{"type": "thinking_delta", "thinking": p} for p in pieces]
    deltas.append({"type": "signature_delta", "signature": "sig"})
    return {"block": {"type": "thinking", "thinking": "", "signature": ""}, "deltas": deltas}


def tool_use(name: str, *fragments: str, tool_id: str = "toolu_01") -> JSONDict:
    return {
        "block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
        "deltas": [{"type": "input_json_delta", "partial_json": f} for f in fragments],
    }


def stream(*blocks: JSONDict, stop_reason: str = "end_turn", usage: JSONDict | None = None) -> list[bytes]:
    """The events of a complete Anthropic stream, one ``bytes`` per event."""
    start_usage = {**(usage or USAGE), "output_tokens": 1}
    message: JSONDict = {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-test",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    out = [frame("message_start", {"type": "message_start", "message": message})]
    for index, spec in enumerate(blocks):
        out.append(
            frame(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": spec["block"]},
            )
        )
        for delta in spec["deltas"]:
            out.append(
                frame("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            )
        out.append(frame("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": usage or USAGE,
    }
    out.append(frame("message_delta", delta))
    out.append(frame("message_stop", {"type": "message_stop"}))
    return out


def run_filter(
    make: Callable[[], ResponseFilter], events: Sequence[bytes], rng: random.Random | None = None
) -> bytes:
    """Feed ``events`` to a new filter in groups of whole events (random groups when ``rng`` is given)."""
    f = make()
    out: list[bytes] = []
    i = 0
    while i < len(events):
        size = rng.randint(1, 4) if rng is not None else 1
        out.append(f.feed(b"".join(events[i : i + size])))
        i += size
    out.append(f.close())
    return b"".join(out)


def run_chain(makers: Sequence[Callable[[], ResponseFilter]], events: Sequence[bytes]) -> bytes:
    """What the server does with a plan's filters: each event group through every filter in order."""
    filters = [make() for make in makers]
    out: list[bytes] = []
    for data in events:
        for f in filters:
            data = f.feed(data)
        out.append(data)
    tail = b""
    for f in filters:
        tail = f.feed(tail) + f.close() if tail else f.close()
    out.append(tail)
    return b"".join(out)


def random_pieces(value: str, rng: random.Random, most: int = 6) -> list[str]:
    """``value`` cut at random places (every piece non-empty)."""
    pieces: list[str] = []
    i = 0
    while i < len(value):
        size = rng.randint(1, most)
        pieces.append(value[i : i + size])
        i += size
    return pieces


def openai_stream(*chunks: JSONDict | str) -> bytes:
    """Upstream OpenAI SSE for the given chunk objects; the string "[DONE]" is the end marker."""
    return b"".join(
        b"data: " + (c.encode() if isinstance(c, str) else orjson.dumps(c)) + b"\n\n" for c in chunks
    )


def translated(raw: bytes, rng: random.Random) -> list[bytes]:
    """Run an OpenAI stream, cut into random network reads, through the translator: its output per read."""
    translator = OpenAIStreamTranslator(model="claude-test", message_id="msg_test", implementation="pure")
    out: list[bytes] = []
    i = 0
    while i < len(raw):
        size = rng.randint(1, 40)
        piece = translator.feed(raw[i : i + size])
        if piece:
            out.append(piece)
        i += size
    out.append(translator.close())
    return out


def parse(out: bytes) -> list[JSONDict]:
    """Anthropic frames, strictly: ``event: <type>\\ndata: <json>\\n\\n`` with data.type == type."""
    assert out.endswith(b"\n\n")
    events = []
    for chunk in out.split(b"\n\n")[:-1]:
        head, data = chunk.split(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: ")
        name, body = head[7:].decode(), orjson.loads(data[6:])
        assert body["type"] == name
        events.append(body)
    return events


def check_order(out: bytes) -> list[JSONDict]:
    """The rules of protocols.md §2.3; returns the parsed events (pings left out)."""
    events = [e for e in parse(out) if e["type"] != "ping"]
    assert events[0]["type"] == "message_start"
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
            open_block = {"index": event["index"], "type": event["content_block"]["type"]}
        elif kind == "content_block_delta":
            assert open_block is not None and event["index"] == open_block["index"]
            assert event["delta"]["type"] in DELTA_FOR[open_block["type"]]
        elif kind == "content_block_stop":
            assert open_block is not None and event["index"] == open_block["index"]
            open_block = None
        elif kind == "message_delta":
            assert open_block is None
            message_deltas += 1
            assert event["delta"]["stop_reason"] is not None
            assert "output_tokens" in event["usage"]
        elif kind == "message_stop":
            assert last and message_deltas == 1
        elif kind == "error":
            assert last
        else:
            raise AssertionError(f"unexpected event {kind}")
    return events


def sdk_message(out: bytes) -> anthropic.types.Message:
    """What the official SDK assembles from ``out``."""

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
    ) as sdk_stream:
        return sdk_stream.get_final_message()


def checked(out: bytes) -> anthropic.types.Message:
    """``out`` checked against the event rules, then assembled by the SDK."""
    check_order(out)
    return sdk_message(out)


def blocks(message: anthropic.types.Message) -> list[JSONDict]:
    """The message's content as plain dicts, without the fields the SDK fills in with None."""
    out = []
    for block in message.content:
        dumped = block.model_dump(exclude_none=True)
        dumped.pop("caller", None)
        out.append(dumped)
    return out
