"""Metrics end to end on shared memory: recording, pricing, bounds, sessions, and real worker processes."""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

import pytest

from ccr_fast.observe.metrics import (
    BUILTIN_PRICES,
    ErrorCount,
    Histogram,
    Metrics,
    Price,
    Pricing,
    StatusCount,
)
from ccr_fast.state.segment import Segment
from ccr_fast.state.shared import SharedState
from tests.state_fixtures import Procs, attach

from .exposition import parse, value

PROVIDER, MODEL = "openrouter", "anthropic/claude-sonnet-4"
ROUTE = {"provider": PROVIDER, "model": MODEL}


def _request(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        **ROUTE,
        "scenario": "default",
        "status": 200,
        "error_type": None,
        "stream": False,
        "latency_s": 0.1,
        "ttft_s": None,
        "upstream_wait_s": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read": 0,
        "cache_write": 0,
        "session": None,
    }
    request.update(overrides)
    return request


# --- recording ----------------------------------------------------------------------------------------------


def test_a_request_lands_in_every_family(state: SharedState) -> None:
    metrics = Metrics(state)
    metrics.record(
        **_request(
            stream=True,
            latency_s=0.3,
            ttft_s=0.12,
            upstream_wait_s=0.2995,
            input_tokens=1000,
            output_tokens=200,
            cache_read=500,
            cache_write=100,
        )
    )
    snap = metrics.snapshot()
    assert snap.requests == 1
    (route,) = snap.routes
    assert (route.provider, route.model, route.requests, route.stream_requests) == (PROVIDER, MODEL, 1, 1)
    assert route.latency_ms.counts[6] == 1 and route.latency_ms.total == 300  # le=500
    assert route.ttft_ms.counts[5] == 1 and route.ttft_ms.total == 120  # le=250
    assert route.overhead_us.counts[3] == 1 and route.overhead_us.total == 500  # le=500 µs
    assert (route.input_tokens, route.output_tokens) == (1000, 200)
    assert (route.cache_read_tokens, route.cache_write_tokens) == (500, 100)
    sonnet = BUILTIN_PRICES["claude-sonnet-4"]
    assert route.cost_usd == (1000 * sonnet.input + 200 * sonnet.output + 500 * 0.3 + 100 * 3.75) / 1e6
    assert route.priced and route.errors == 0
    assert snap.statuses == (StatusCount(PROVIDER, MODEL, 200, 1),)
    assert snap.scenarios == {"default": 1}
    assert snap.minute.requests == snap.recent.requests == 1
    assert (snap.minute.input_tokens, snap.minute.output_tokens, snap.minute.latency_us) == (
        1000,
        200,
        300_000,
    )


@pytest.mark.parametrize(
    ("latency_s", "bucket"),
    [(0.0, 0), (0.005, 0), (0.005001, 1), (0.01, 1), (60.0, 12), (60.001, 13), (3600.0, 13)],
)
def test_bucket_bounds_are_inclusive(state: SharedState, latency_s: float, bucket: int) -> None:
    metrics = Metrics(state)
    metrics.record(**_request(latency_s=latency_s))
    counts = metrics.snapshot().routes[0].latency_ms.counts
    assert counts[bucket] == 1 and sum(counts) == 1


def test_overhead_is_latency_minus_upstream_wait_never_negative(state: SharedState) -> None:
    metrics = Metrics(state)
    metrics.record(**_request(latency_s=0.01, upstream_wait_s=0.00995))  # 50 µs
    metrics.record(**_request(latency_s=0.01, upstream_wait_s=0.02))  # clock skew: 0, not negative
    overhead = metrics.snapshot().routes[0].overhead_us
    assert overhead.counts[0] == 2 and overhead.total == 50


def test_failures_by_type(state: SharedState) -> None:
    metrics = Metrics(state)
    metrics.record(**_request(status=529))  # type from the status
    metrics.record(**_request(status=200, error_type="api_error"))  # failed mid-stream
    metrics.record(**_request(provider="", model="", status=401, scenario=""))  # refused before routing
    snap = metrics.snapshot()
    assert snap.errors == (
        ErrorCount("", "", "authentication_error", 1),
        ErrorCount(PROVIDER, MODEL, "api_error", 1),
        ErrorCount(PROVIDER, MODEL, "overloaded_error", 1),
    )
    assert [route.errors for route in snap.routes] == [1, 2]
    assert snap.minute.errors == 3
    assert snap.scenarios == {"default": 2}  # no scenario, no series


def test_nonsense_token_counts_count_as_zero(state: SharedState) -> None:
    metrics = Metrics(state)
    metrics.record(
        **_request(input_tokens=-5, output_tokens=-1, cache_read=-2, cache_write=-3, latency_s=-1.0)
    )
    (route,) = metrics.snapshot().routes
    assert (route.input_tokens, route.output_tokens, route.cost_usd, route.latency_ms.total) == (
        0,
        0,
        0.0,
        0.0,
    )


def test_rate_limits_by_scope(state: SharedState) -> None:
    metrics = Metrics(state)
    metrics.rate_limited("rpm")
    metrics.rate_limited("rpm")
    metrics.rate_limited("tpm")
    assert metrics.snapshot().rate_limited == {"rpm": 2, "tpm": 1}


# --- the request timer and the gauges -----------------------------------------------------------------------


def test_the_timer_measures_and_keeps_the_gauges(state: SharedState) -> None:
    metrics = Metrics(state)
    streaming = metrics.request_started(stream=True)
    plain = metrics.request_started()
    snap = metrics.snapshot()
    assert (snap.active_requests, snap.active_streams) == (2, 1)
    streaming.upstream_wait(0.0)
    streaming.first_token()
    streaming.finish(
        provider=PROVIDER, model=MODEL, scenario="default", status=200, input_tokens=3, session="s"
    )
    streaming.finish(provider=PROVIDER, model=MODEL, scenario="default", status=200)  # once only
    streaming.close()
    with plain:
        pass
    plain.finish(provider=PROVIDER, model=MODEL, scenario="default", status=200)  # closed: nothing recorded
    snap = metrics.snapshot()
    assert (snap.active_requests, snap.active_streams, snap.requests) == (0, 0, 1)
    (route,) = snap.routes
    assert (route.stream_requests, route.ttft_ms.count, route.input_tokens) == (1, 1, 3)
    assert route.latency_ms.total >= route.ttft_ms.total


def test_queue_depth(state: SharedState) -> None:
    metrics = Metrics(state)
    metrics.queue_depth(+1)
    metrics.queue_depth(+1)
    metrics.queue_depth(-1)
    assert metrics.snapshot().queue_depth == 1


def test_a_process_without_a_worker_slot_takes_one_when_it_first_counts(
    state: SharedState, impl: ModuleType
) -> None:
    master = SharedState(Segment.attach(state.segment.name, impl=impl))  # like the master: no slot
    try:
        metrics = Metrics(master)
        assert master.worker_slot == -1
        metrics.queue_depth(1)
        assert master.worker_slot >= 0
        assert metrics.snapshot().queue_depth == 1
    finally:
        master.close()


# --- pricing ------------------------------------------------------------------------------------------------


def test_builtin_prices_match_vendor_prefixed_and_dated_names() -> None:
    pricing = Pricing()
    sonnet = BUILTIN_PRICES["claude-sonnet-4"]
    assert pricing.lookup("anthropic", "claude-sonnet-4-20250514") == sonnet
    assert pricing.lookup("openrouter", "anthropic/claude-sonnet-4") == sonnet
    assert pricing.lookup("openai", "GPT-4o-2024-08-06") == BUILTIN_PRICES["gpt-4o"]
    assert pricing.lookup("openai", "gpt-4o-mini") == BUILTIN_PRICES["gpt-4o-mini"]
    assert pricing.lookup("openai", "gpt-4.1-nano") is None  # no guessing from a prefix


def test_configured_prices_win() -> None:
    pricing = Pricing(
        {
            "openrouter,anthropic/claude-sonnet-4": {"input": 1, "output": 2, "cache_read": 0.1},
            "my-local-model": {"input": 0, "output": 0},
        }
    )
    assert pricing.lookup("openrouter", "anthropic/claude-sonnet-4") == Price(1.0, 2.0, 0.1, 1.0)
    assert pricing.lookup("anthropic", "claude-sonnet-4") == BUILTIN_PRICES["claude-sonnet-4"]
    assert pricing.lookup("ollama", "my-local-model") == Price(0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "bad",
    [
        {"x": 3},
        {"x": {"input": 1}},
        {"x": {"input": -1, "output": 1}},
        {"x": {"input": True, "output": 1}},
        {"x": {"input": "1", "output": 1}},
        {"x": {"input": 1, "output": 1, "reasoning": 1}},
        {"x": {"input": float("nan"), "output": 1}},
    ],
)
def test_bad_price_tables_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Pricing"):
        Pricing(bad)


def test_cost_is_rounded_to_micro_usd() -> None:
    mini = Price(0.15, 0.6, 0.075, 0.15)
    assert mini.micro_usd(7, 0, 0, 0) == 1  # 1.05 µUSD
    assert mini.micro_usd(1_000_000, 1_000_000, 0, 0) == 750_000


def test_unpriced_models_cost_nothing_and_say_so(state: SharedState) -> None:
    metrics = Metrics(state)
    metrics.record(**_request(model="mystery", input_tokens=10**6))
    (route,) = metrics.snapshot().routes
    assert (route.cost_usd, route.priced) == (0.0, False)


def test_new_prices_apply_to_requests_from_then_on(state: SharedState) -> None:
    metrics = Metrics(state, pricing={"mystery": {"input": 2, "output": 2}})
    metrics.record(**_request(model="mystery", input_tokens=10))
    metrics.set_pricing({"mystery": {"input": 5, "output": 5}})
    metrics.record(**_request(model="mystery", input_tokens=10))
    assert metrics.snapshot().routes[0].cost_usd == 70 / 1e6


# --- bounds and sessions ------------------------------------------------------------------------------------


def test_past_the_series_bound_requests_still_count(state: SharedState) -> None:
    metrics = Metrics(state, max_series=6)
    for i in range(10):
        metrics.record(**_request(model=f"m{i}"))
    snap = metrics.snapshot()
    assert snap.requests == 10
    assert snap.series_dropped > 0
    assert sum(route.requests for route in snap.routes) < 10


def test_sessions_busiest_first_with_their_route(state: SharedState) -> None:
    metrics = Metrics(state)
    for i, session in enumerate(["a", "b", "b", "c", "b", "c"]):
        metrics.record(**_request(session=session, input_tokens=i, model="m-" + session))
    sessions = metrics.snapshot().sessions
    assert [(s.session, s.requests) for s in sessions] == [("b", 3), ("c", 2), ("a", 1)]
    assert (sessions[0].input_tokens, sessions[0].provider, sessions[0].model) == (
        1 + 2 + 4,
        "openrouter",
        "m-b",
    )
    assert [s["sessionId"] for s in metrics.sessions(limit=2)] == ["b", "c"]


def test_sessions_stay_bounded(state: SharedState) -> None:
    metrics = Metrics(state, session_capacity=8)
    for i in range(100):
        metrics.record(**_request(session=f"session-{i}"))
    assert 0 < len(metrics.snapshot().sessions) <= 8


# --- histogram math -----------------------------------------------------------------------------------------


def test_histogram_math() -> None:
    h = Histogram((10.0, 20.0, 40.0), (2, 0, 2, 1), 100.0)
    assert h.count == 5 and h.cumulative() == [2, 2, 4, 5] and h.mean() == 20.0
    assert h.quantile(0.2) == 5.0  # rank 1 of 2 in [0, 10]
    assert h.quantile(0.6) == 30.0  # rank 3: halfway through the 2 in (20, 40]
    assert h.quantile(1.0) == 40.0  # +Inf: the highest bound
    assert Histogram((1.0,), (0, 0), 0.0).quantile(0.5) == 0.0
    both = h + h
    assert both.counts == (4, 0, 4, 2) and both.total == 200.0
    with pytest.raises(ValueError):
        h + Histogram((1.0,), (0, 0), 0.0)


# --- real worker processes ----------------------------------------------------------------------------------

WORKERS = 3
PER_WORKER = 150
MODELS = ("deepseek-chat", "gpt-4o", "claude-sonnet-4")


def _serve(name: str, impl: ModuleType, worker: int) -> None:
    state = attach(name, impl)
    metrics = Metrics(state)
    for i in range(PER_WORKER):
        with metrics.request_started(stream=i % 2 == 0) as timer:
            timer.first_token()
            timer.finish(
                provider="p",
                model=MODELS[i % 3],
                scenario="default",
                status=200 if i % 10 else 500,
                input_tokens=100,
                output_tokens=10,
                session=f"w{worker}",
            )
    state.close()


def test_workers_add_up_exactly_in_another_process_scrape(
    state: SharedState, impl: ModuleType, procs: Procs
) -> None:
    procs.run(_serve, [(state.segment.name, impl, worker) for worker in range(WORKERS)])
    families = parse(Metrics(state).prometheus().decode())  # the test process never recorded anything
    total = WORKERS * PER_WORKER
    assert value(families, "ccr_requests_total") == total
    for model in MODELS:
        assert value(families, "ccr_provider_requests_total", provider="p", model=model) == total / 3
        assert (
            value(families, "ccr_latency_ms", "ccr_latency_ms_count", provider="p", model=model) == total / 3
        )
    assert value(families, "ccr_input_tokens_total") == 100 * total
    assert value(families, "ccr_status_codes_total", code="5xx") == WORKERS * PER_WORKER / 10
    assert value(families, "ccr_requests_per_minute") == total
    assert value(families, "ccr_active_requests") == 0
    assert value(families, "ccr_active_sessions") == WORKERS
    cost = sum(BUILTIN_PRICES[m].micro_usd(100, 10, 0, 0) for m in MODELS) * total / 3 / 1e6
    assert value(families, "ccr_total_cost_usd") == pytest.approx(cost, abs=1e-9)
    assert sum(s["requestCount"] for s in Metrics(state).sessions()) == total


def _hang(name: str, impl: ModuleType, ready: Connection) -> None:
    state = attach(name, impl)
    metrics = Metrics(state)
    timers = [
        metrics.request_started(stream=True),
        metrics.request_started(stream=True),
        metrics.request_started(),
    ]
    metrics.queue_depth(2)
    ready.send((state.worker_slot, len(timers)))
    ready.recv()


def _respawn(name: str, impl: ModuleType, ready: Connection) -> None:
    state = attach(name, impl)
    Metrics(state).queue_depth(1)
    ready.send(state.worker_slot)
    ready.recv()


def test_a_killed_workers_requests_leave_the_gauges(
    state: SharedState, impl: ModuleType, procs: Procs
) -> None:
    metrics = Metrics(state)
    mine = metrics.request_started()
    here, there = procs.ctx.Pipe()
    victim = procs.start(_hang, state.segment.name, impl, there)
    slot, _ = here.recv()
    before = metrics.realtime()
    assert (before["activeRequests"], before["activeStreams"], before["queueDepth"]) == (4, 2, 2)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    assert metrics.reap_dead_workers() == 3  # what the master does when it sees the exit
    after = metrics.realtime()
    assert (after["activeRequests"], after["activeStreams"], after["queueDepth"]) == (1, 0, 0)
    # a respawned worker takes that slot and starts from zero
    here, there = procs.ctx.Pipe()
    procs.start(_respawn, state.segment.name, impl, there)
    assert here.recv() == slot
    assert metrics.snapshot().queue_depth == 1
    here.send(b"done")
    mine.close()


def test_a_scrape_alone_clears_a_dead_workers_gauges(
    state: SharedState, impl: ModuleType, procs: Procs
) -> None:
    here, there = procs.ctx.Pipe()
    victim = procs.start(_hang, state.segment.name, impl, there)
    here.recv()
    victim.kill()
    victim.join()
    families = parse(Metrics(state).prometheus().decode())
    assert value(families, "ccr_active_requests") == 0
    assert value(families, "ccr_queue_depth") == 0


def test_the_admission_queue_and_api_keys_are_counted(state: SharedState) -> None:
    metrics = Metrics(state)
    metrics.queue_depth(+1)  # a queue counted by hand adds to the watched one
    metrics.watch_queue(lambda: (3, 17))
    for name in ("ci-bot", "ci-bot", "default"):
        metrics.key_used(name)
    snap = metrics.snapshot()
    assert (snap.queue_depth, snap.queued_total) == (4, 17)
    assert snap.api_keys == {"ci-bot": 2, "default": 1}
    families = parse(metrics.prometheus().decode())
    assert value(families, "ccr_queue_depth") == 4
    assert value(families, "ccr_queued_requests_total") == 17
    assert value(families, "ccr_api_key_requests_total", key="ci-bot") == 2
    metrics.watch_queue(None)
    assert metrics.snapshot().queue_depth == 1
