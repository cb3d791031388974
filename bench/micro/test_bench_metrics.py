"""Metrics: ns per request recorded, compiled ``ccr_fast._ext.shm_atomic`` against the pure twin.

Run with ``pytest bench/micro/test_bench_metrics.py --benchmark-enable`` and compare the ``pure`` and
``compiled`` rows of each group.  Series, sessions and limiter keys are already known (the per-process
caches answer), which is the steady state of a worker; the first request of a new label set pays for
registering it once.  ``rate limit + metrics`` is what one proxied request costs in these two features
together (the issue's budget is 50 µs at p99); ``scrape`` renders ``/metrics`` for 24 routes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from ccr_fast import _speedups
from ccr_fast.observe.metrics import Metrics
from ccr_fast.state import atomic
from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.shared import SLOT_WORDS, SharedState

COMPILED = _speedups.compiled("shm_atomic")
NOT_BUILT = "ccr_fast._ext.shm_atomic is not built (run: python setup.py build_ext --inplace)"
IMPLS = [
    pytest.param(atomic, id="pure"),
    pytest.param(COMPILED, id="compiled", marks=pytest.mark.skipif(COMPILED is None, reason=NOT_BUILT)),
]
REQUEST: dict[str, Any] = {
    "provider": "openrouter",
    "model": "anthropic/claude-sonnet-4",
    "scenario": "default",
    "status": 200,
    "error_type": None,
    "stream": True,
    "latency_s": 0.35,
    "ttft_s": 0.12,
    "upstream_wait_s": 0.3495,
    "input_tokens": 1200,
    "output_tokens": 300,
    "cache_read": 800,
    "cache_write": 0,
    "session": "0f3c9a52-6d1e-4b8f-9d3a-2c7e5b1a4f60",
}


@pytest.fixture(params=IMPLS)
def metrics(request: pytest.FixtureRequest) -> Iterator[Metrics]:
    impl: ModuleType = request.param
    layout = Layout(table_capacity=65536, slot_words=SLOT_WORDS)
    state = SharedState(Segment.create(layout, prefix=f"ccr-bench-{secrets.token_hex(4)}", impl=impl))
    state.claim_worker_slot()
    created = Metrics(state)
    created.record(**REQUEST)  # register the series and the session
    yield created
    state.close()
    state.unlink()


def test_record(benchmark: BenchmarkFixture, metrics: Metrics) -> None:
    benchmark.group = "metrics: record one request"
    benchmark(lambda: metrics.record(**REQUEST))
    assert metrics.snapshot().requests > 1


def test_record_without_session(benchmark: BenchmarkFixture, metrics: Metrics) -> None:
    benchmark.group = "metrics: record one request, no session"
    benchmark(lambda: metrics.record(**{**REQUEST, "session": None}))


def test_timer(benchmark: BenchmarkFixture, metrics: Metrics) -> None:
    benchmark.group = "metrics: request_started + finish"

    def one() -> None:
        timer = metrics.request_started(stream=True)
        timer.first_token()
        timer.finish(provider="openrouter", model="anthropic/claude-sonnet-4", scenario="default", status=200)

    benchmark(one)
    assert metrics.snapshot().active_requests == 0


def test_rate_limit_and_metrics(benchmark: BenchmarkFixture, metrics: Metrics) -> None:
    benchmark.group = "metrics: rate limit + metrics (one request)"
    limiter = metrics._state.limiter
    limiter.allow(b"rpm:bench", 1e9, 10**6)

    def one() -> None:
        limiter.allow(b"rpm:bench", 1e9, 10**6)
        timer = metrics.request_started(stream=True)
        timer.first_token()
        timer.finish(
            provider="openrouter",
            model="anthropic/claude-sonnet-4",
            scenario="default",
            status=200,
            input_tokens=1200,
            output_tokens=300,
            session=REQUEST["session"],
        )

    benchmark(one)


def test_scrape(benchmark: BenchmarkFixture, metrics: Metrics) -> None:
    benchmark.group = "metrics: /metrics for 24 routes"
    for provider in ("openrouter", "deepseek", "groq"):
        for n in range(8):
            metrics.record(**{**REQUEST, "provider": provider, "model": f"model-{n}"})
    text = benchmark(metrics.prometheus)
    assert b"ccr_requests_total" in text
