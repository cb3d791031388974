"""The JSON metrics API and its live feed, as pure functions of a snapshot (no I/O, no server).

Shapes follow the seed fork's ``/api/metrics/*`` so its dashboard reads them unchanged: camelCase keys,
``providers`` and ``sessions`` as arrays, times in Unix milliseconds, latencies in milliseconds, costs in
USD.  Fields the seed did not have are added next to its own (``activeStreams``, ``queueDepth``,
``latencyPercentiles`` per provider, ...); the seed's ``hourlyTokenUsage`` is not kept (hourly history is a
job for Prometheus).  Rates: "per minute" values cover the last 60 seconds, "per second" ones the last 10.

``stream`` yields server-sent event frames (``data: <json>\\n\\n``) of a source, typically
``Metrics.realtime``: one at once, then one per interval, until the consumer stops iterating (the server
stops when the client disconnects).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from ccr_fast.observe.metrics import Histogram, RouteStats, Snapshot

__all__ = [
    "SESSION_LIMIT",
    "TOP_PROVIDERS",
    "percentiles",
    "provider_entry",
    "providers",
    "realtime",
    "sessions",
    "sse_frame",
    "stream",
    "summary",
]

#: sessions listed by default (the busiest within the session window)
SESSION_LIMIT: Final = 50
#: providers in the summary's ``topProviders`` and models in ``topModelsByTokens``
TOP_PROVIDERS: Final = 5
_TOP_MODELS: Final = 10


def _round(value: float, digits: int = 2) -> float:
    return round(value, digits) if math.isfinite(value) else 0.0


def percentiles(histogram: Histogram) -> dict[str, float]:
    """p50, p95, p99 and p999 in the histogram's unit, estimated as ``histogram_quantile`` does."""
    return {
        name: _round(histogram.quantile(q))
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
    }


def realtime(snapshot: Snapshot) -> dict[str, Any]:
    """``/api/metrics/realtime``: rates over the last minute, totals, what is in flight now."""
    minute, recent = snapshot.minute, snapshot.recent
    routes = snapshot.routes
    classes = {"2xx_success": 0, "4xx_client_error": 0, "5xx_server_error": 0}
    for status in snapshot.statuses:
        key = {2: "2xx_success", 4: "4xx_client_error", 5: "5xx_server_error"}.get(status.status // 100)
        if key is not None:
            classes[key] += status.count
    return {
        "requestsPerMinute": minute.requests,
        "tokensPerSecond": _round((recent.input_tokens + recent.output_tokens) / recent.seconds),
        "inputTPS": _round(recent.input_tokens / recent.seconds),
        "outputTPS": _round(recent.output_tokens / recent.seconds),
        "activeSessions": len(snapshot.sessions),
        "totalRequests": snapshot.requests,
        "errorRate": _round(100 * minute.errors / minute.requests) if minute.requests else 0.0,
        "averageLatency": round(minute.latency_us / minute.requests / 1000) if minute.requests else 0,
        "inputTokensPerMinute": minute.input_tokens,
        "outputTokensPerMinute": minute.output_tokens,
        "totalInputTokens": sum(r.input_tokens for r in routes),
        "totalOutputTokens": sum(r.output_tokens for r in routes),
        "latencyPercentiles": percentiles(snapshot.latency_ms()),
        "statusCodeDistribution": classes,
        "activeRequests": snapshot.active_requests,
        "activeStreams": snapshot.active_streams,
        "queueDepth": snapshot.queue_depth,
        "queuedTotal": snapshot.queued_total,
        "rateLimited": sum(snapshot.rate_limited.values()),
        "totalCost": _round(sum(r.cost_usd for r in routes), 6),
        "timestamp": snapshot.taken_ms,
    }


def provider_entry(route: RouteStats) -> dict[str, Any]:
    """One provider and model, as ``/api/metrics/providers`` lists it."""
    requests = route.requests
    tokens = route.input_tokens + route.output_tokens
    return {
        "provider": route.provider,
        "model": route.model,
        "requests": requests,
        "inputTokens": route.input_tokens,
        "outputTokens": route.output_tokens,
        "errors": route.errors,
        "averageLatency": _round(route.latency_ms.mean()),
        "totalCost": _round(route.cost_usd, 6),
        "averageInputTokens": _round(route.input_tokens / requests) if requests else 0.0,
        "averageOutputTokens": _round(route.output_tokens / requests) if requests else 0.0,
        "tokensPerRequest": _round(tokens / requests) if requests else 0.0,
        "cacheReadTokens": route.cache_read_tokens,
        "cacheWriteTokens": route.cache_write_tokens,
        "streamRequests": route.stream_requests,
        "averageTtft": _round(route.ttft_ms.mean()),
        "averageOverheadUs": _round(route.overhead_us.mean()),
        "latencyPercentiles": percentiles(route.latency_ms),
        "priced": route.priced,
    }


def providers(snapshot: Snapshot) -> list[dict[str, Any]]:
    """``/api/metrics/providers``: one entry per provider and model, by provider then model."""
    return [provider_entry(route) for route in snapshot.routes]


def sessions(snapshot: Snapshot, limit: int = SESSION_LIMIT) -> list[dict[str, Any]]:
    """``/api/metrics/sessions``: the ``limit`` busiest sessions active within the session window."""
    return [
        {
            "sessionId": s.session,
            "startTime": s.first_ms,
            "lastActivity": s.last_ms,
            "requestCount": s.requests,
            "inputTokens": s.input_tokens,
            "outputTokens": s.output_tokens,
            "provider": s.provider,
            "model": s.model,
        }
        for s in snapshot.sessions[: max(limit, 0)]
    ]


def summary(snapshot: Snapshot) -> dict[str, Any]:
    """``/api/metrics/summary``: the realtime view, totals, top providers and models, uptime."""
    routes = snapshot.routes
    input_total = sum(r.input_tokens for r in routes)
    output_total = sum(r.output_tokens for r in routes)
    cost = _round(sum(r.cost_usd for r in routes), 6)
    requests = sum(r.requests for r in routes)
    by_requests = sorted(routes, key=lambda r: (-r.requests, r.provider, r.model))
    by_tokens = sorted(routes, key=lambda r: (-(r.input_tokens + r.output_tokens), r.provider, r.model))
    return {
        "realTime": realtime(snapshot),
        "totalTokens": input_total + output_total,
        "totalCost": cost,
        "providerCount": len(routes),
        "topProviders": [provider_entry(route) for route in by_requests[:TOP_PROVIDERS]],
        "activeSessions": len(snapshot.sessions),
        "uptime": _round(max(snapshot.taken_ms - snapshot.started_ms, 0) / 1000, 3),
        "tokenAnalytics": {
            "totalInputTokens": input_total,
            "totalOutputTokens": output_total,
            "totalTokens": input_total + output_total,
            "totalCost": cost,
            "averageTokensPerRequest": _round((input_total + output_total) / requests) if requests else 0.0,
            "inputToOutputRatio": _round(output_total / input_total, 4) if input_total else 0.0,
            "topModelsByTokens": [
                {
                    "model": r.model,
                    "provider": r.provider,
                    "tokens": r.input_tokens + r.output_tokens,
                    "cost": _round(r.cost_usd, 6),
                }
                for r in by_tokens[:_TOP_MODELS]
            ],
        },
    }


def sse_frame(payload: Mapping[str, Any]) -> bytes:
    """One server-sent event carrying ``payload`` as JSON (orjson never emits a raw newline)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def stream(source: Callable[[], Mapping[str, Any]], interval_s: float = 1.0) -> AsyncGenerator[bytes, None]:
    """``/api/metrics/stream``: a frame of ``source()`` now, then one every ``interval_s`` seconds.

    The interval is checked here, so a bad one fails where the route is set up, not mid-response.
    """
    if not 0 < interval_s < math.inf:
        raise ValueError(f"interval must be a positive number of seconds, not {interval_s!r}")
    return _frames(source, interval_s)


async def _frames(source: Callable[[], Mapping[str, Any]], interval_s: float) -> AsyncGenerator[bytes, None]:
    while True:
        yield sse_frame(source())
        await asyncio.sleep(interval_s)
