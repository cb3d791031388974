"""The text exposition: format (checked by two parsers), seed-compatible names, values, escaping."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccr_fast.observe.metrics import ErrorCount, SessionStats, StatusCount
from ccr_fast.observe.prometheus import CONTENT_TYPE, escape_label, format_value, render

from .exposition import parse, value
from .snapshots import T, route, snapshot, window

SEED_NAMES = {
    "ccr_requests_total": "counter",
    "ccr_requests_per_minute": "gauge",
    "ccr_tokens_per_second": "gauge",
    "ccr_input_tokens_per_second": "gauge",
    "ccr_output_tokens_per_second": "gauge",
    "ccr_active_sessions": "gauge",
    "ccr_error_rate_percent": "gauge",
    "ccr_average_latency_ms": "gauge",
    "ccr_latency_p50_ms": "gauge",
    "ccr_latency_p95_ms": "gauge",
    "ccr_latency_p99_ms": "gauge",
    "ccr_latency_p999_ms": "gauge",
    "ccr_status_codes_total": "counter",
    "ccr_input_tokens_total": "counter",
    "ccr_output_tokens_total": "counter",
    "ccr_input_tokens_per_minute": "gauge",
    "ccr_output_tokens_per_minute": "gauge",
    "ccr_provider_requests_total": "counter",
    "ccr_provider_input_tokens_total": "counter",
    "ccr_provider_output_tokens_total": "counter",
    "ccr_provider_errors_total": "counter",
    "ccr_provider_average_latency_ms": "gauge",
    "ccr_provider_total_cost_usd": "gauge",
    "ccr_total_input_tokens": "gauge",
    "ccr_total_output_tokens": "gauge",
    "ccr_total_cost_usd": "gauge",
    "ccr_average_tokens_per_request": "gauge",
    "ccr_input_to_output_ratio": "gauge",
}


def _busy() -> str:
    return render(
        snapshot(
            requests=4,
            routes=(
                route(
                    "deepseek",
                    "deepseek-chat",
                    latencies_ms=[3, 40],
                    overheads_us=[120, 80],
                    input_tokens=100,
                    output_tokens=10,
                    cost_usd=0.25,
                    errors=1,
                ),
                route(
                    'we"ird\\name\n',
                    "a/b",
                    latencies_ms=[5, 70_000],
                    ttfts_ms=[4.5],
                    input_tokens=300,
                    output_tokens=90,
                    cache_read_tokens=7,
                    cache_write_tokens=8,
                    stream_requests=1,
                    cost_usd=1.5,
                ),
            ),
            statuses=(
                StatusCount("deepseek", "deepseek-chat", 200, 1),
                StatusCount("deepseek", "deepseek-chat", 529, 1),
                StatusCount('we"ird\\name\n', "a/b", 200, 2),
            ),
            errors=(ErrorCount("deepseek", "deepseek-chat", "overloaded_error", 1),),
            scenarios={"default": 3, "think": 1},
            rate_limited={"rpm": 2},
            active_requests=3,
            active_streams=1,
            queue_depth=2,
            minute=window(60, requests=4, errors=1, input_tokens=400, output_tokens=100, latency_us=80_000),
            recent=window(10, requests=2, input_tokens=50, output_tokens=30),
            sessions=(SessionStats("s", T, T, 4, 400, 100, "deepseek", "deepseek-chat"),),
            series_dropped=1,
            table_full=2,
        )
    ).decode()


def test_the_output_passes_a_strict_parser_and_prometheus_clients() -> None:
    text = _busy()
    families = parse(text)
    official = {family.name: family for family in text_string_to_metric_families(text)}
    for name, family in families.items():
        key = name.removesuffix("_total") if family.type == "counter" else name
        assert official[key].type == family.type
        assert len(official[key].samples) == len(family.samples)


def test_seed_fork_names_keep_their_types() -> None:
    families = parse(_busy())
    assert {name: families[name].type for name in SEED_NAMES} == SEED_NAMES


def test_a_fresh_server_declares_every_family_with_zeros() -> None:
    families = parse(render(snapshot()).decode())
    assert set(SEED_NAMES) <= set(families)
    assert value(families, "ccr_requests_total") == 0
    assert value(families, "ccr_latency_p99_ms") == 0
    assert value(families, "ccr_error_rate_percent") == 0
    assert families["ccr_latency_ms"].samples == {}


def test_values() -> None:
    f = parse(_busy())
    deepseek = {"provider": "deepseek", "model": "deepseek-chat"}
    weird = {"provider": 'we"ird\\name\n', "model": "a/b"}
    assert value(f, "ccr_requests_total") == 4
    assert value(f, "ccr_provider_requests_total", **deepseek) == 2
    assert value(f, "ccr_provider_errors_total", **deepseek) == 1
    assert value(f, "ccr_responses_total", status="529", **deepseek) == 1
    assert value(f, "ccr_errors_total", type="overloaded_error", **deepseek) == 1
    assert value(f, "ccr_status_codes_total", code="2xx") == 3
    assert value(f, "ccr_status_codes_total", code="4xx") == 0
    assert value(f, "ccr_status_codes_total", code="5xx") == 1
    assert value(f, "ccr_scenario_requests_total", scenario="think") == 1
    assert value(f, "ccr_rate_limited_total", scope="rpm") == 2
    assert value(f, "ccr_provider_cache_write_tokens_total", **weird) == 8
    assert value(f, "ccr_provider_stream_requests_total", **weird) == 1
    assert value(f, "ccr_provider_cost_usd_total", **weird) == 1.5
    assert value(f, "ccr_total_cost_usd") == 1.75
    assert value(f, "ccr_input_tokens_total") == 400
    assert value(f, "ccr_average_tokens_per_request") == 500 / 4
    assert value(f, "ccr_input_to_output_ratio") == 0.25
    assert value(f, "ccr_active_requests") == 3
    assert value(f, "ccr_active_streams") == 1
    assert value(f, "ccr_queue_depth") == 2
    assert value(f, "ccr_active_sessions") == 1
    assert value(f, "ccr_requests_per_minute") == 4
    assert value(f, "ccr_error_rate_percent") == 25
    assert value(f, "ccr_average_latency_ms") == 20
    assert value(f, "ccr_tokens_per_second") == 8
    assert value(f, "ccr_output_tokens_per_second") == 3
    assert value(f, "ccr_provider_average_latency_ms", **deepseek) == 21.5
    assert value(f, "ccr_start_time_seconds") == (T - 90_000) / 1000
    assert value(f, "ccr_metrics_series_dropped_total") == 1
    assert value(f, "ccr_state_table_full_total") == 2


def test_histograms_are_cumulative_with_sum_and_count() -> None:
    f = parse(_busy())
    deepseek = {"provider": "deepseek", "model": "deepseek-chat"}
    weird = {"provider": 'we"ird\\name\n', "model": "a/b"}
    bucket = "ccr_latency_ms_bucket"
    assert value(f, "ccr_latency_ms", bucket, le="5", **deepseek) == 1
    assert value(f, "ccr_latency_ms", bucket, le="25", **deepseek) == 1
    assert value(f, "ccr_latency_ms", bucket, le="50", **deepseek) == 2
    assert value(f, "ccr_latency_ms", bucket, le="+Inf", **deepseek) == 2
    assert value(f, "ccr_latency_ms", "ccr_latency_ms_sum", **deepseek) == 43
    assert value(f, "ccr_latency_ms", "ccr_latency_ms_count", **deepseek) == 2
    assert value(f, "ccr_latency_ms", bucket, le="5", **weird) == 1  # a value on a bound is inside it
    assert value(f, "ccr_latency_ms", bucket, le="60000", **weird) == 1
    assert value(f, "ccr_latency_ms", bucket, le="+Inf", **weird) == 2
    assert value(f, "ccr_overhead_us", "ccr_overhead_us_bucket", le="100", **deepseek) == 1
    assert value(f, "ccr_overhead_us", "ccr_overhead_us_sum", **deepseek) == 200
    # TTFT only for routes that streamed
    assert value(f, "ccr_ttft_ms", "ccr_ttft_ms_count", **weird) == 1
    with pytest.raises(KeyError):
        value(f, "ccr_ttft_ms", "ccr_ttft_ms_count", **deepseek)
    # latency percentiles over every route: 3, 5, 40, 70000 ms
    assert value(f, "ccr_latency_p50_ms") == 5
    assert value(f, "ccr_latency_p99_ms") == 60_000


def test_label_escaping() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_label("plain/é") == "plain/é"
    assert '{provider="we\\"ird\\\\name\\n",model="a/b"}' in _busy()


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (5, "5"),
        (5.0, "5"),
        (0.5, "0.5"),
        (1e-7, "1e-07"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_value_format(number: float, text: str) -> None:
    assert format_value(number) == text


def test_content_type() -> None:
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
