"""The Redis backend against a real ``redis-server``: exact limits across clients, processes and instances,
outages (SIGKILL, SIGSTOP, restart), counters, the leased fast path and the config section."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import multiprocessing
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from multiprocessing.queues import SimpleQueue
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis.asyncio

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.state.gcra import Decision
from ccr_fast.state.redis_backend import (
    _LEASE_PREFIX,
    _REFILLER,
    CLOSED_RETRY_AFTER_S,
    Bucket,
    Grant,
    LeasedLimiter,
    RedisBackend,
    RedisSettings,
    Taken,
    from_config,
)
from ccr_fast.state.redis_scripts import TAKE
from ccr_fast.state.shared import SharedState
from tests.redis_fixtures import PATIENT_MS
from tests.state_fixtures import Procs

from ..redis_server import NOT_INSTALLED, REDIS_SERVER, RedisServer

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason=NOT_INSTALLED)

#: a rate so slow that nothing refills during a test: admissions count the burst alone
FROZEN = 0.001
#: time for forked clients to start before a measured window opens, so every client asks from its start
LEAD_S = 0.4
Allow = Callable[[], Awaitable[Decision]]


@pytest.fixture
async def backends() -> AsyncIterator[Callable[..., RedisBackend]]:
    """``backends(url, **options)`` makes a backend (its own connection pool); all are closed after."""
    made: list[RedisBackend] = []

    def make(url: str, **options: Any) -> RedisBackend:
        made.append(RedisBackend(url, **options))
        return made[-1]

    yield make
    for backend in made:
        await backend.aclose()


@pytest.fixture
def machines() -> Iterator[Callable[[], SharedState]]:
    """``machines()`` makes one machine's shared memory (a private segment); all are removed after."""
    made: list[SharedState] = []

    def make() -> SharedState:
        made.append(SharedState.local(table_capacity=64))
        return made[-1]

    yield make
    for state in made:
        state.close()
        state.unlink()


async def _evalsha_calls(admin: redis.asyncio.Redis) -> int:
    stats = await admin.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


class Tally(NamedTuple):
    """What a group of clients saw."""

    admitted: int
    #: wall-clock time the first admitted call was sent (inf when none was): the window opens there
    first: float
    fallbacks: int = 0


async def _hammer(allow: Allow, start: float, deadline: float) -> Tally:
    """Ask from ``start`` until ``deadline`` (wall clock, as Redis TIME), waiting as told after a refusal."""
    await asyncio.sleep(start - time.time())
    admitted, first = 0, math.inf
    while (left := deadline - time.time()) > 0:
        sent = time.time()
        decision = await allow()
        if decision.allowed:
            admitted += 1
            first = min(first, sent)
        else:
            await asyncio.sleep(min(decision.retry_after, left))
    return Tally(admitted, first)


def _merge(tallies: Iterable[Tally]) -> Tally:
    tallies = list(tallies)
    return Tally(
        sum(t.admitted for t in tallies), min(t.first for t in tallies), sum(t.fallbacks for t in tallies)
    )


def _client_process(
    url: str,
    namespace: str,
    rate: float,
    burst: int,
    window: tuple[float, float] | None,
    tasks: int,
    results: SimpleQueue[Tally],
    machine: SharedState | None,
    lease_size: int,
) -> None:
    """A forked process with its own connection pool: ``tasks`` clients asking through ``window`` (start,
    deadline), or one call each when it is None."""

    async def main() -> None:
        async with RedisBackend(url, prefix=namespace, timeout_ms=PATIENT_MS) as backend:
            if machine is None:

                def allow() -> Awaitable[Decision]:
                    return backend.gcra_allow("k", rate, burst)
            else:
                leased = LeasedLimiter(backend, machine, lease_size)

                def allow() -> Awaitable[Decision]:
                    return leased.allow("k", rate, burst)

            if window:
                tally = _merge(await asyncio.gather(*(_hammer(allow, *window) for _ in range(tasks))))
            else:
                decisions = await asyncio.gather(*(allow() for _ in range(tasks)))
                tally = Tally(sum(d.allowed for d in decisions), math.inf)
            results.put(tally._replace(fallbacks=backend.fallbacks))

    asyncio.run(main())


def _start_clients(
    procs: Procs,
    server: RedisServer,
    namespace: str,
    rate: float,
    burst: int,
    window: tuple[float, float] | None,
    tasks: int,
    machine: SharedState | None = None,
    lease_size: int = 1,
    count: int = 2,
) -> tuple[list[multiprocessing.process.BaseProcess], SimpleQueue[Tally]]:
    results: SimpleQueue[Tally] = procs.ctx.SimpleQueue()
    args = (server.url, namespace, rate, burst, window, tasks, results, machine, lease_size)
    return [procs.start(_client_process, *args) for _ in range(count)], results


def _collect(processes: list[multiprocessing.process.BaseProcess], results: SimpleQueue[Tally]) -> Tally:
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * len(processes)
    return _merge(results.get() for _ in processes)


# -- exact limits -------------------------------------------------------------------------------------


async def test_concurrent_clients_and_processes_admit_exactly_the_burst(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend], procs: Procs
) -> None:
    processes, results = _start_clients(procs, server, namespace, FROZEN, 37, window=None, tasks=40)
    own_pools = [backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS) for _ in range(20)]
    shared_pool = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    calls = [b.gcra_allow("k", FROZEN, 37) for b in own_pools] + [
        shared_pool.gcra_allow("k", FROZEN, 37) for _ in range(40)
    ]
    decisions = await asyncio.gather(*calls)
    children = _collect(processes, results)

    assert sum(d.allowed for d in decisions) + children.admitted == 37
    refused = [d.retry_after for d in decisions if not d.allowed]
    assert refused and all(990 < wait <= 1000 for wait in refused)  # one unit at 0.001/s is 1000 s away
    assert children.fallbacks == 0
    assert all(b.fallbacks == 0 for b in [*own_pools, shared_pool])


async def test_a_window_admits_burst_plus_rate_times_window(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend], procs: Procs
) -> None:
    """The window opens with the first admission (the bucket is full then) and closes at the deadline."""
    rate, burst, start = 10.0, 10, time.time() + LEAD_S
    deadline = start + 1.0
    processes, results = _start_clients(procs, server, namespace, rate, burst, (start, deadline), tasks=8)
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    ours = await asyncio.gather(
        *(_hammer(lambda: backend.gcra_allow("k", rate, burst), start, deadline) for _ in range(8))
    )
    total = _merge([*ours, _collect(processes, results)])

    assert abs(total.admitted - (burst + rate * (deadline - total.first))) <= 1
    assert total.fallbacks == 0 and backend.fallbacks == 0


async def test_two_instances_share_one_limit(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend]
) -> None:
    """Two backends with separate pools, as two machines would have, draw from one bucket."""
    first = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    second = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    admitted = {first: 0, second: 0}
    for _ in range(15):
        for backend in (first, second):
            admitted[backend] += (await backend.gcra_allow("k", FROZEN, 12)).allowed
    assert admitted == {first: 6, second: 6}
    other = backends(server.url, prefix=f"{namespace}-other", timeout_ms=PATIENT_MS)
    assert (await other.gcra_allow("k", FROZEN, 12)).allowed  # another prefix is another limit


async def test_a_refusal_says_when_the_next_unit_comes(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend]
) -> None:
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    assert await backend.gcra_allow("k", 10.0, 1) == Decision(True, 0.0)
    refused = await backend.gcra_allow("k", 10.0, 1)
    assert not refused.allowed and 0 < refused.retry_after <= 0.1
    await asyncio.sleep(refused.retry_after)
    assert (await backend.gcra_allow("k", 10.0, 1)).allowed


async def test_take_grants_what_fits_between_need_and_want(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend]
) -> None:
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    assert await backend.gcra_take("k", FROZEN, 10, need=1, want=4) == Grant(4, 0.0)
    assert await backend.gcra_take("k", FROZEN, 10, need=2, want=8) == Grant(6, 0.0)
    refused = await backend.gcra_take("k", FROZEN, 10, need=1, want=5)
    assert refused.granted == 0 and 990 < refused.retry_after <= 1000
    assert (await backend.gcra_allow("k", FROZEN, 10, cost=3)).retry_after > 2990


async def test_cost_zero_asks_and_charge_books_a_debt(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend], admin: redis.asyncio.Redis
) -> None:
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    assert (await backend.gcra_allow("fresh", 10.0, 5, cost=0)).allowed
    assert await admin.exists(f"{namespace}:rl:fresh") == 0  # asking wrote nothing

    await backend.charge("budget", 50, 10.0)  # 5 s of usage against a 0.5 s budget
    overdrawn = await backend.gcra_allow("budget", 10.0, 5, cost=0)
    assert not overdrawn.allowed and 4.4 < overdrawn.retry_after <= 4.5
    await backend.charge("budget", 0, 10.0)
    assert (await backend.gcra_allow("budget", 10.0, 5, cost=0)).retry_after <= overdrawn.retry_after


async def test_a_key_expires_once_its_bucket_is_full_again(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend], admin: redis.asyncio.Redis
) -> None:
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    await backend.gcra_allow("fast", 10.0, 3)
    assert 0 < await admin.pttl(f"{namespace}:rl:fast") <= 101
    await backend.gcra_allow("slow", FROZEN, 3)
    assert 999_000 < await admin.pttl(f"{namespace}:rl:slow") <= 1_000_001


async def test_flushed_scripts_are_loaded_again(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend], admin: redis.asyncio.Redis
) -> None:
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    assert (await backend.gcra_allow("k", FROZEN, 2)).allowed
    await admin.script_flush()
    assert (await backend.gcra_allow("k", FROZEN, 2)).allowed
    assert not (await backend.gcra_allow("k", FROZEN, 2)).allowed
    assert backend.fallbacks == 0 and backend.healthy


@pytest.mark.parametrize(
    ("rate", "burst", "cost"), [(0.0, 1, 1), (float("nan"), 1, 1), (1.0, 0, 0), (1.0, 2, 3)]
)
async def test_impossible_limits_are_refused(
    server: RedisServer, backends: Callable[..., RedisBackend], rate: float, burst: int, cost: int
) -> None:
    backend = backends(server.url)
    with pytest.raises(ValueError):
        await backend.gcra_allow("k", rate, burst, cost)


async def test_bad_amounts_and_options_are_refused(
    server: RedisServer, backends: Callable[..., RedisBackend]
) -> None:
    backend = backends(server.url)
    with pytest.raises(ValueError, match="negative"):
        await backend.charge("k", -1, 1.0)
    with pytest.raises(ValueError, match="only go up"):
        await backend.incr_counters({"a": 1, "b": -1})
    with pytest.raises(ValueError, match="fail_mode"):
        RedisBackend(server.url, fail_mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_ms"):
        RedisBackend(server.url, timeout_ms=0)


# -- counters and gauges ------------------------------------------------------------------------------


async def test_counters_add_up_across_instances(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend]
) -> None:
    first = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    second = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    await first.incr_counters({"requests.ok": 3, "requests.error": 1, "tokens.in": 0})
    await second.incr_counters({"requests.ok": 2, "tokens.in": 700})
    await second.incr_counters({})

    assert await first.read_counters("requests.") == {"requests.ok": 5, "requests.error": 1}
    assert await second.read_counters() == {"requests.ok": 5, "requests.error": 1, "tokens.in": 700}


async def test_gauges_go_up_and_down(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend]
) -> None:
    first = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    second = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    assert await first.gauge_add("queued", 2) == 2
    assert await second.gauge_add("queued", 3) == 5
    assert await first.gauge_add("queued", -4) == 1
    assert await second.gauge_add("queued", 0) == 1


# -- outages ------------------------------------------------------------------------------------------


async def _bounded(call: Awaitable[Any]) -> Any:
    """``call``, failing the test instead of hanging when it does not return by itself."""
    return await asyncio.wait_for(call, timeout=10)


@pytest.mark.parametrize(
    ("mode", "expected"), [("open", Decision(True, 0.0)), ("closed", Decision(False, CLOSED_RETRY_AFTER_S))]
)
async def test_a_killed_redis_is_answered_by_the_fail_mode(
    own_server: RedisServer, backends: Callable[..., RedisBackend], mode: str, expected: Decision
) -> None:
    backend = backends(own_server.url, fail_mode=mode, timeout_ms=200)
    assert (await backend.gcra_allow("k", FROZEN, 1)).allowed
    assert not (await backend.gcra_allow("k", FROZEN, 1)).allowed
    await backend.incr_counters({"c": 1})

    own_server.kill()
    assert await _bounded(backend.gcra_allow("k", FROZEN, 1)) == expected
    assert not backend.healthy
    assert await _bounded(backend.gcra_allow("k", FROZEN, 1)) == expected  # while down, without waiting
    assert await _bounded(backend.gcra_take("k", FROZEN, 5, need=1, want=5)) == (
        Grant(1, 0.0) if mode == "open" else Grant(0, CLOSED_RETRY_AFTER_S)
    )
    await _bounded(backend.charge("k", 5, 1.0))
    await _bounded(backend.incr_counters({"c": 1}))
    assert await _bounded(backend.gauge_add("g", 1)) is None
    assert await _bounded(backend.read_counters()) is None
    assert backend.fallbacks >= 7


async def test_a_frozen_redis_is_answered_within_the_timeout(
    own_server: RedisServer, backends: Callable[..., RedisBackend]
) -> None:
    backend = backends(own_server.url, fail_mode="closed", timeout_ms=100, retry_interval_ms=0)
    assert (await backend.gcra_allow("k", FROZEN, 5)).allowed
    own_server.pause()
    try:
        started = time.monotonic()
        refused = await asyncio.gather(*(_bounded(backend.gcra_allow("k", FROZEN, 5)) for _ in range(10)))
        waited = time.monotonic() - started
    finally:
        own_server.resume()
    assert refused == [Decision(False, CLOSED_RETRY_AFTER_S)] * 10
    assert waited < 5  # answered by the 100 ms timeout, not by Redis (which answers nothing while frozen)
    assert (await backend.gcra_allow("k", FROZEN, 5)).allowed
    assert backend.healthy


async def test_a_restarted_redis_is_used_again_with_its_scripts_reloaded(
    own_server: RedisServer, backends: Callable[..., RedisBackend], caplog: pytest.LogCaptureFixture
) -> None:
    backend = backends(own_server.url, fail_mode="closed", timeout_ms=200, retry_interval_ms=0)
    assert (await backend.gcra_allow("k", FROZEN, 3)).allowed
    own_server.kill()
    with caplog.at_level(logging.INFO, logger="ccr_fast.state.redis_backend"):
        for _ in range(20):
            assert not (await _bounded(backend.gcra_allow("k", FROZEN, 3))).allowed
        own_server.restart()
        admitted = [(await backend.gcra_allow("k", FROZEN, 3)).allowed for _ in range(5)]

    assert admitted == [True, True, True, False, False]  # an empty Redis: a full bucket, exact again
    assert backend.healthy
    admin = redis.asyncio.Redis.from_url(own_server.url)
    try:
        assert await admin.script_exists(hashlib.sha1(TAKE.encode()).hexdigest()) == [True]
    finally:
        await admin.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per interval, however many calls failed
    assert "unreachable" in warnings[0].getMessage() and "failing closed" in warnings[0].getMessage()
    assert next(r.getMessage() for r in caplog.records if r.levelno == logging.INFO).startswith(
        f"Redis at {own_server.url} is reachable again"
    )


async def test_a_backend_created_before_redis_starts_connects_when_it_can(
    tmp_path: Path, backends: Callable[..., RedisBackend]
) -> None:
    server = RedisServer(tmp_path / "late")
    server.start()
    server.kill()  # its port is known now, and nothing listens there
    backend = backends(server.url, fail_mode="closed", timeout_ms=200, retry_interval_ms=0)
    try:
        assert not (await _bounded(backend.gcra_allow("k", FROZEN, 1))).allowed
        server.restart()
        assert await backend.gcra_allow("k", FROZEN, 1) == Decision(True, 0.0)
    finally:
        server.stop()


# -- the leased fast path -----------------------------------------------------------------------------


async def test_a_lease_of_one_is_exact(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[[], SharedState],
) -> None:
    limiters = [
        LeasedLimiter(backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS), machines(), 1)
        for _ in range(3)
    ]
    decisions = await asyncio.gather(*(limiter.allow("k", FROZEN, 25) for limiter in limiters * 20))
    assert sum(d.allowed for d in decisions) == 25


async def test_leases_cut_round_trips_and_refusals_stay_local(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[[], SharedState],
    admin: redis.asyncio.Redis,
) -> None:
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    limiter = LeasedLimiter(backend, machines(), 10)
    await backend.gcra_allow("warm-up", FROZEN, 1)  # the scripts are loaded (a NOSCRIPT counts as a call)
    await backend.charge("warm-up", 1, FROZEN)
    before = await _evalsha_calls(admin)
    admitted = [(await limiter.allow("k", FROZEN, 100)).allowed for _ in range(100)]
    assert all(admitted) and await _evalsha_calls(admin) - before == 10

    first = await limiter.allow("k", FROZEN, 100)  # the 11th call finds the bucket empty
    later = [await limiter.allow("k", FROZEN, 100) for _ in range(50)]
    assert not first.allowed and 990 < first.retry_after <= 1000
    assert not any(d.allowed for d in later) and all(d.retry_after <= first.retry_after for d in later)
    assert await _evalsha_calls(admin) - before == 11  # refusals after the first never left the machine

    assert (await limiter.allow("k", FROZEN, 100, cost=0)).allowed  # empty is not overdrawn
    await limiter.charge("k", 5, FROZEN)
    asked = [await limiter.allow("k", FROZEN, 100, cost=0) for _ in range(5)]
    assert not any(d.allowed for d in asked) and 4990 < asked[0].retry_after <= 5000
    assert await _evalsha_calls(admin) - before == 14  # the ask, the charge, the first refused ask


async def test_leases_never_exceed_the_limit_by_more_than_k_per_machine(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[[], SharedState],
    procs: Procs,
) -> None:
    """Machine A: two forked workers on one shared segment; machine B: this process."""
    rate, burst, k, start = 10.0, 10, 5, time.time() + LEAD_S
    deadline = start + 1.0
    machine_a, machine_b = machines(), machines()
    processes, results = _start_clients(
        procs, server, namespace, rate, burst, (start, deadline), tasks=6, machine=machine_a, lease_size=k
    )
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    limiter = LeasedLimiter(backend, machine_b, k)
    ours = await asyncio.gather(
        *(_hammer(lambda: limiter.allow("k", rate, burst), start, deadline) for _ in range(6))
    )
    total = _merge([*ours, _collect(processes, results)])

    exact = burst + rate * (deadline - total.first)
    assert total.admitted <= exact + 1 + k * 2
    assert total.admitted >= exact - 1 - (k - 1) * 2  # at most k - 1 units per machine left unspent
    assert total.fallbacks == 0 and backend.fallbacks == 0


async def test_a_dead_refiller_does_not_stop_leasing(
    server: RedisServer,
    namespace: str,
    backends: Callable[..., RedisBackend],
    machines: Callable[[], SharedState],
    admin: redis.asyncio.Redis,
    procs: Procs,
) -> None:
    machine = machines()
    dead = procs.start(time.sleep, 60)
    procs.sigkill(dead)
    assert dead.pid is not None
    word = machine.table.slot(_LEASE_PREFIX + b"k") + _REFILLER
    machine.table.atomics.store(word, dead.pid)  # a worker killed while fetching a lease

    limiter = LeasedLimiter(backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS), machine, 4)
    before = await _evalsha_calls(admin)
    assert all([(await limiter.allow("k", FROZEN, 10)).allowed for _ in range(8)])
    assert await _evalsha_calls(admin) - before == 2
    assert machine.table.atomics.load(word) == 0


async def test_a_leased_limiter_follows_the_fail_mode_without_remembering_it(
    own_server: RedisServer, backends: Callable[..., RedisBackend], machines: Callable[[], SharedState]
) -> None:
    backend = backends(own_server.url, fail_mode="closed", timeout_ms=200, retry_interval_ms=0)
    limiter = LeasedLimiter(backend, machines(), 5)
    own_server.kill()
    assert await _bounded(limiter.allow("k", FROZEN, 10)) == Decision(False, CLOSED_RETRY_AFTER_S)
    own_server.restart()
    assert await limiter.allow("k", FROZEN, 10) == Decision(True, 0.0)  # not refused locally for 1 s


async def test_a_lease_needs_a_positive_size(
    server: RedisServer, backends: Callable[..., RedisBackend], machines: Callable[[], SharedState]
) -> None:
    with pytest.raises(ValueError, match="lease_size"):
        LeasedLimiter(backends(server.url), machines(), 0)


# -- config -------------------------------------------------------------------------------------------


def test_the_full_section_is_read() -> None:
    raw = {
        "backend": "redis",
        "redis": {
            "url": "redis://:pw@10.0.0.5:6380/2",
            "prefix": "gw:eu",
            "failMode": "closed",
            "timeoutMs": "75",
            "leaseSize": 8,
            "metricsIntervalMs": 250,
        },
    }
    assert from_config(raw) == RedisSettings(
        url="redis://:pw@10.0.0.5:6380/2",
        prefix="gw:eu",
        fail_mode="closed",
        timeout_ms=75,
        lease_size=8,
        metrics_interval_ms=250,
    )
    assert from_config({"backend": "redis", "redis": {"url": "unix:///run/redis.sock"}}) == RedisSettings(
        url="unix:///run/redis.sock"
    )


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        {"backend": "shm"},
        {"backend": "shm", "redis": {"url": "redis://h"}},
        {"backend": "shm", "redis": {"failMode": "closed"}},
        {"tableCapacity": 1},
    ],
)
def test_without_the_redis_backend_there_are_no_settings(raw: object) -> None:
    assert from_config(raw) is None


def test_every_problem_is_reported_with_its_path() -> None:
    raw = {
        "backend": "memcached",
        "redis": {
            "url": "http://user:hunter2@h",
            "prefix": "a b",
            "failMode": "half",
            "timeoutMs": 0,
            "leaseSize": "many",
            "metricsIntervalMs": 10,
        },
    }
    with pytest.raises(ConfigError) as caught:
        from_config(raw)
    assert [p.path for p in caught.value.problems] == [
        "State.backend",
        "State.redis.url",
        "State.redis.prefix",
        "State.redis.failMode",
        "State.redis.timeoutMs",
        "State.redis.leaseSize",
        "State.redis.metricsIntervalMs",
    ]
    assert "expected an integer 100-60000, got 10" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        ({"backend": "redis"}, "State.redis.url", "missing"),
        ({"backend": "redis", "redis": {"url": 6379}}, "State.redis.url", "expected a string"),
        ({"backend": "redis", "redis": {"url": "redis:///0"}}, "State.redis.url", "no host"),
        ({"backend": "redis", "redis": {"url": "unix://"}}, "State.redis.url", "no socket path"),
        ({"backend": "redis", "redis": "redis://h"}, "State.redis", "expected an object"),
        ({"backend": "shm", "redis": {"failMode": "open-ish"}}, "State.redis.failMode", '"open" or "closed"'),
        ([], "State", "expected an object"),
    ],
)
def test_a_bad_value_names_its_key(raw: object, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_config(raw)
    problems = caught.value.problems
    assert [p.path for p in problems] == [path] and reason in problems[0].reason


def test_unknown_redis_keys_are_warnings() -> None:
    warnings: list[Problem] = []
    settings = from_config(
        {"backend": "redis", "redis": {"url": "redis://h", "tiemoutMs": 9}}, warnings=warnings
    )
    assert settings == RedisSettings(url="redis://h")
    assert warnings == [Problem("State.redis.tiemoutMs", "unknown key, ignored")]


async def test_a_backend_is_made_from_settings(server: RedisServer, namespace: str) -> None:
    settings = RedisSettings(url=server.url, prefix=namespace, fail_mode="closed", timeout_ms=PATIENT_MS)
    async with RedisBackend.from_settings(settings) as backend:
        assert backend.fail_mode == "closed"
        assert (await backend.gcra_allow("k", FROZEN, 1)).allowed
        assert not (await backend.gcra_allow("k", FROZEN, 1)).allowed


async def test_take_many_takes_from_every_bucket_or_from_none(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend], admin: redis.asyncio.Redis
) -> None:
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    slow = 1e9  # µs per unit: nothing refills during the test

    def bucket(key: bytes, burst: int, need: int = 1, want: int = 1) -> Bucket:
        return Bucket(key, slow, burst * slow, need, want)

    assert await backend.take_many([]) == Taken(())
    assert await backend.take_many([bucket(b"a", 5, 1, 3), bucket(b"b", 2)]) == Taken((3, 1))
    # "a" and "b" have room, "c" is only asked, "d" needs 2 of a bucket of 1 and "e" 1 of none left:
    # nothing is taken anywhere, and "d", the longest wait, is named
    assert await backend.take_many([bucket(b"e", 1)]) == Taken((1,))
    refused = await backend.take_many(
        [bucket(b"a", 5), bucket(b"b", 2), bucket(b"c", 1, need=0), bucket(b"d", 1, 2, 2), bucket(b"e", 1)]
    )
    assert refused.granted == () and refused.refused == 3 and refused.retry_after == 1000.0
    assert await backend.take_many([bucket(b"a", 5, 2, 9), bucket(b"b", 2)]) == Taken((2, 1))
    assert await admin.exists(f"{namespace}:rl:c") == 0  # asking with need 0 writes nothing
    with pytest.raises(ValueError, match="bad bucket"):
        await backend.take_many([bucket(b"a", 5, need=2, want=1)])


async def test_adjust_books_usage_and_gives_back_reservations_in_one_call(
    server: RedisServer, namespace: str, backends: Callable[..., RedisBackend], admin: redis.asyncio.Redis
) -> None:
    backend = backends(server.url, prefix=namespace, timeout_ms=PATIENT_MS)
    ms = 1000.0  # µs per unit
    assert await backend.take_many([Bucket(b"tpm", ms, 10 * ms, 8, 8)]) == Taken((8,))
    assert await backend.adjust([(b"tpm", ms, -5), (b"budget", ms, 3000), (b"huge", 1e6, 10**9)])
    assert await backend.take_many([Bucket(b"tpm", ms, 10 * ms, 7, 7)]) == Taken((7,))  # 3 + 7 fit again
    assert 2_900 < await admin.pttl(f"{namespace}:rl:budget") <= 3_001
    assert 86_399_000 < await admin.pttl(f"{namespace}:rl:huge") <= 86_400_001  # capped at a day of debt
    assert await backend.adjust([(b"tpm", ms, -1000)])
    assert await admin.exists(f"{namespace}:rl:tpm") == 0  # given back past full: the key is gone
    assert await backend.adjust([])
