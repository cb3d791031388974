"""Behaviour every upstream transport must show, written once and run against each of them."""

from __future__ import annotations

import asyncio
import contextlib

from ccr_fast.mock import MockProvider
from ccr_fast.upstream.transport import Transport, UpstreamRequest


async def cancelled_reader_stops_the_upstream(
    mock: MockProvider, transport: Transport, request: UpstreamRequest
) -> None:
    """A task cancelled while it waits for the next chunk (the client went away) drops the upstream
    connection even though nobody calls close(): the upstream must stop generating."""
    mock.script([{"text": "late", "ttft_ms": 5000}])
    resp = await transport.send(request)
    chunks = resp.iter_chunks(None)

    async def read_all() -> None:
        async for _ in chunks:  # the head and any early chunk arrive; then it waits for the late text
            pass

    reader = asyncio.ensure_future(read_all())
    await asyncio.sleep(0.1)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    for _ in range(100):
        if mock.stats.get("client_aborts", 0):
            break
        await asyncio.sleep(0.02)
    assert mock.stats.get("client_aborts", 0) == 1, mock.stats
