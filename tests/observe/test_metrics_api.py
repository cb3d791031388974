"""The JSON views (seed fork shapes) and the SSE feed."""

from __future__ import annotations

import asyncio
import itertools
import math

import orjson
import pytest

from ccr_fast.observe import metrics_api
from ccr_fast.observe.metrics import SessionStats, Snapshot, StatusCount

from .snapshots import T, route, snapshot, window

SEED_REALTIME_KEYS = {
    "requestsPerMinute",
    "tokensPerSecond",
    "inputTPS",
    "outputTPS",
    "activeSessions",
    "totalRequests",
    "errorRate",
    "averageLatency",
    "inputTokensPerMinute",
    "outputTokensPerMinute",
    "totalInputTokens",
    "totalOutputTokens",
}
SEED_PROVIDER_KEYS = {
    "provider",
    "model",
    "requests",
    "inputTokens",
    "outputTokens",
    "errors",
    "averageLatency",
    "totalCost",
    "averageInputTokens",
    "averageOutputTokens",
    "tokensPerRequest",
}


def _snapshot() -> Snapshot:
    return snapshot(
        requests=5,
        routes=(
            route("a", "m1", latencies_ms=[10, 30], input_tokens=100, output_tokens=50, cost_usd=0.1234567),
            route("b", "m2", latencies_ms=[100, 100, 400], input_tokens=900, output_tokens=0, errors=1),
        ),
        statuses=(
            StatusCount("a", "m1", 200, 2),
            StatusCount("b", "m2", 200, 2),
            StatusCount("b", "m2", 429, 1),
        ),
        rate_limited={"rpm": 3, "tpm": 1},
        active_requests=2,
        active_streams=1,
        queue_depth=4,
        minute=window(60, requests=4, errors=1, input_tokens=600, output_tokens=30, latency_us=1_001_000),
        recent=window(10, requests=1, input_tokens=25, output_tokens=5),
        sessions=tuple(SessionStats(f"s{i}", T - i, T, 10 - i, 1, 2, "a", "m1") for i in range(4)),
    )


def test_realtime() -> None:
    view = metrics_api.realtime(_snapshot())
    assert set(view) >= SEED_REALTIME_KEYS
    assert view["requestsPerMinute"] == 4
    assert view["tokensPerSecond"] == 3.0
    assert view["inputTPS"] == 2.5
    assert view["outputTPS"] == 0.5
    assert view["activeSessions"] == 4
    assert view["totalRequests"] == 5
    assert view["errorRate"] == 25.0
    assert view["averageLatency"] == 250  # ms, rounded like the seed
    assert view["inputTokensPerMinute"] == 600
    assert view["totalInputTokens"] == 1000
    assert view["totalOutputTokens"] == 50
    assert view["statusCodeDistribution"] == {"2xx_success": 4, "4xx_client_error": 1, "5xx_server_error": 0}
    assert view["activeRequests"] == 2 and view["activeStreams"] == 1 and view["queueDepth"] == 4
    assert view["rateLimited"] == 4
    assert view["totalCost"] == 0.123457
    assert view["timestamp"] == T
    assert set(view["latencyPercentiles"]) == {"p50", "p95", "p99", "p999"}


def test_an_idle_server_divides_by_nothing() -> None:
    view = metrics_api.realtime(snapshot())
    assert view["errorRate"] == 0.0 and view["averageLatency"] == 0 and view["tokensPerSecond"] == 0.0
    assert metrics_api.providers(snapshot()) == []
    assert metrics_api.summary(snapshot())["tokenAnalytics"]["inputToOutputRatio"] == 0.0


def test_providers() -> None:
    first, second = metrics_api.providers(_snapshot())
    assert set(first) >= SEED_PROVIDER_KEYS
    assert (first["provider"], first["model"], first["requests"]) == ("a", "m1", 2)
    assert first["averageLatency"] == 20.0
    assert first["averageInputTokens"] == 50.0
    assert first["tokensPerRequest"] == 75.0
    assert first["totalCost"] == 0.123457
    assert second["errors"] == 1
    assert second["averageOutputTokens"] == 0.0
    assert second["latencyPercentiles"]["p50"] == 87.5  # rank 1.5 of 2 in the (50, 100] bucket


def test_sessions_are_the_busiest_first_and_bounded() -> None:
    listed = metrics_api.sessions(_snapshot(), limit=2)
    assert [s["sessionId"] for s in listed] == ["s0", "s1"]
    assert listed[1] == {
        "sessionId": "s1",
        "startTime": T - 1,
        "lastActivity": T,
        "requestCount": 9,
        "inputTokens": 1,
        "outputTokens": 2,
        "provider": "a",
        "model": "m1",
    }
    assert metrics_api.sessions(_snapshot(), limit=-1) == []


def test_summary() -> None:
    view = metrics_api.summary(_snapshot())
    assert view["realTime"] == metrics_api.realtime(_snapshot())
    assert view["totalTokens"] == 1050
    assert view["providerCount"] == 2
    assert [p["provider"] for p in view["topProviders"]] == ["b", "a"]  # most requests first
    assert view["activeSessions"] == 4
    assert view["uptime"] == 90.0
    analytics = view["tokenAnalytics"]
    assert analytics["averageTokensPerRequest"] == 210.0
    assert analytics["inputToOutputRatio"] == 0.05
    assert [m["model"] for m in analytics["topModelsByTokens"]] == ["m2", "m1"]
    orjson.dumps(view)  # everything in it is JSON


def test_sse_frame() -> None:
    assert metrics_api.sse_frame({"a": "x\ny"}) == b'data: {"a":"x\\ny"}\n\n'


async def test_stream_sends_a_frame_at_once_then_one_per_interval() -> None:
    calls = itertools.count()
    frames = metrics_api.stream(lambda: {"n": next(calls)}, interval_s=0.01)
    first = await asyncio.wait_for(anext(frames), 1)
    second = await asyncio.wait_for(anext(frames), 1)
    assert (first, second) == (b'data: {"n":0}\n\n', b'data: {"n":1}\n\n')
    await frames.aclose()


@pytest.mark.parametrize("interval", [0, -1, math.inf, math.nan])
def test_a_bad_interval_fails_when_the_stream_is_set_up(interval: float) -> None:
    with pytest.raises(ValueError):
        metrics_api.stream(dict, interval)
