"""The controller across worker processes: one global limit, per-session and per-IP limits, shared budgets.

Each worker is a forked process that attaches the segment by name and builds its own controller, as
Granian's workers do; each walks the same simulated clock, so the counts are exact, not timing-dependent.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import pytest

from ccr_fast.admission import AdmissionConfig, AdmissionContext, AdmissionController
from ccr_fast.protocol.errors import GatewayError
from ccr_fast.state.shared import SharedState
from tests.state_fixtures import Procs, attach

from .conftest import START_NS, FakeClock

N = 500  # the global limit, requests per second
GLOBAL = {"RateLimit": {"global": {"requestsPerSecond": N}}}
PER_CLIENT = {"RateLimit": {"perSession": {"requestsPerMinute": 20}, "perIP": {"requestsPerMinute": 20}}}


def _controller(state: SharedState, raw: dict[str, Any]) -> tuple[AdmissionController, FakeClock]:
    clock = FakeClock()
    return AdmissionController(AdmissionConfig.from_config(raw), state, clock=clock), clock


def _hammer(
    name: str,
    impl: ModuleType,
    raw: dict[str, Any],
    worker: int,
    offsets_ns: range,
    same_session: bool,
    same_ip: bool,
    all_in: Any,
    results: Any,
) -> None:
    """Send one request at each simulated offset; report how many were admitted."""
    state = attach(name, impl)
    controller, clock = _controller(state, raw)
    all_in.wait()
    admitted = 0
    for n, offset in enumerate(offsets_ns):
        clock.now = START_NS + offset
        ctx = AdmissionContext(
            "192.0.2.1" if same_ip else f"198.51.100.{worker}",
            session_id="shared" if same_session else f"w{worker}-{n}",
        )
        try:
            controller.check_client(ctx)
        except GatewayError as error:
            assert error.status == 429
            continue
        admitted += 1
    results.put(admitted)


def _run(
    state: SharedState,
    impl: ModuleType,
    procs: Procs,
    workers: int,
    raw: dict[str, Any],
    offsets_ns: range,
    *,
    same_session: bool = False,
    same_ip: bool = False,
) -> int:
    results = procs.ctx.SimpleQueue()
    all_in = procs.ctx.Barrier(workers)
    args = [
        (state.segment.name, impl, raw, w, offsets_ns, same_session, same_ip, all_in, results)
        for w in range(workers)
    ]
    procs.run(_hammer, args)
    return sum(results.get() for _ in range(workers))


@pytest.mark.parametrize("workers", [2, 4])
def test_a_burst_from_every_worker_admits_the_global_limit(
    state: SharedState, impl: ModuleType, procs: Procs, workers: int
) -> None:
    """Each worker fires 1000 requests within 10 ms: together N (±2%) get through, whoever served them."""
    admitted = _run(state, impl, procs, workers, GLOBAL, range(0, 10_000_000, 10_000))
    assert N <= admitted <= N * 1.02


@pytest.mark.parametrize("workers", [2, 4])
def test_a_sustained_overload_admits_the_global_rate(
    state: SharedState, impl: ModuleType, procs: Procs, workers: int
) -> None:
    """Each worker offers 1000 requests a second for 2 s: after the first burst, N (±2%) per second."""
    admitted = _run(state, impl, procs, workers, GLOBAL, range(0, 2_000_000_000, 1_000_000))
    per_second = (admitted - N) / 2
    assert abs(per_second - N) <= 0.02 * N


@pytest.mark.parametrize("workers", [2, 4])
def test_a_session_limit_holds_across_workers(
    state: SharedState, impl: ModuleType, procs: Procs, workers: int
) -> None:
    assert _run(state, impl, procs, workers, PER_CLIENT, range(30), same_session=True) == 20


@pytest.mark.parametrize("workers", [2, 4])
def test_an_ip_limit_holds_across_workers(
    state: SharedState, impl: ModuleType, procs: Procs, workers: int
) -> None:
    assert _run(state, impl, procs, workers, PER_CLIENT, range(30), same_ip=True) == 20


def test_threads_of_one_worker_share_the_limit_exactly(state: SharedState) -> None:
    controller, _ = _controller(state, GLOBAL)
    counts = [0] * 4

    def hammer(slot: int) -> None:
        for n in range(400):
            try:
                controller.check_client(AdmissionContext(f"203.0.113.{slot}", session_id=f"{slot}-{n}"))
            except GatewayError:
                continue
            counts[slot] += 1

    threads = [threading.Thread(target=hammer, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == N


def _check_budget(name: str, impl: ModuleType, raw: dict[str, Any], session: str, results: Any) -> None:
    controller, _ = _controller(attach(name, impl), raw)
    try:
        controller.check_client(AdmissionContext("192.0.2.1", session_id=session))
    except GatewayError as error:
        results.put(error.status)
    else:
        results.put(200)


async def test_usage_charged_in_one_worker_is_enforced_in_another(
    state: SharedState, impl: ModuleType, procs: Procs
) -> None:
    raw = {"RateLimit": {"perSession": {"tokenBudget": 1000}}}
    controller, _ = _controller(state, raw)
    ticket = await controller.admit(AdmissionContext("192.0.2.1", session_id="s"))
    ticket.charge_tokens(5000)
    ticket.release()
    results = procs.ctx.SimpleQueue()
    procs.run(_check_budget, [(state.segment.name, impl, raw, "s", results)])
    procs.run(_check_budget, [(state.segment.name, impl, raw, "t", results)])
    assert [results.get(), results.get()] == [429, 200]
