"""Cluster metrics against a real Redis: machines publish their totals, any machine reads the sum; repeats,
outages, a Redis that lost its data and an expired baseline neither lose nor double requests."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
import redis.asyncio

from ccr_fast.observe.cluster import ClusterMetrics
from ccr_fast.observe.metrics import Metrics
from ccr_fast.state.redis_backend import RedisBackend
from ccr_fast.state.shared import SharedState
from tests.redis_fixtures import admin, backends, machines, namespace, needs_redis, own_server, server
from tests.redis_server import RedisServer

__all__ = ["admin", "backends", "machines", "namespace", "own_server", "server"]

pytestmark = needs_redis

Machine = tuple[Metrics, ClusterMetrics]


def serve(metrics: Metrics, n: int, *, provider: str = "deepseek", status: int = 200) -> None:
    for _ in range(n):
        metrics.record(
            provider=provider,
            model="deepseek-chat",
            scenario="default",
            status=status,
            error_type=None,
            stream=False,
            latency_s=0.2,
            ttft_s=None,
            upstream_wait_s=0.19,
            input_tokens=100,
            output_tokens=20,
            cache_read=0,
            cache_write=0,
            session=None,
        )


@pytest.fixture
def cluster(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[..., SharedState],
) -> Callable[..., Machine]:
    """``cluster(name)``: one more machine (its shared memory, metrics and Redis connection pool)."""

    def make(name: str, url: str | None = None, state: SharedState | None = None, **options: int) -> Machine:
        shared = state or machines()
        metrics = Metrics(shared)
        backend = backends(url or server.url, prefix=namespace, timeout_ms=options.pop("timeout_ms", 5000))
        return metrics, ClusterMetrics(metrics, backend, shared, hostname=name, **options)

    return make


async def test_the_cluster_totals_are_the_sum_of_the_machines(cluster: Callable[..., Machine]) -> None:
    (m1, c1), (m2, c2) = cluster("a"), cluster("b")
    serve(m1, 3)
    serve(m2, 4, status=529)
    m1.key_used("ci-bot")
    m2.key_used("ci-bot")
    m2.watch_queue(lambda: (2, 7))
    assert await c1.publish() and await c2.publish()
    assert await c1.publish() and await c2.publish()  # publishing again adds nothing
    view = await c1.read()
    assert view is not None
    assert view.requests == 7
    (route,) = view.routes
    assert route.requests == 7 and route.input_tokens == 700 and route.output_tokens == 140
    assert route.errors == 4 and route.cost_usd > 0 and route.priced
    assert view.api_keys == {"ci-bot": 2} and view.queued_total == 7 and view.queue_depth == 2
    assert sorted(i.id.split("/")[0] for i in view.instances) == ["a", "b"]
    serve(m2, 5)
    view = await c2.read()  # a read publishes the reader's own numbers first
    assert view is not None and view.requests == 12


async def test_one_worker_per_machine_publishes_each_interval(
    cluster: Callable[..., Machine], machines: Callable[..., SharedState]
) -> None:
    state = machines()
    (_, first), (_, second) = (
        cluster("h", state=state, interval_ms=200),
        cluster("h", state=state, interval_ms=200),
    )
    assert first.instance == second.instance  # one machine: one instance, whichever worker asks
    assert [first._due(), second._due(), first._due()] == [True, False, False]
    await asyncio.sleep(0.2)
    assert [second._due(), first._due()] == [True, False]


async def test_the_loop_publishes_and_dead_machines_drop_out_of_the_live_gauges(
    cluster: Callable[..., Machine],
) -> None:
    (m1, c1), (_, c2) = cluster("a", interval_ms=100), cluster("b", interval_ms=100)
    m1.watch_queue(lambda: (3, 3))
    serve(m1, 2)
    loop = asyncio.create_task(c1.run())
    try:
        deadline = time.monotonic() + 5
        while (view := await c2.read()) is not None and view.requests < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert view is not None and view.requests == 2 and view.queue_depth == 3
    finally:
        loop.cancel()
    await asyncio.sleep(1.5)  # three intervals and a second without a publish from "a"
    view = await c2.read()
    assert view is not None and view.requests == 2  # its totals stay
    assert [i.id.split("/")[0] for i in view.instances] == ["b"] and view.queue_depth == 0


async def test_nothing_is_lost_while_redis_is_down_and_a_new_redis_is_refilled(
    own_server: RedisServer, cluster: Callable[..., Machine]
) -> None:
    (m1, c1), (m2, c2) = cluster("a", url=own_server.url, timeout_ms=300), cluster("b", url=own_server.url)
    serve(m1, 2)
    serve(m2, 1)
    assert await c1.publish() and await c2.publish()
    own_server.kill()
    serve(m1, 3)
    assert not await c1.publish()
    assert await c1.read() is None
    own_server.restart()  # empty: the totals are gone
    await asyncio.sleep(0.3)  # past the backend's retry interval
    assert await c1.publish()
    view = await c1.read()
    assert view is not None and view.requests == 5  # a new epoch: "a" adds everything it has
    assert await c2.publish()
    view = await c1.read()
    assert view is not None and view.requests == 6


async def test_an_expired_baseline_is_rebuilt_without_counting_twice(
    cluster: Callable[..., Machine],
    admin: redis.asyncio.Redis,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics, machine = cluster("a")
    serve(metrics, 2)
    assert await machine.publish()
    await admin.delete(f"{namespace}:metrics:v1:base:{machine.instance}")  # as if it had expired
    serve(metrics, 3)
    with caplog.at_level(logging.WARNING, logger="ccr_fast.observe.cluster"):
        assert await machine.publish()
    assert "are not in the cluster totals" in caplog.text
    view = await machine.read()
    assert view is not None and view.requests == 2  # the 3 of the gap are lost, nothing counted twice
    serve(metrics, 4)
    view = await machine.read()
    assert view is not None and view.requests == 6
