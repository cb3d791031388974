"""Prometheus text exposition (format 0.0.4) of a metrics snapshot: a pure function, no I/O.

Names follow the seed fork where it had them (``ccr_requests_total``, ``ccr_provider_requests_total``,
``ccr_latency_p50_ms``, ``ccr_total_cost_usd``, ... with the seed's types), so its dashboards and alerts keep
working; what it lacked uses Prometheus conventions (``_total`` counters, histograms with ``_bucket``,
``_sum`` and ``_count``).  Histograms keep the units of their buckets: ``ccr_latency_ms`` and
``ccr_ttft_ms`` in milliseconds, the gateway's own overhead ``ccr_overhead_us`` in microseconds.
``docs/metrics.md`` lists every family.

Every family is written with ``# HELP`` and ``# TYPE`` even before it has a sample, so a scrape of a fresh
server already shows what will be there.  Label values are escaped as the format requires (backslash,
double quote, newline); ``le`` bounds are written the way Go clients write them (``5``, ``0.5``, ``+Inf``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ccr_fast.observe.metrics import Histogram, Snapshot

__all__ = ["CONTENT_TYPE", "escape_label", "format_value", "render"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_QUANTILES: Final = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
_STATUS_CLASSES: Final = ("2xx", "4xx", "5xx")


def escape_label(value: str) -> str:
    """A label value as it goes between the double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value or ``le`` bound: integers without a fraction, ``+Inf``/``-Inf``/``NaN`` spelled out."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(*pairs: tuple[str, str]) -> str:
    """``key="value",...`` (escaped, no braces): rendered once per series, reused for every line of it."""
    return ",".join(f'{key}="{escape_label(value)}"' for key, value in pairs)


class _Writer:
    """Collects families in order; a family's header is written once, before its samples."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: str, value: float) -> None:
        if labels:
            self._lines.append(f"{name}{{{labels}}} {format_value(value)}")
        else:
            self._lines.append(f"{name} {format_value(value)}")

    def single(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text)
        self.sample(name, "", value)

    def labelled(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
        self.family(name, kind, help_text)
        for labels, value in samples:
            self.sample(name, labels, value)

    def histograms(self, name: str, help_text: str, samples: Iterable[tuple[str, Histogram]]) -> None:
        self.family(name, "histogram", help_text)
        lines = self._lines
        bucket = f"{name}_bucket{{"
        les: dict[tuple[float, ...], list[str]] = {}
        for labels, histogram in samples:
            prefix = f"{bucket}{labels}," if labels else bucket
            cumulative = histogram.cumulative()
            bounds = les.get(histogram.bounds)
            if bounds is None:
                bounds = les[histogram.bounds] = [format_value(bound) for bound in histogram.bounds]
            for le, count in zip(bounds, cumulative, strict=False):
                lines.append(f'{prefix}le="{le}"}} {count}')
            lines.append(f'{prefix}le="+Inf"}} {cumulative[-1]}')
            self.sample(f"{name}_sum", labels, histogram.total)
            self.sample(f"{name}_count", labels, cumulative[-1])

    def text(self) -> bytes:
        return ("\n".join(self._lines) + "\n").encode()


def render(snapshot: Snapshot) -> bytes:
    """The exposition of ``snapshot``, UTF-8 encoded."""
    out = _Writer()
    routes = snapshot.routes
    per_route = [(_labels(("provider", r.provider), ("model", r.model)), r) for r in routes]
    minute, recent = snapshot.minute, snapshot.recent
    input_total = sum(r.input_tokens for r in routes)
    output_total = sum(r.output_tokens for r in routes)
    cost_total = sum(r.cost_usd for r in routes)
    requests_total = sum(r.requests for r in routes)

    # requests and outcomes
    out.single("ccr_requests_total", "counter", "Requests handled, all workers", snapshot.requests)
    out.labelled(
        "ccr_provider_requests_total",
        "counter",
        "Requests by provider and model",
        ((labels, r.requests) for labels, r in per_route),
    )
    out.labelled(
        "ccr_provider_stream_requests_total",
        "counter",
        "Streamed requests by provider and model",
        ((labels, r.stream_requests) for labels, r in per_route),
    )
    out.labelled(
        "ccr_provider_errors_total",
        "counter",
        "Failed requests by provider and model",
        ((labels, r.errors) for labels, r in per_route),
    )
    out.labelled(
        "ccr_responses_total",
        "counter",
        "Responses by provider, model and HTTP status",
        (
            (_labels(("provider", s.provider), ("model", s.model), ("status", str(s.status))), s.count)
            for s in snapshot.statuses
        ),
    )
    out.labelled(
        "ccr_errors_total",
        "counter",
        "Errors by provider, model and Anthropic error type",
        (
            (_labels(("provider", e.provider), ("model", e.model), ("type", e.type)), e.count)
            for e in snapshot.errors
        ),
    )
    classes: dict[str, int] = dict.fromkeys(_STATUS_CLASSES, 0)
    for status in snapshot.statuses:
        name = f"{status.status // 100}xx"
        classes[name] = classes.get(name, 0) + status.count
    out.labelled(
        "ccr_status_codes_total",
        "counter",
        "Responses by status class",
        ((_labels(("code", code)), count) for code, count in sorted(classes.items())),
    )
    out.labelled(
        "ccr_scenario_requests_total",
        "counter",
        "Requests by routing scenario",
        ((_labels(("scenario", name)), count) for name, count in snapshot.scenarios.items()),
    )
    out.labelled(
        "ccr_rate_limited_total",
        "counter",
        "Requests refused by a rate limit, by scope",
        ((_labels(("scope", scope)), count) for scope, count in snapshot.rate_limited.items()),
    )
    out.labelled(
        "ccr_api_key_requests_total",
        "counter",
        "Requests authenticated, by API key name",
        ((_labels(("key", name)), count) for name, count in snapshot.api_keys.items()),
    )

    # tokens and cost
    for field, what in (
        ("input_tokens", "Input tokens"),
        ("output_tokens", "Output tokens"),
        ("cache_read_tokens", "Cache read input tokens"),
        ("cache_write_tokens", "Cache creation input tokens"),
    ):
        out.labelled(
            f"ccr_provider_{field}_total",
            "counter",
            f"{what} by provider and model",
            ((labels, getattr(r, field)) for labels, r in per_route),
        )
    out.labelled(
        "ccr_provider_cost_usd_total",
        "counter",
        "Cost in USD by provider and model (list prices)",
        ((labels, r.cost_usd) for labels, r in per_route),
    )
    out.single("ccr_input_tokens_total", "counter", "Input tokens", input_total)
    out.single("ccr_output_tokens_total", "counter", "Output tokens", output_total)

    # latency
    out.histograms(
        "ccr_latency_ms", "Request latency in ms", ((labels, r.latency_ms) for labels, r in per_route)
    )
    out.histograms(
        "ccr_ttft_ms",
        "Time to first token of streamed responses in ms",
        ((labels, r.ttft_ms) for labels, r in per_route if r.ttft_ms.count),
    )
    out.histograms(
        "ccr_overhead_us",
        "Gateway overhead per request in µs (total time minus time waiting on the upstream)",
        ((labels, r.overhead_us) for labels, r in per_route),
    )
    overall = snapshot.latency_ms()
    for suffix, q in _QUANTILES:
        out.single(
            f"ccr_latency_{suffix}_ms",
            "gauge",
            f"{suffix.upper()} latency in ms since start (estimated from the histogram)",
            overall.quantile(q),
        )

    # in flight
    out.single("ccr_active_requests", "gauge", "Requests in flight", snapshot.active_requests)
    out.single("ccr_active_streams", "gauge", "Streamed responses in flight", snapshot.active_streams)
    out.single("ccr_queue_depth", "gauge", "Requests waiting in admission queues", snapshot.queue_depth)
    out.single(
        "ccr_queued_requests_total",
        "counter",
        "Requests that waited in an admission queue",
        snapshot.queued_total,
    )
    out.single(
        "ccr_active_sessions", "gauge", "Sessions active in the session window", len(snapshot.sessions)
    )

    # the last minute (seed fork gauges)
    minute_s, recent_s = minute.seconds, recent.seconds
    out.single("ccr_requests_per_minute", "gauge", "Requests in the last minute", minute.requests)
    out.single(
        "ccr_tokens_per_second",
        "gauge",
        f"Tokens per second over the last {recent_s} s",
        (recent.input_tokens + recent.output_tokens) / recent_s,
    )
    out.single(
        "ccr_input_tokens_per_second",
        "gauge",
        f"Input tokens per second over the last {recent_s} s",
        recent.input_tokens / recent_s,
    )
    out.single(
        "ccr_output_tokens_per_second",
        "gauge",
        f"Output tokens per second over the last {recent_s} s",
        recent.output_tokens / recent_s,
    )
    out.single("ccr_input_tokens_per_minute", "gauge", "Input tokens in the last minute", minute.input_tokens)
    out.single(
        "ccr_output_tokens_per_minute", "gauge", "Output tokens in the last minute", minute.output_tokens
    )
    out.single(
        "ccr_error_rate_percent",
        "gauge",
        f"Failed requests in the last {minute_s} s, percent",
        100 * minute.errors / minute.requests if minute.requests else 0.0,
    )
    out.single(
        "ccr_average_latency_ms",
        "gauge",
        f"Mean latency over the last {minute_s} s in ms",
        minute.latency_us / minute.requests / 1000 if minute.requests else 0.0,
    )

    # seed fork per-provider and total gauges
    out.labelled(
        "ccr_provider_average_latency_ms",
        "gauge",
        "Mean latency by provider and model in ms",
        ((labels, r.latency_ms.mean()) for labels, r in per_route),
    )
    out.labelled(
        "ccr_provider_total_cost_usd",
        "gauge",
        "Cost in USD by provider and model",
        ((labels, r.cost_usd) for labels, r in per_route),
    )
    out.single("ccr_total_input_tokens", "gauge", "Input tokens", input_total)
    out.single("ccr_total_output_tokens", "gauge", "Output tokens", output_total)
    out.single("ccr_total_cost_usd", "gauge", "Cost in USD (list prices)", cost_total)
    out.single(
        "ccr_average_tokens_per_request",
        "gauge",
        "Input plus output tokens per request",
        (input_total + output_total) / requests_total if requests_total else 0.0,
    )
    out.single(
        "ccr_input_to_output_ratio",
        "gauge",
        "Output tokens per input token",
        output_total / input_total if input_total else 0.0,
    )

    # the metrics' own health
    out.single(
        "ccr_start_time_seconds", "gauge", "When metrics started (Unix time)", snapshot.started_ms / 1000
    )
    out.single(
        "ccr_metrics_series_dropped_total",
        "counter",
        "Label sets not tracked because the series registry or the key table was full",
        snapshot.series_dropped,
    )
    out.single(
        "ccr_state_table_full_total",
        "counter",
        "New keys that found the shared key table full",
        snapshot.table_full,
    )
    return out.text()
