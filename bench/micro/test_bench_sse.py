"""SSE decoding: compiled ``ccr_fast._ext.sse_framer`` against the pure-Python twin.

Run with ``pytest bench/micro/test_bench_sse.py --benchmark-enable`` and compare the ``pure`` and
``compiled`` rows of each group; the target for the realistic OpenAI stream is compiled at least 5x faster.
Streams are built the way upstreams send them and cut into network-sized chunks (1-4 KB, varying), since
chunking decides how much partial-line work the decoder does.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from ccr_fast import _speedups
from ccr_fast.protocol import sse
from ccr_fast.protocol.anthropic_stream import AnthropicUsagePeek

COMPILED = _speedups.compiled("sse_framer")
NOT_BUILT = "ccr_fast._ext.sse_framer is not built (run: python setup.py build_ext --inplace)"
IMPLS = [
    pytest.param("1", id="pure"),
    pytest.param("0", id="compiled", marks=pytest.mark.skipif(COMPILED is None, reason=NOT_BUILT)),
]
CHUNK_SIZES = (1460, 4096, 2920, 1024, 3500)


def network_chunks(stream: bytes) -> list[bytes]:
    """``stream`` cut into chunks of 1-4 KB, cycling through a few sizes as a TCP stream would deliver."""
    chunks: list[bytes] = []
    sizes = itertools.cycle(CHUNK_SIZES)
    pos = 0
    while pos < len(stream):
        size = next(sizes)
        chunks.append(stream[pos : pos + size])
        pos += size
    return chunks


def openai_stream(events: int) -> bytes:
    """An OpenAI chat.completion.chunk stream: ``events`` content deltas, finish, usage, [DONE]."""
    base = {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_eb9dce56a8",
    }
    words = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", " – 5 €", "."]
    out = []
    for i in range(events):
        delta = {"content": words[i % len(words)]}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        out.append(b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n")
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    out.append(b"data: " + orjson.dumps({**base, "choices": [finish]}) + b"\n\n")
    usage = {"prompt_tokens": 1117, "completion_tokens": events, "total_tokens": 1117 + events}
    out.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def anthropic_stream(deltas: int) -> bytes:
    """An Anthropic Messages stream with ``deltas`` text deltas between the usual framing events."""

    def frame(name: str, payload: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    usage = {
        "input_tokens": 472,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }
    message: dict[str, Any] = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-5",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    out = [
        frame("message_start", {"type": "message_start", "message": message}),
        frame(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        frame("ping", {"type": "ping"}),
    ]
    for i in range(deltas):
        delta = {"type": "text_delta", "text": f" token{i} €"}
        out.append(frame("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    out.append(frame("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(
        frame(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": deltas},
            },
        )
    )
    out.append(frame("message_stop", {"type": "message_stop"}))
    return b"".join(out)


def decoder_class(pure: str) -> Any:
    return sse.SSEDecoder if pure == "1" else COMPILED.SSEDecoder  # type: ignore[union-attr]


def decode_all(decoder_cls: Any, chunks: list[bytes]) -> int:
    decoder = decoder_cls()
    count = 0
    for chunk in chunks:
        count += len(decoder.feed(chunk))
    return count + len(decoder.close())


@pytest.mark.parametrize("pure", IMPLS)
@pytest.mark.parametrize("events", [50, 200])
def test_openai_stream(benchmark: BenchmarkFixture, pure: str, events: int) -> None:
    benchmark.group = f"sse: OpenAI stream, {events} events, 1-4 KB chunks"
    chunks = network_chunks(openai_stream(events))
    assert benchmark(decode_all, decoder_class(pure), chunks) == events + 3


@pytest.mark.parametrize("pure", IMPLS)
def test_crlf_stream(benchmark: BenchmarkFixture, pure: str) -> None:
    benchmark.group = "sse: OpenAI-shaped stream with CRLF framing, 200 events"
    chunks = network_chunks(openai_stream(200).replace(b"\n", b"\r\n"))
    assert benchmark(decode_all, decoder_class(pure), chunks) == 203


@pytest.mark.parametrize("pure", IMPLS)
def test_anthropic_stream(benchmark: BenchmarkFixture, pure: str) -> None:
    benchmark.group = "sse: Anthropic stream, 200 deltas, 1-4 KB chunks"
    chunks = network_chunks(anthropic_stream(200))
    assert benchmark(decode_all, decoder_class(pure), chunks) == 206


@pytest.mark.parametrize("pure", IMPLS)
def test_large_single_line(benchmark: BenchmarkFixture, pure: str) -> None:
    benchmark.group = "sse: one 1 MB data line, 1 KB chunks"
    stream = b"data: " + b"QUJD" * (1 << 18) + b"\n\n"
    chunks = [stream[i : i + 1024] for i in range(0, len(stream), 1024)]
    assert benchmark(decode_all, decoder_class(pure), chunks) == 1


@pytest.mark.parametrize("pure", IMPLS)
def test_usage_peek(benchmark: BenchmarkFixture, pure: str, monkeypatch: pytest.MonkeyPatch) -> None:
    benchmark.group = "sse: Anthropic usage peek, 200 deltas"
    monkeypatch.setenv("CCR_FAST_PURE", pure)
    chunks = network_chunks(anthropic_stream(200))

    def peek() -> int:
        usage_peek = AnthropicUsagePeek()
        for chunk in chunks:
            usage_peek.feed(chunk)
        usage_peek.close()
        return usage_peek.usage["output_tokens"]

    assert benchmark(peek) == 200
