"""The aiohttp transport against the real mock provider, started in each test's own event loop.

New upstream connections are counted by wrapping ``loop.create_connection``, which aiohttp's connector
calls once per connection it opens; a pooled keep-alive connection is reused without it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from tests.upstream.contract import cancelled_reader_stops_the_upstream

from ccr_fast.mock import MockProvider
from ccr_fast.upstream.aiohttp_transport import AiohttpResponse, AiohttpTransport
from ccr_fast.upstream.transport import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamTimeout,
)

CHAT = "/v1/chat/completions"
#: bounds the wait for the mock to notice a dropped connection; reached only when the test fails
SETTLE_S = 5.0


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as provider:
        yield provider


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport(pool_size=8, connect_timeout=5.0)
    try:
        yield t
    finally:
        await t.aclose()


@pytest.fixture
async def new_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every outgoing connection the event loop opens from now on."""
    loop = asyncio.get_running_loop()
    opened: list[Any] = []
    original: Callable[..., Any] = loop.create_connection

    async def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append((args, kwargs))
        return await original(*args, **kwargs)

    monkeypatch.setattr(loop, "create_connection", counting)
    return opened


def chat(
    url: str,
    *,
    stream: bool = False,
    timeout: float = 10.0,
    provider: str = "p",
    proxy: str | None = None,
    text: str = "hi",
) -> UpstreamRequest:
    body: dict[str, Any] = {"model": "gpt-test", "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return UpstreamRequest(
        "POST",
        url,
        {"content-type": "application/json", "authorization": "Bearer k"},
        orjson.dumps(body),
        timeout=timeout,
        stream=stream,
        provider=provider,
        proxy=proxy,
    )


def dead_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def collect(resp: AiohttpResponse, idle: float | None = None) -> list[bytes]:
    return [chunk async for chunk in resp.iter_chunks(idle)]


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(SETTLE_S):
        while not condition():
            await asyncio.sleep(0.01)


# --- plain exchanges ------------------------------------------------------------------------------------


async def test_non_stream_exchange(mock: MockProvider, transport: AiohttpTransport) -> None:
    mock.script([{"text": "pong"}])
    resp = await transport.send(chat(mock.url + CHAT))
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("application/json")
    data = orjson.loads(await resp.read())
    assert data["choices"][0]["message"]["content"] == "pong"
    sent = mock.requests[-1]
    assert sent["headers"]["authorization"] == "Bearer k"
    assert "user-agent" not in {k.lower() for k in sent["headers"]}
    assert sent["body"]["messages"][0]["content"] == "hi"


async def test_stream_exchange(mock: MockProvider, transport: AiohttpTransport) -> None:
    mock.script([{"text": "one two three four", "chunks": 4}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    raw = b"".join(await collect(resp))
    resp.close()
    assert raw.rstrip().endswith(b"data: [DONE]")
    texts = [
        orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in raw.split(b"\n")
        if line.startswith(b"data: {") and b'"choices":[{' in line
    ]
    assert "".join(texts) == "one two three four"


async def test_error_statuses_are_returned_not_raised(
    mock: MockProvider, transport: AiohttpTransport
) -> None:
    mock.script([{"error": {"status": 429, "message": "slow down", "retry_after": 3}}])
    resp = await transport.send(chat(mock.url + CHAT))
    assert resp.status == 429
    assert resp.headers["retry-after"] == "3"
    assert all(name == name.lower() for name in resp.headers)
    assert b"slow down" in await resp.read()


# --- pooling --------------------------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_keep_alive_connection(
    mock: MockProvider, transport: AiohttpTransport, new_connections: list[Any]
) -> None:
    for i in range(12):
        resp = await transport.send(chat(mock.url + CHAT, stream=i % 2 == 1))
        if i % 2:
            await collect(resp)
            resp.close()
        else:
            await resp.read()
    assert len(new_connections) == 1
    assert mock.stats[CHAT] == 12
    assert mock.stats.get("client_aborts", 0) == 0


async def test_each_provider_gets_its_own_pool(
    mock: MockProvider, transport: AiohttpTransport, new_connections: list[Any]
) -> None:
    for provider in ("a", "b", "a", "b"):
        resp = await transport.send(chat(mock.url + CHAT, provider=provider))
        await resp.read()
    assert len(new_connections) == 2


async def test_aclose_closes_the_pools_and_a_later_send_opens_new_ones(
    mock: MockProvider, transport: AiohttpTransport, new_connections: list[Any]
) -> None:
    await (await transport.send(chat(mock.url + CHAT))).read()
    await transport.aclose()
    await (await transport.send(chat(mock.url + CHAT))).read()
    assert len(new_connections) == 2


# --- failures -------------------------------------------------------------------------------------------


async def test_no_answer_within_the_timeout_is_upstream_timeout(
    mock: MockProvider, transport: AiohttpTransport
) -> None:
    mock.script([{"latency_ms": 5000}])
    with pytest.raises(UpstreamTimeout, match=r"did not answer within 0\.2s"):
        await transport.send(chat(mock.url + CHAT, timeout=0.2))


async def test_a_silent_stream_raises_upstream_timeout(
    mock: MockProvider, transport: AiohttpTransport
) -> None:
    mock.script([{"text": "a b c", "chunks": 3, "chunk_delay_ms": 5000}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True, timeout=0.2))
    assert resp.status == 200
    chunks: list[bytes] = []
    with pytest.raises(UpstreamTimeout, match="went silent"):
        async for chunk in resp.iter_chunks():
            chunks.append(chunk)
    resp.close()
    assert chunks, "the first content chunk arrives before the stream goes quiet"


async def test_idle_yields_empty_keep_alive_chunks_and_loses_no_data(
    mock: MockProvider, transport: AiohttpTransport
) -> None:
    mock.script([{"text": "a b", "chunks": 2, "chunk_delay_ms": 400}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True, timeout=10))
    chunks = await collect(resp, idle=0.02)
    resp.close()
    assert b"" in chunks
    raw = b"".join(chunks)
    assert raw.rstrip().endswith(b"data: [DONE]")
    assert b'"delta":{"content":"a ' in raw and b'"delta":{"content":"b"}' in raw


async def test_connection_refused_is_upstream_connect_error(transport: AiohttpTransport) -> None:
    port = dead_port()
    with pytest.raises(UpstreamConnectError, match=f"127.0.0.1:{port}"):
        await transport.send(chat(f"http://127.0.0.1:{port}{CHAT}"))


async def test_a_stream_cut_mid_way_raises_upstream_error(
    mock: MockProvider, transport: AiohttpTransport
) -> None:
    mock.script([{"text": "a b c d", "chunks": 4, "fail_after_chunks": 2}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    with pytest.raises(UpstreamError) as caught:
        await collect(resp)
    resp.close()
    assert not isinstance(caught.value, UpstreamTimeout)


async def test_a_body_cut_mid_way_raises_upstream_error_on_read(
    mock: MockProvider, transport: AiohttpTransport
) -> None:
    mock.script([{"text": "a b c d", "chunks": 4, "fail_after_chunks": 1}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    with pytest.raises(UpstreamError, match="while reading"):
        await resp.read()


# --- closing early --------------------------------------------------------------------------------------


async def test_close_before_the_body_is_read_drops_the_connection(
    mock: MockProvider, transport: AiohttpTransport, new_connections: list[Any]
) -> None:
    mock.script([{"text": "a b c d e", "chunks": 5, "chunk_delay_ms": 5000}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    assert resp.status == 200
    resp.close()
    await until(lambda: mock.stats.get("client_aborts", 0) == 1)
    await (await transport.send(chat(mock.url + CHAT))).read()
    assert len(new_connections) == 2, "the dropped connection must not go back to the pool"


async def test_close_after_the_body_is_read_keeps_the_connection(
    mock: MockProvider, transport: AiohttpTransport, new_connections: list[Any]
) -> None:
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    await collect(resp)
    resp.close()
    resp.close()
    await (await transport.send(chat(mock.url + CHAT))).read()
    assert len(new_connections) == 1
    assert mock.stats.get("client_aborts", 0) == 0


# --- proxy ----------------------------------------------------------------------------------------------


async def test_the_proxy_is_bypassed_for_loopback_upstreams(
    mock: MockProvider, transport: AiohttpTransport
) -> None:
    dead_proxy = f"http://127.0.0.1:{dead_port()}"
    resp = await transport.send(chat(mock.url + CHAT, proxy=dead_proxy))
    assert resp.status == 200
    await resp.read()


async def test_the_proxy_is_used_for_other_upstreams(transport: AiohttpTransport) -> None:
    port = dead_port()
    with pytest.raises(UpstreamConnectError, match=str(port)):
        await transport.send(chat("http://upstream.example.test" + CHAT, proxy=f"http://127.0.0.1:{port}"))


async def test_a_cancelled_reader_stops_the_upstream_without_close(
    mock: MockProvider, transport: AiohttpTransport
) -> None:
    await cancelled_reader_stops_the_upstream(mock, transport, chat(mock.url + CHAT, stream=True))
