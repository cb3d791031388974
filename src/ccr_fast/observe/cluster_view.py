"""Cluster-wide metrics as data, no I/O: what one machine publishes to Redis, and the views read back.

A machine publishes two things (``ccr_fast.observe.cluster`` sends them):

* **Totals**: every monotonic counter of its snapshot (requests, per provider and model the requests,
  stream requests, tokens, cost in micro-USD and the latency, TTFT and overhead histograms; responses by
  status, errors by type, scenarios, rate-limit refusals by scope, requests per API key, requests that
  queued).  Redis adds what each grew by into one cluster hash, so the cluster totals are sums over every
  machine that ever published, dead ones included, and never go backwards.
* **Live gauges**: requests in flight, streams, and the queue depth now.  They expire with the machine
  (a machine that stops publishing drops out after ``live_ttl_ms``), so the cluster's queue depth is the
  sum over the machines alive now.

Field names are JSON arrays of labels (``["route","deepseek","deepseek-chat","input_tokens"]``), so any
provider or model name round-trips; the hash's key carries a schema version (``SCHEMA``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from ccr_fast.observe.metrics import (
    LATENCY_BUCKETS_MS,
    OVERHEAD_BUCKETS_US,
    ErrorCount,
    Histogram,
    RouteStats,
    StatusCount,
)
from ccr_fast.observe.metrics_api import percentiles, provider_entry

if TYPE_CHECKING:
    from ccr_fast.observe.metrics import Snapshot

__all__ = [
    "LIVE_FIELDS",
    "SCHEMA",
    "ClusterSnapshot",
    "Instance",
    "live",
    "parse",
    "providers",
    "realtime",
    "summary",
    "totals",
]

#: version of the field layout, part of the Redis key: machines of another layout add to another hash
SCHEMA: Final = "v1"
#: live gauge fields, as published
LIVE_FIELDS: Final = ("queue_depth", "active_requests", "active_streams")

_ROUTE: Final = "route"
_ROUTE_COUNTERS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "stream_requests",
)


def _field(*labels: str) -> str:
    return orjson.dumps(labels).decode()


def totals(snapshot: Snapshot) -> dict[str, int]:
    """The monotonic counters of ``snapshot`` as published fields (zeros are left out)."""
    out: dict[str, int] = {}

    def put(value: int, *labels: str) -> None:
        if value > 0:
            out[_field(*labels)] = value

    put(snapshot.requests, "requests")
    put(snapshot.queued_total, "queued")
    for route in snapshot.routes:
        labels = (_ROUTE, route.provider, route.model)
        for name, histogram in (
            ("latency", route.latency_ms),
            ("ttft", route.ttft_ms),
            ("overhead", route.overhead_us),
        ):
            for index, count in enumerate(histogram.counts):
                put(count, *labels, f"{name}:{index}")
        # sums in integer microseconds, as the shared words keep them
        put(round(route.latency_ms.total * 1000), *labels, "latency_sum_us")
        put(round(route.ttft_ms.total * 1000), *labels, "ttft_sum_us")
        put(round(route.overhead_us.total), *labels, "overhead_sum_us")
        for name in _ROUTE_COUNTERS:
            put(getattr(route, name), *labels, name)
        put(round(route.cost_usd * 1e6), *labels, "cost_micro_usd")
    for status in snapshot.statuses:
        put(status.count, "status", status.provider, status.model, str(status.status))
    for error in snapshot.errors:
        put(error.count, "error", error.provider, error.model, error.type)
    for scenario, count in snapshot.scenarios.items():
        put(count, "scenario", scenario)
    for scope, count in snapshot.rate_limited.items():
        put(count, "rate_limited", scope)
    for key, count in snapshot.api_keys.items():
        put(count, "api_key", key)
    return out


def live(snapshot: Snapshot) -> dict[str, int]:
    """The gauges of ``snapshot`` that are published live (``LIVE_FIELDS``)."""
    return {
        "queue_depth": snapshot.queue_depth,
        "active_requests": snapshot.active_requests,
        "active_streams": snapshot.active_streams,
    }


@dataclass(frozen=True, slots=True)
class Instance:
    """One machine that published within the live window."""

    id: str
    queue_depth: int
    active_requests: int
    active_streams: int
    #: when it last published (Unix ms, Redis's clock)
    seen_ms: int


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """The cluster totals and the live machines, as read from Redis at ``taken_ms``."""

    taken_ms: int
    requests: int
    queued_total: int
    routes: tuple[RouteStats, ...]
    statuses: tuple[StatusCount, ...]
    errors: tuple[ErrorCount, ...]
    scenarios: Mapping[str, int]
    rate_limited: Mapping[str, int]
    api_keys: Mapping[str, int]
    instances: tuple[Instance, ...]

    @property
    def queue_depth(self) -> int:
        return sum(instance.queue_depth for instance in self.instances)

    @property
    def active_requests(self) -> int:
        return sum(instance.active_requests for instance in self.instances)

    @property
    def active_streams(self) -> int:
        return sum(instance.active_streams for instance in self.instances)

    def latency_ms(self) -> Histogram:
        merged = _empty(LATENCY_BUCKETS_MS)
        for route in self.routes:
            merged = merged + route.latency_ms
        return merged


def _empty(bounds: tuple[int, ...]) -> Histogram:
    return Histogram(tuple(map(float, bounds)), (0,) * (len(bounds) + 1), 0.0)


def parse(
    fields: Mapping[str, int],
    machines: Mapping[str, Mapping[str, int]],
    taken_ms: int,
    priced: Callable[[str, str], bool] = lambda provider, model: False,
) -> ClusterSnapshot:
    """Build the snapshot from the cluster hash and the live machines' gauges (unknown fields ignored)."""
    requests = queued = 0
    routes: dict[tuple[str, str], dict[str, int]] = {}
    statuses: list[StatusCount] = []
    errors: list[ErrorCount] = []
    scenarios: dict[str, int] = {}
    limited: dict[str, int] = {}
    keys: dict[str, int] = {}
    for name, value in fields.items():
        labels = _labels(name)
        if labels is None:
            continue
        kind, rest = labels[0], labels[1:]
        if kind == "requests" and not rest:
            requests = value
        elif kind == "queued" and not rest:
            queued = value
        elif kind == _ROUTE and len(rest) == 3:
            routes.setdefault((rest[0], rest[1]), {})[rest[2]] = value
        elif kind == "status" and len(rest) == 3 and rest[2].isdigit():
            statuses.append(StatusCount(rest[0], rest[1], int(rest[2]), value))
        elif kind == "error" and len(rest) == 3:
            errors.append(ErrorCount(rest[0], rest[1], rest[2], value))
        elif kind == "scenario" and len(rest) == 1:
            scenarios[rest[0]] = value
        elif kind == "rate_limited" and len(rest) == 1:
            limited[rest[0]] = value
        elif kind == "api_key" and len(rest) == 1:
            keys[rest[0]] = value
    failed: dict[tuple[str, str], int] = {}
    for error in errors:
        failed[(error.provider, error.model)] = failed.get((error.provider, error.model), 0) + error.count
    return ClusterSnapshot(
        taken_ms=taken_ms,
        requests=requests,
        queued_total=queued,
        routes=tuple(
            _route(provider, model, words, failed.get((provider, model), 0), priced(provider, model))
            for (provider, model), words in sorted(routes.items())
        ),
        statuses=tuple(sorted(statuses)),
        errors=tuple(sorted(errors)),
        scenarios=dict(sorted(scenarios.items())),
        rate_limited=dict(sorted(limited.items())),
        api_keys=dict(sorted(keys.items())),
        instances=tuple(
            Instance(
                machine,
                gauges.get("queue_depth", 0),
                gauges.get("active_requests", 0),
                gauges.get("active_streams", 0),
                gauges.get("at_ms", 0),
            )
            for machine, gauges in sorted(machines.items())
        ),
    )


def _labels(name: str) -> list[str] | None:
    try:
        labels = orjson.loads(name)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        return None
    return labels


def _histogram(words: Mapping[str, int], name: str, bounds: tuple[int, ...], total: float) -> Histogram:
    counts = tuple(words.get(f"{name}:{index}", 0) for index in range(len(bounds) + 1))
    return Histogram(tuple(map(float, bounds)), counts, total)


def _route(provider: str, model: str, words: Mapping[str, int], errors: int, priced: bool) -> RouteStats:
    return RouteStats(
        provider=provider,
        model=model,
        latency_ms=_histogram(words, "latency", LATENCY_BUCKETS_MS, words.get("latency_sum_us", 0) / 1000),
        ttft_ms=_histogram(words, "ttft", LATENCY_BUCKETS_MS, words.get("ttft_sum_us", 0) / 1000),
        overhead_us=_histogram(
            words, "overhead", OVERHEAD_BUCKETS_US, float(words.get("overhead_sum_us", 0))
        ),
        input_tokens=words.get("input_tokens", 0),
        output_tokens=words.get("output_tokens", 0),
        cache_read_tokens=words.get("cache_read_tokens", 0),
        cache_write_tokens=words.get("cache_write_tokens", 0),
        cost_usd=words.get("cost_micro_usd", 0) / 1e6,
        stream_requests=words.get("stream_requests", 0),
        errors=errors,
        priced=priced,
    )


def _round(value: float, digits: int = 2) -> float:
    return round(value, digits) if math.isfinite(value) else 0.0


def _instances(snapshot: ClusterSnapshot) -> list[dict[str, Any]]:
    return [
        {
            "id": instance.id,
            "queueDepth": instance.queue_depth,
            "activeRequests": instance.active_requests,
            "activeStreams": instance.active_streams,
            "lastSeen": instance.seen_ms,
        }
        for instance in snapshot.instances
    ]


def _status_classes(statuses: Iterable[StatusCount]) -> dict[str, int]:
    classes = {"2xx_success": 0, "4xx_client_error": 0, "5xx_server_error": 0}
    for status in statuses:
        key = {2: "2xx_success", 4: "4xx_client_error", 5: "5xx_server_error"}.get(status.status // 100)
        if key is not None:
            classes[key] += status.count
    return classes


def realtime(snapshot: ClusterSnapshot) -> dict[str, Any]:
    """``/api/metrics/realtime?scope=cluster``: totals of every machine and what is in flight on the live
    ones.  (Rates over the last minute are per machine: ask each, or Prometheus.)"""
    routes = snapshot.routes
    return {
        "scope": "cluster",
        "totalRequests": snapshot.requests,
        "totalInputTokens": sum(r.input_tokens for r in routes),
        "totalOutputTokens": sum(r.output_tokens for r in routes),
        "totalCost": _round(sum(r.cost_usd for r in routes), 6),
        "errors": sum(e.count for e in snapshot.errors),
        "rateLimited": sum(snapshot.rate_limited.values()),
        "statusCodeDistribution": _status_classes(snapshot.statuses),
        "latencyPercentiles": percentiles(snapshot.latency_ms()),
        "activeRequests": snapshot.active_requests,
        "activeStreams": snapshot.active_streams,
        "queueDepth": snapshot.queue_depth,
        "queuedTotal": snapshot.queued_total,
        "instances": _instances(snapshot),
        "timestamp": snapshot.taken_ms,
    }


def providers(snapshot: ClusterSnapshot) -> list[dict[str, Any]]:
    """``/api/metrics/providers?scope=cluster``: the entries of ``/api/metrics/providers``, summed."""
    return [provider_entry(route) for route in snapshot.routes]


def summary(snapshot: ClusterSnapshot) -> dict[str, Any]:
    """``/api/metrics/summary?scope=cluster``: ``realtime`` plus tokens, providers and breakdowns."""
    routes = snapshot.routes
    input_total = sum(r.input_tokens for r in routes)
    output_total = sum(r.output_tokens for r in routes)
    return {
        **realtime(snapshot),
        "totalTokens": input_total + output_total,
        "providerCount": len(routes),
        "providers": providers(snapshot),
        "scenarios": dict(snapshot.scenarios),
        "rateLimitedByScope": dict(snapshot.rate_limited),
        "apiKeys": dict(snapshot.api_keys),
    }
