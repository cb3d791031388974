"""Snapshots built by hand, so the exporters are tested without shared memory."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from ccr_fast.observe.metrics import (
    LATENCY_BUCKETS_MS,
    OVERHEAD_BUCKETS_US,
    Histogram,
    RouteStats,
    Snapshot,
    WindowStats,
)

T = 1_800_000_000_000  # a Unix time in ms


def histogram(bounds: Sequence[float], values: Sequence[float]) -> Histogram:
    counts = [0] * (len(bounds) + 1)
    for value in values:
        counts[bisect_left(bounds, value)] += 1
    return Histogram(tuple(map(float, bounds)), tuple(counts), float(sum(values)))


def route(
    provider: str,
    model: str,
    *,
    latencies_ms: Sequence[float] = (),
    ttfts_ms: Sequence[float] = (),
    overheads_us: Sequence[float] = (),
    **fields: Any,
) -> RouteStats:
    values: dict[str, Any] = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.0,
        "stream_requests": 0,
        "errors": 0,
        "priced": True,
    }
    values.update(fields)
    return RouteStats(
        provider=provider,
        model=model,
        latency_ms=histogram(LATENCY_BUCKETS_MS, latencies_ms),
        ttft_ms=histogram(LATENCY_BUCKETS_MS, ttfts_ms),
        overhead_us=histogram(OVERHEAD_BUCKETS_US, overheads_us or [0.0] * len(latencies_ms)),
        **values,
    )


def window(seconds: int, **fields: int) -> WindowStats:
    values = dict.fromkeys(("requests", "errors", "input_tokens", "output_tokens", "latency_us"), 0)
    values.update(fields)
    return WindowStats(seconds, **values)


def snapshot(**fields: Any) -> Snapshot:
    values: dict[str, Any] = {
        "taken_ms": T,
        "started_ms": T - 90_000,
        "requests": 0,
        "routes": (),
        "statuses": (),
        "errors": (),
        "scenarios": {},
        "rate_limited": {},
        "active_requests": 0,
        "active_streams": 0,
        "queue_depth": 0,
        "minute": window(60),
        "recent": window(10),
        "sessions": (),
        "series_dropped": 0,
        "table_full": 0,
    }
    values.update(fields)
    return Snapshot(**values)
