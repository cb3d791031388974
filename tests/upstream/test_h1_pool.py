"""The per-origin connection pool: limit, hand-over to waiters, fresh connections, closing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ccr_fast.mock import MockProvider
from ccr_fast.upstream.h1_pool import HostPool
from ccr_fast.upstream.transport import UpstreamError, UpstreamTimeout

GET_HEALTH = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as provider:
        yield provider


@pytest.fixture
async def pool(mock: MockProvider) -> AsyncIterator[HostPool]:
    p = HostPool(
        asyncio.get_running_loop(), "127.0.0.1", mock.port, None, limit=1, keepalive=60, connect_timeout=5
    )
    try:
        yield p
    finally:
        p.close()


async def health(pool: HostPool, *, fresh: bool = False) -> bytes:
    conn = await pool.acquire(5, fresh=fresh)
    resp = conn.send(GET_HEALTH, b"", timeout=5, stream=False, head_request=False)
    await resp.wait_head()
    return await resp.read()


def test_the_host_header_leaves_out_the_default_port() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert HostPool(loop, "a.test", 80, None, limit=1, keepalive=1, connect_timeout=1).host_line == (
            "host: a.test\r\n"
        )
        assert HostPool(loop, "::1", 8080, None, limit=1, keepalive=1, connect_timeout=1).host_line == (
            "host: [::1]:8080\r\n"
        )
    finally:
        loop.close()


async def test_a_released_connection_is_handed_to_the_next_waiter(pool: HostPool, mock: MockProvider) -> None:
    assert await asyncio.gather(*(health(pool) for _ in range(5))) == [b'{"status":"ok"}'] * 5
    assert pool.idle_count == 1


async def test_a_fresh_connection_at_the_limit_replaces_the_idle_one(pool: HostPool) -> None:
    await health(pool)
    idle = await pool.acquire(5)
    pool.release(idle)
    assert await health(pool, fresh=True) == b'{"status":"ok"}'
    assert idle.closed
    assert pool.idle_count == 1


async def test_waiting_beyond_the_timeout_is_upstream_timeout(pool: HostPool) -> None:
    busy = await pool.acquire(5)
    with pytest.raises(UpstreamTimeout, match="no free connection"):
        await pool.acquire(0.05)
    busy.abort()
    assert await health(pool) == b'{"status":"ok"}', "the aborted connection freed its slot"


async def test_close_fails_busy_exchanges_and_waiters(pool: HostPool, mock: MockProvider) -> None:
    mock.script([{"latency_ms": 5000}])
    conn = await pool.acquire(5)
    head = b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 2\r\n\r\n"
    resp = conn.send(head, b"{}", timeout=5, stream=False, head_request=False)
    waiter = asyncio.ensure_future(pool.acquire(5))
    await asyncio.sleep(0)
    pool.close()
    with pytest.raises(UpstreamError, match="pool was closed"):
        await waiter
    with pytest.raises(UpstreamError, match="pool was closed"):
        await resp.wait_head()
