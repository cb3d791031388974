"""Fixtures for tests against a real ``redis-server`` (``tests/redis_server.py`` starts it).

A module shares one server (``server``); tests that kill, freeze or restart Redis take ``own_server``.
Each test writes under a key prefix of its own (``namespace``), so tests sharing a server never see each
other's keys.  ``machines()`` makes one machine's shared memory (a private segment), ``backends(...)`` a
backend with its own connection pool, as a separate machine would have; all are closed after the test.
Test modules import the fixtures they use from here.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from ccr_fast.state.redis_backend import RedisBackend
from ccr_fast.state.shared import SharedState
from tests.redis_server import NOT_INSTALLED, REDIS_SERVER, RedisServer

__all__ = [
    "PATIENT_MS",
    "admin",
    "backends",
    "evalsha_calls",
    "machines",
    "namespace",
    "needs_redis",
    "own_server",
    "server",
]

needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason=NOT_INSTALLED)
#: generous, so a busy test machine never turns a slow answer into a fail-mode answer
PATIENT_MS = 5_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, to kill, freeze and restart."""
    with RedisServer(tmp_path / "redis") as running:
        yield running


@pytest.fixture
def namespace() -> str:
    return f"t-{secrets.token_hex(4)}"


@pytest.fixture
async def admin(server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def backends() -> AsyncIterator[Callable[..., RedisBackend]]:
    """``backends(url, **options)`` makes a backend (its own connection pool); all are closed after."""
    made: list[RedisBackend] = []

    def make(url: str, **options: Any) -> RedisBackend:
        options.setdefault("timeout_ms", PATIENT_MS)
        made.append(RedisBackend(url, **options))
        return made[-1]

    yield make
    for backend in made:
        await backend.aclose()


@pytest.fixture
def machines() -> Iterator[Callable[..., SharedState]]:
    """``machines()`` makes one machine's shared memory (a private segment); all are removed after."""
    made: list[SharedState] = []

    def make(table_capacity: int = 256) -> SharedState:
        made.append(SharedState.local(table_capacity=table_capacity))
        return made[-1]

    yield make
    for state in made:
        state.close()


async def evalsha_calls(client: redis.asyncio.Redis) -> int:
    """Scripts Redis has run so far (every limit check and settlement is one)."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
