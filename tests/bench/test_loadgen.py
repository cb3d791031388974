"""The asyncio load client: SSE content detection, HTTP framing, open-loop runs against the real mock."""

from __future__ import annotations

import math

import orjson
from bench.bodies import OPENAI_HEADERS
from bench.loadgen import (
    EventScanner,
    HttpRequest,
    back_to_back,
    fetch_once,
    is_content_event,
    open_loop,
    percentile,
    summarize,
    summarize_run,
)

from ccr_fast.mock import MockProvider


def _openai_chunk(delta: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": delta}]})


def test_content_events_in_both_dialects() -> None:
    assert is_content_event(b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0}')
    assert not is_content_event(b'event: message_start\ndata: {"type":"message_start"}')
    assert is_content_event(_openai_chunk({"content": "hi"}))
    assert is_content_event(_openai_chunk({"reasoning_content": "hmm"}))
    assert is_content_event(_openai_chunk({"tool_calls": [{"index": 0}]}))
    assert not is_content_event(_openai_chunk({"role": "assistant", "content": ""}))
    assert not is_content_event(b"data: [DONE]")
    assert not is_content_event(b'data: {"choices": []}')
    assert not is_content_event(b": keep-alive comment")


def test_scanner_joins_events_split_across_reads_and_crlf() -> None:
    stamps: list[float] = []
    scanner = EventScanner(stamps)
    event = b'event: content_block_delta\r\ndata: {"type":"content_block_delta"}\r\n\r\n'
    scanner.feed(event[:20], 1.0)
    assert stamps == []
    scanner.feed(event[20:] + event[:5], 2.0)
    assert stamps == [2.0]
    scanner.feed(event[5:] + b"event: ping\r\ndata: {}\r\n\r\n", 3.0)
    assert stamps == [2.0, 3.0]


def test_request_encoding() -> None:
    request = HttpRequest("127.0.0.1", 8080, "/v1/x", (("a", "b"),), b"{}")
    raw = request.encode()
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.split(b"\r\n")[0] == b"POST /v1/x HTTP/1.1"
    assert b"content-length: 2" in head and b"a: b" in head
    assert body == b"{}"


def test_percentiles_and_summary() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert math.isnan(percentile([], 50))
    summary = summarize([0.001, 0.002, 0.003])
    assert summary["count"] == 3
    assert summary["p50"] == 2.0 and summary["max"] == 3.0
    assert summarize([]) == {"count": 0}


def _chat(mock: MockProvider, stream: bool) -> HttpRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return HttpRequest("127.0.0.1", mock.port, "/v1/chat/completions", OPENAI_HEADERS, orjson.dumps(body))


async def test_fetch_once_counts_streamed_chunks(mock: MockProvider) -> None:
    mock.script([{"text": "one two three four five", "chunks": 5}])
    record, body = await fetch_once(_chat(mock, True), stream=True)
    assert record.status == 200
    assert len(record.content) == 5
    assert body.rstrip().endswith(b"data: [DONE]")
    assert record.ttft is not None and record.ttft > 0


async def test_open_loop_non_stream(mock: MockProvider) -> None:
    run = await open_loop(_chat(mock, False), rate=40, duration=0.5, stream=False, connections=2, warmup=2)
    assert len(run.exchanges) == 20
    assert run.errors == 0
    summary = summarize_run(run)
    assert summary["latency_ms"]["count"] == 20
    assert summary["latency_ms"]["min"] > 0
    assert 0 < summary["achieved_rate"] <= 60
    assert "ttft_ms" not in summary


async def test_open_loop_stream_gaps(mock: MockProvider) -> None:
    spec = {"text": "a b c d", "chunks": 4, "chunk_delay_ms": 5}
    mock.script([spec] * 12)
    run = await open_loop(_chat(mock, True), rate=20, duration=0.5, stream=True, connections=2, warmup=2)
    assert run.errors == 0
    summary = summarize_run(run)
    assert summary["content_events"]["min"] == summary["content_events"]["max"] == 4
    assert summary["gap_ms"]["count"] == 3 * 10
    assert summary["gap_ms"]["p50"] >= 4.0


async def test_errors_are_counted(mock: MockProvider) -> None:
    mock.script([{"error": {"status": 429, "message": "slow down"}}] * 10)
    run = await open_loop(_chat(mock, False), rate=20, duration=0.25, stream=False, connections=1, warmup=0)
    assert run.errors == len(run.exchanges) == 5
    assert run.error_kinds() == {"HTTP 429": 5}


async def test_back_to_back_uses_one_connection(mock: MockProvider) -> None:
    run = await back_to_back(_chat(mock, False), duration=0.2, stream=False, warmup=2)
    assert run.connections_opened == 1
    assert run.errors == 0
    assert len(run.exchanges) > 10
    sends = [e.sent for e in run.exchanges]
    ends = [e.end for e in run.exchanges]
    assert all(later >= done for done, later in zip(ends, sends[1:], strict=False))
