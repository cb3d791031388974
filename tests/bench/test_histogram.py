"""Histograms from a /metrics scrape: parsing ccr-fast's own exposition, differences, percentile estimates."""

from __future__ import annotations

import math

import pytest
from bench.histogram import OVERHEAD_FAMILY, Histogram, counter_total, parse_histogram, summarize

from ccr_fast.observe.metrics import OVERHEAD_BUCKETS_US, Metrics
from ccr_fast.state.shared import SharedState


def _record(metrics: Metrics, provider: str, overhead_us: int, wait_us: int = 2000) -> None:
    metrics.record(
        provider=provider,
        model="m",
        scenario="default",
        status=200,
        error_type=None,
        stream=False,
        latency_s=(overhead_us + wait_us) / 1e6,
        ttft_s=None,
        upstream_wait_s=wait_us / 1e6,
        input_tokens=0,
        output_tokens=0,
        cache_read=0,
        cache_write=0,
        session=None,
    )


def test_parse_ccr_fast_overhead_histogram_and_subtract_scrapes() -> None:
    metrics = Metrics(SharedState.local())
    for overhead in (30, 30, 70, 300):
        _record(metrics, "a", overhead)
    _record(metrics, "b", 700)
    before = parse_histogram(metrics.prometheus().decode(), OVERHEAD_FAMILY)
    assert before is not None
    assert before.bounds == (*map(float, OVERHEAD_BUCKETS_US), math.inf)
    assert before.count == 5 and before.total == 30 + 30 + 70 + 300 + 700
    assert before.cumulative[:4] == (2, 3, 3, 4)  # le=50, 100, 250, 500: cumulative, both routes added

    only_a = parse_histogram(metrics.prometheus().decode(), OVERHEAD_FAMILY, {"provider": "a"})
    assert only_a is not None and only_a.count == 4

    for _ in range(10):
        _record(metrics, "a", 120)
    after = parse_histogram(metrics.prometheus().decode(), OVERHEAD_FAMILY)
    assert after is not None
    phase = after.minus(before)
    assert phase.count == 10 and phase.total == 1200 and phase.mean() == 120
    # all ten in the (100, 250] bucket: the median is interpolated halfway through it
    assert phase.quantile(0.5) == pytest.approx(175.0)


def test_quantile_interpolates_within_buckets_like_histogram_quantile() -> None:
    h = Histogram((50.0, 100.0, 250.0, math.inf), (10, 30, 40, 40), total=4000, count=40)
    assert h.quantile(0.5) == pytest.approx(75.0)  # rank 20: 10 below, 20 in (50, 100]
    assert h.quantile(0.99) == pytest.approx(100 + 150 * 9.6 / 10)
    assert h.quantile(0.1) == pytest.approx(20.0)  # rank 4 of 10 in the first bucket, from 0
    assert h.mean() == 100
    tail = Histogram((50.0, 100.0, math.inf), (1, 2, 10), total=5000, count=10)
    assert tail.quantile(0.9) == 100.0  # in +Inf: the highest finite bound is all a histogram can say
    empty = Histogram((50.0, math.inf), (0, 0), total=0, count=0)
    assert math.isnan(empty.quantile(0.5)) and math.isnan(empty.mean())


def test_json_round_trip_summary_and_bucket_mismatch() -> None:
    h = Histogram((50.0, 100.0, math.inf), (5, 9, 10), total=700, count=10)
    data = h.to_json()
    assert data["bounds"][-1] == "+Inf"
    assert Histogram.from_json(data) == h
    merged = summarize([data, h])
    assert merged["count"] == 20 and merged["mean"] == 70
    assert merged["p50"] == pytest.approx(50.0)
    assert summarize([]) == {"count": 0.0}
    with pytest.raises(ValueError, match="bounds differ"):
        h.minus(Histogram((10.0, math.inf), (1, 1), total=1, count=1))


def test_missing_family_and_counters() -> None:
    text = (
        "# HELP ccr_rate_limited_total x\n# TYPE ccr_rate_limited_total counter\n"
        'ccr_rate_limited_total{scope="global"} 2\nccr_rate_limited_total{scope="ip"} 3\n'
        "ccr_rate_limited_total_other 7\n"
    )
    assert parse_histogram(text, OVERHEAD_FAMILY) is None
    assert counter_total(text, "ccr_rate_limited_total") == 5
    assert counter_total(text, "ccr_requests_total") == 0
