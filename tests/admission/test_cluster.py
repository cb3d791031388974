"""Admission across machines: two controllers (two machines' shared memory, two connection pools) on one
real Redis enforce the client limits, the provider limits and its queue, and the token budgets together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ccr_fast.admission import AdmissionConfig, AdmissionContext
from ccr_fast.admission.cluster import ClusterAdmissionController, ClusterTicket
from ccr_fast.admission.cluster_limits import ClusterLimits, Settlements
from ccr_fast.protocol.errors import GatewayError
from ccr_fast.state.redis_backend import RedisBackend
from ccr_fast.state.shared import SharedState
from tests.redis_fixtures import backends, machines, namespace, needs_redis, server
from tests.redis_server import RedisServer

__all__ = ["backends", "machines", "namespace", "server"]

pytestmark = needs_redis

Fleet = Callable[..., list[ClusterAdmissionController]]


@pytest.fixture
def fleet(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
) -> Fleet:
    """``fleet(config, n=2, **backend_options)``: one controller per machine, all on the test's Redis."""

    def make(
        raw: dict[str, Any], n: int = 2, url: str | None = None, **options: Any
    ) -> list[ClusterAdmissionController]:
        config = AdmissionConfig.from_config(raw)
        made = []
        for _ in range(n):
            backend = backends(url or server.url, prefix=namespace, **options)
            state = machines()
            made.append(
                ClusterAdmissionController(
                    config, state, ClusterLimits(backend, state.table), Settlements(backend)
                )
            )
        return made

    return make


def _ctx(
    ip: str = "192.0.2.1", key: str | None = None, session: str | None = None, **kw: Any
) -> AdmissionContext:
    return AdmissionContext(ip, session, key, **kw)


async def _refusal(call: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await call
    return caught.value


async def test_client_limits_hold_across_machines(fleet: Fleet) -> None:
    a, b = fleet(
        {
            "RateLimit": {
                "perIP": {"requestsPerMinute": 3},
                "perKey": {"requestsPerMinute": 100, "keys": {"ci": {"requestsPerMinute": 2}}},
                "perSession": {"requestsPerMinute": 2},
                "global": {"requestsPerMinute": 50},
            }
        }
    )
    await a.check_client_remote(_ctx(ip="192.0.2.7"))
    await b.check_client_remote(_ctx(ip="192.0.2.7"))
    await a.check_client_remote(_ctx(ip="192.0.2.7"))
    err = await _refusal(b.check_client_remote(_ctx(ip="192.0.2.7")))
    assert (err.status, err.error_type) == (429, "rate_limit_error")
    assert "this client address allows 3 requests per minute" in err.message
    assert 1 <= int(err.headers["retry-after"]) <= 20

    await a.check_client_remote(_ctx(key="ci"))
    await b.check_client_remote(_ctx(key="ci"))
    err = await _refusal(a.check_client_remote(_ctx(ip="192.0.2.8", key="ci")))
    assert "this API key allows 2 requests per minute" in err.message
    await b.check_client_remote(_ctx(ip="192.0.2.8", key="other"))  # other keys have the default limit

    await a.check_client_remote(_ctx(ip="192.0.2.9", session="s1"))
    await b.check_client_remote(_ctx(ip="192.0.2.10", session="s1"))
    err = await _refusal(a.check_client_remote(_ctx(ip="192.0.2.11", session="s1")))
    assert "this session allows 2 requests per minute" in err.message


async def test_a_blacklisted_address_is_refused_without_asking_redis(fleet: Fleet) -> None:
    (gate,) = fleet(
        {"RateLimit": {"perIP": {"requestsPerMinute": 5, "blacklist": ["203.0.113.0/24"]}}},
        n=1,
        url="redis://127.0.0.1:9/0",  # nothing listens here
        fail_mode="closed",
        timeout_ms=200,
    )
    err = await _refusal(gate.check_client_remote(_ctx(ip="203.0.113.5")))
    assert (err.status, err.error_type) == (403, "permission_error")
    err = await _refusal(gate.check_client_remote(_ctx(ip="192.0.2.1")))  # fail-closed: Redis is needed
    assert err.status == 429 and "Redis" in err.message and err.headers["retry-after"] == "1"
    with pytest.raises(TypeError):
        gate.check_client(_ctx())  # the synchronous check would use this machine's memory only


async def test_the_provider_queue_waits_on_the_cluster_wide_bucket(fleet: Fleet) -> None:
    raw = {"RateLimit": {"providers": {"p": {"requestsPerSecond": 4}}}, "Queue": {"timeoutMs": 5000}}
    a, b = fleet(raw)
    for _ in range(4):
        ticket = await a.acquire_provider(_ctx(provider="p", model="m"))
        assert ticket.waited == 0.0
    ticket = await b.acquire_provider(_ctx(provider="p", model="m"))  # machine a took the whole burst
    assert ticket.waited > 0.0
    assert b.queue_counts() == (0, 1) and a.queue_counts() == (0, 0)

    (rejecting,) = fleet({**raw, "Queue": {"overflow": "reject"}}, n=1)
    err = await _refusal(rejecting.acquire_provider(_ctx(provider="p", model="m")))
    assert err.status == 429 and "provider p allows 4 requests per second" in err.message


async def test_queued_requests_are_counted_and_time_out_with_529(fleet: Fleet) -> None:
    a, b = fleet({"RateLimit": {"providers": {"p": {"requestsPerMinute": 1}}}, "Queue": {"timeoutMs": 300}})
    await a.acquire_provider(_ctx(provider="p"))
    waits = [asyncio.create_task(b.acquire_provider(_ctx(provider="p"))) for _ in range(3)]
    await asyncio.sleep(0.1)
    assert b.queue_counts() == (3, 3) and b.queue_depth == 3
    for task in waits:
        err = await _refusal(task)
        assert (err.status, err.error_type) == (529, "overloaded_error")
    assert b.queue_counts() == (0, 3)


async def test_unused_reserved_tokens_come_back_to_every_machine(fleet: Fleet) -> None:
    a, b = fleet(
        {"RateLimit": {"providers": {"p": {"tokensPerMinute": 1000}}}, "Queue": {"overflow": "reject"}}
    )
    ticket = await a.acquire_provider(_ctx(provider="p", estimated_tokens=900))
    assert isinstance(ticket, ClusterTicket)
    err = await _refusal(b.acquire_provider(_ctx(provider="p", estimated_tokens=500)))
    assert "provider p allows 1000 tokens per minute" in err.message
    ticket.charge_tokens(100)  # the response used 100 of the 900 reserved
    ticket.release()
    ticket.release()  # idempotent
    await a.settlements.drain()
    await b.acquire_provider(_ctx(provider="p", estimated_tokens=500))


async def test_token_budgets_are_charged_from_real_usage_on_every_machine(fleet: Fleet) -> None:
    a, b = fleet({"RateLimit": {"perKey": {"tokenBudget": 100}, "perSession": {"tokenBudget": 10_000}}})
    ctx = _ctx(key="bot", session="s")
    await a.check_client_remote(ctx)
    ticket = await a.acquire_provider(ctx)
    ticket.charge_tokens(400)
    ticket.release()
    await a.settlements.drain()
    err = await _refusal(b.check_client_remote(_ctx(key="bot", session="other")))
    assert "this API key allows 100 tokens per minute" in err.message
    await b.check_client_remote(_ctx(key="someone-else", session="s"))  # the session's budget is larger


async def test_fail_open_reserves_nothing_and_so_gives_nothing_back(fleet: Fleet) -> None:
    (gate,) = fleet(
        {"RateLimit": {"providers": {"p": {"tokensPerMinute": 1000}}}},
        n=1,
        url="redis://127.0.0.1:9/0",
        fail_mode="open",
        timeout_ms=200,
    )
    ticket = await gate.acquire_provider(_ctx(provider="p", estimated_tokens=900))
    ticket.release()
    assert gate.settlements.pending == 0


async def test_spillover_takes_the_next_route_with_room_across_machines(fleet: Fleet) -> None:
    a, b = fleet(
        {
            "Providers": [{"name": "p"}, {"name": "q"}],
            "RateLimit": {"providers": {"p": {"requestsPerMinute": 1}, "q": {"requestsPerMinute": 1}}},
            "Queue": {"overflow": "spillover", "spilloverProviders": ["q,m2"], "timeoutMs": 200},
        }
    )
    assert (await a.acquire_provider(_ctx(provider="p", model="m"))).route is None
    assert (await b.acquire_provider(_ctx(provider="p", model="m"))).route == "q,m2"  # p is full everywhere
    err = await _refusal(a.acquire_provider(_ctx(provider="p", model="m")))  # and now q too: wait, time out
    assert err.status == 529
