"""Admission limits in a real Redis: all or nothing in one round trip, refusals answered locally, leases,
token budgets and reservations, the fail modes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio

from ccr_fast.admission.cluster_limits import (
    COUNTED,
    UNCOUNTED,
    ClusterLimits,
    Settlements,
    Want,
    bucket_key,
)
from ccr_fast.admission.config import Limits, Rate
from ccr_fast.admission.limits import Refusal, Scope
from ccr_fast.state.redis_backend import RedisBackend
from ccr_fast.state.shared import SharedState
from tests.redis_fixtures import (
    admin,
    backends,
    evalsha_calls,
    machines,
    namespace,
    needs_redis,
    own_server,
    server,
)
from tests.redis_server import RedisServer

__all__ = ["admin", "backends", "machines", "namespace", "own_server", "server"]

pytestmark = needs_redis


def per_minute(count: float, *, tokens: float | None = None) -> Limits:
    return Limits(
        per_minute=Rate(count, 60.0), tokens=None if tokens is None else Rate(tokens, 60.0, "tokens")
    )


SESSION = Scope("this session", "adm/s/", per_minute(2))
GLOBAL = Scope("the gateway", "adm/g", per_minute(3))


def limits_for(
    url: str,
    prefix: str,
    backends: Callable[..., RedisBackend],
    state: SharedState,
    lease: int = 1,
    **kw: Any,
) -> ClusterLimits:
    return ClusterLimits(backends(url, prefix=prefix, **kw), state.table, lease)


async def test_all_limits_of_a_request_are_taken_together_or_not_at_all(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
) -> None:
    limits = limits_for(server.url, namespace, backends, machines())

    def wants(session: str) -> list[Want]:
        return [Want(SESSION, "adm/s/" + session), Want(GLOBAL, "adm/g")]

    assert await limits.admit(wants("a")) == COUNTED
    assert await limits.admit(wants("a")) == COUNTED
    refused = await limits.admit(wants("a"))  # the session is full; the global limit must keep its unit
    assert isinstance(refused, Refusal) and "this session allows 2 requests per minute" in refused.reason
    assert await limits.admit(wants("b")) == COUNTED  # the third global unit was still there
    refused = await limits.admit(wants("c"))
    assert isinstance(refused, Refusal) and "the gateway allows 3" in refused.reason
    assert 0 < refused.wait_ns <= 20 * 10**9


async def test_one_round_trip_per_request_and_refusals_answered_locally(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
    admin: redis.asyncio.Redis,
) -> None:
    limits = limits_for(server.url, namespace, backends, machines())
    wants = [Want(SESSION, "adm/s/x"), Want(GLOBAL, "adm/g")]
    before = await evalsha_calls(admin)
    for _ in range(2):
        assert await limits.admit(wants) == COUNTED
    first = await limits.admit(wants)
    assert await evalsha_calls(admin) - before == 3  # one script per request, whatever the number of limits
    assert isinstance(first, Refusal)
    for _ in range(5):  # Redis said when the session has room again: every worker here knows it now
        again = await limits.admit(wants)
        assert isinstance(again, Refusal) and again.reason == first.reason
        assert 0 < again.wait_ns <= first.wait_ns
    assert await evalsha_calls(admin) - before == 3


async def test_machines_share_one_limit_exactly(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
) -> None:
    scope = Scope("this API key", "adm/k/", per_minute(7))
    fleet = [limits_for(server.url, namespace, backends, machines()) for _ in range(3)]

    async def ask(limits: ClusterLimits) -> bool:
        return await limits.admit([Want(scope, "adm/k/ci")]) == COUNTED

    results = await asyncio.gather(*(ask(fleet[i % 3]) for i in range(30)))
    assert sum(results) == 7


async def test_leases_spend_locally_and_exceed_by_at_most_the_lease_per_machine(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
    admin: redis.asyncio.Redis,
) -> None:
    scope = Scope(
        "the gateway", "adm/g", Limits(per_minute=Rate(60, 6000.0))
    )  # burst 60, no refill to speak of
    lease = 10
    fleet = [limits_for(server.url, namespace, backends, machines(), lease) for _ in range(2)]
    before = await evalsha_calls(admin)
    admitted = [0, 0]
    for _ in range(40):
        for index, limits in enumerate(fleet):
            admitted[index] += await limits.admit([Want(scope, "adm/g")]) == COUNTED
    assert sum(admitted) <= 60 + 2 * (lease - 1)
    assert sum(admitted) >= 60 - 2 * (lease - 1)  # leased units not spent yet are the only shortfall
    # 60 units in leases of 10: a few round trips, then local refusals
    assert await evalsha_calls(admin) - before <= 60 // lease + 4


async def test_a_budget_is_checked_before_and_charged_after(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
) -> None:
    scope = Scope("this API key", "adm/k/", per_minute(100, tokens=1000))
    backend = backends(server.url, prefix=namespace)
    limits = ClusterLimits(backend, machines().table)
    other_machine = limits_for(server.url, namespace, backends, machines())
    settle = Settlements(backend)
    assert scope.tokens is not None
    want = [Want(scope, "adm/k/bot")]
    assert await limits.admit(want) == COUNTED
    settle.add(bucket_key("adm/k/bot", scope.tokens), scope.tokens, 2500)  # the response used 2.5x the budget
    await settle.drain()
    refused = await other_machine.admit(want)
    assert isinstance(refused, Refusal) and "this API key allows 1000 tokens per minute" in refused.reason
    assert 80 * 10**9 < refused.wait_ns <= 90 * 10**9  # 1500 tokens over, at 1000 a minute


async def test_a_reservation_waits_for_tokens_given_back(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
) -> None:
    scope = Scope("provider p", "adm/p/p", per_minute(100, tokens=1000), reserve_tokens=True)
    assert scope.tokens is not None
    backend = backends(server.url, prefix=namespace)
    limits = ClusterLimits(backend, machines().table)
    settle = Settlements(backend)
    assert await limits.admit([Want(scope, "adm/p/p", 800)]) == COUNTED
    refused = await limits.admit([Want(scope, "adm/p/p", 300)])
    assert isinstance(refused, Refusal) and "tokens per minute" in refused.reason
    woken: list[str] = []
    settle.add(bucket_key("adm/p/p", scope.tokens), scope.tokens, -600, lambda: woken.append("yes"))
    await settle.drain()
    assert woken == ["yes"]  # the queue is nudged once the tokens are back in Redis
    assert await limits.admit([Want(scope, "adm/p/p", 300)]) == COUNTED  # token refusals are not remembered


async def test_settlements_coalesce_into_one_round_trip(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    admin: redis.asyncio.Redis,
) -> None:
    pace = Scope("k", "adm/k/", per_minute(1, tokens=10_000)).tokens
    assert pace is not None
    settle = Settlements(backends(server.url, prefix=namespace))
    before = await evalsha_calls(admin)
    for i in range(20):
        settle.add(bucket_key(f"adm/k/{i % 4}", pace), pace, 100)
    assert settle.pending == 4
    await settle.drain()
    assert await evalsha_calls(admin) - before == 1
    ttl = await admin.pttl(f"{namespace}:rl:".encode() + bucket_key("adm/k/0", pace))
    assert 2_900 < ttl <= 3_001  # 500 tokens at 10,000 a minute: 3 s of debt


async def test_long_ids_are_hashed_into_short_keys() -> None:
    pace = SESSION.requests[0]
    long_one = bucket_key("adm/s/" + "x" * 5000, pace)
    assert len(long_one) < 64 and long_one.endswith(b":m")
    assert long_one != bucket_key("adm/s/" + "x" * 4999 + "y", pace)
    assert bucket_key("adm/s/abc", pace) == b"adm/s/abc:m"


async def test_a_full_table_still_limits_through_redis(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
) -> None:
    state = machines(table_capacity=8)
    for i in range(200):  # fill the table
        try:
            state.table.slot(f"filler/{i}")
        except Exception:
            break
    limits = limits_for(server.url, namespace, backends, state)
    wants = [Want(SESSION, "adm/s/full")]
    assert [await limits.admit(wants) == COUNTED for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_without_redis_the_fail_mode_answers(
    own_server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
    mode: str,
) -> None:
    scope = Scope("the gateway", "adm/g", per_minute(100))
    budget = Scope("this session", "adm/s/", Limits(tokens=Rate(1000, 60.0, "tokens")))
    state = machines()
    limits = limits_for(own_server.url, namespace, backends, state, 5, fail_mode=mode, timeout_ms=300)
    pool = state.table.slot("rl-pool/adm/g") + 8  # the per-minute limit's leased units
    assert await limits.admit([Want(scope, "adm/g")]) == COUNTED  # leased 5: 4 left in the pool
    assert state.table.atomics.load(pool) == 4
    own_server.kill()
    # a budget is always asked in Redis: without an answer, the unit taken from the pool goes back
    both = [Want(scope, "adm/g"), Want(budget, "adm/s/s1")]
    found = await limits.admit(both)
    assert state.table.atomics.load(pool) == (3 if mode == "open" else 4)
    assert found == UNCOUNTED if mode == "open" else isinstance(found, Refusal)
    while state.table.atomics.load(pool):  # leased units are spent without Redis, whatever the mode
        assert await limits.admit([Want(scope, "adm/g")]) == COUNTED
    found = await limits.admit([Want(scope, "adm/g")])
    if mode == "open":
        assert found == UNCOUNTED
    else:
        assert isinstance(found, Refusal) and found.wait_ns == 10**9 and "Redis" in found.reason


def test_settlements_without_an_event_loop_are_dropped_not_kept(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend]
) -> None:
    pace = SESSION.requests[0]
    settle = Settlements(backends(server.url, prefix=namespace))
    settle.add(b"adm/s/x:m", pace, 5)
    assert settle.pending == 0
