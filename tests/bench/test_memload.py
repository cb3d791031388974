"""The memory phases' load: streams held open in steps, and a soak with periodic samples (real mock)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from bench.bodies import OPENAI_HEADERS
from bench.loadgen import HttpRequest
from bench.memload import hold_streams, soak, step_counts

from ccr_fast.mock import MockProvider


def _chat(mock: MockProvider, stream: bool) -> HttpRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return HttpRequest("127.0.0.1", mock.port, "/v1/chat/completions", OPENAI_HEADERS, orjson.dumps(body))


class Sampler:
    """Stands in for reading /proc: counts its calls and reports the call number as megabytes."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"rss_mb": float(self.calls), "pss_mb": float(self.calls)}


def test_step_counts() -> None:
    assert step_counts(1000, 5) == [200, 400, 600, 800, 1000]
    assert step_counts(3, 5) == [1, 2, 3]
    assert step_counts(10, 1) == [10]
    assert step_counts(0, 5) == []


async def test_hold_streams_samples_each_step_then_closes_them(mock: MockProvider) -> None:
    mock.script([{"text": " ".join("abcdefghij"), "chunks": 10, "chunk_delay_ms": 300}] * 6)
    sampler = Sampler()
    result = await hold_streams(
        _chat(mock, True), steps=[3, 6], sample=sampler, ramp_rate=100, settle=0.1, after=0.2
    )
    assert [p["open"] for p in result["points"]] == [0, 3, 6]
    assert [p["requested"] for p in result["points"]] == [0, 3, 6]
    assert [p["pss_mb"] for p in result["points"]] == [1, 2, 3]
    assert result["before"]["pss_mb"] == 1 and result["after"]["pss_mb"] == 4
    assert result["opened"] == result["requested"] == 6
    assert result["errors"] == 0 and result["ended_early"] == 0 and not result["timed_out"]
    # the client closed every stream while the mock was still sending: the mock saw all six go
    deadline = time.monotonic() + 5
    while mock.stats.get("client_aborts", 0) < 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert mock.stats["client_aborts"] == 6


async def test_hold_streams_counts_failures(mock: MockProvider) -> None:
    mock.script([{"error": {"status": 500, "message": "down"}}] * 2)
    result = await hold_streams(_chat(mock, True), steps=[2], sample=Sampler(), settle=0, after=0)
    assert result["opened"] == 0
    assert result["errors"] == 2 and result["error_kinds"] == {"HTTP 500": 2}


async def test_soak_alternates_requests_and_samples_memory(mock: MockProvider) -> None:
    loads = {"mock": [(_chat(mock, False), False), (_chat(mock, True), True)]}
    sampler = Sampler()
    result = await soak(loads, rate=20, duration=1.0, interval=0.25, sample=lambda: {"mock": sampler()})
    assert result["totals"]["mock"] == {"requests": 20, "errors": 0, "error_kinds": {}}
    samples = result["samples"]
    assert samples[0]["t"] == 0 and len(samples) >= 4
    assert [s["memory"]["mock"]["pss_mb"] for s in samples] == list(range(1, len(samples) + 1))
    assert sum(s["load"]["mock"]["requests"] for s in samples[1:]) == 20
    assert all(s["load"]["mock"]["p99_ms"] > 0 for s in samples[1:] if s["load"]["mock"]["requests"])
    stats = mock.stats
    assert stats["/v1/chat/completions"] == 20
