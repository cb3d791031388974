"""Building Anthropic streams and running response filters over them, as the server chains them.

What comes out is checked with ``tests.sse_checks``: against the event rules the Anthropic SDK's
accumulator relies on (protocols.md §2.3) and by letting the official ``anthropic`` client assemble the
message from the bytes through a mock transport.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import orjson

from ccr_fast.protocol.openai_stream import OpenAIStreamTranslator
from ccr_fast.transformers.base import ResponseFilter
from tests.sse_checks import JSONDict

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
