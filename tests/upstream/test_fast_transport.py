"""FastTransport against the real mock provider (and a few hand-rolled servers for what the mock cannot do:
compressed bodies, stale keep-alive connections, broken responses, TLS), on asyncio's loop and on uvloop.

New upstream connections are counted by wrapping ``loop.create_connection``, which the pool calls once
per connection it opens; a pooled keep-alive connection is reused without it.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvloop
from tests.upstream.contract import cancelled_reader_stops_the_upstream

from ccr_fast.config.model import Config
from ccr_fast.mock import MockProvider
from ccr_fast.upstream.aiohttp_transport import AiohttpTransport
from ccr_fast.upstream.fast_transport import ENV_UPSTREAM_CLIENT, FastTransport, make_transport
from ccr_fast.upstream.transport import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
)

CHAT = "/v1/chat/completions"
#: bounds the wait for the mock to notice a dropped connection; reached only when the test fails
SETTLE_S = 5.0


# Every test runs on asyncio's loop and on uvloop (production). pytest-asyncio deprecates overriding
# event_loop_policy in favour of a conftest hook; test_the_loop_is_the_parametrized_one notices if the
# override ever stops taking effect.
pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture')


@pytest.fixture(params=["asyncio", "uvloop"], scope="module")
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    return uvloop.EventLoopPolicy() if request.param == "uvloop" else asyncio.DefaultEventLoopPolicy()


async def test_the_loop_is_the_parametrized_one(event_loop_policy: asyncio.AbstractEventLoopPolicy) -> None:
    on_uvloop = isinstance(asyncio.get_running_loop(), uvloop.Loop)
    assert on_uvloop == isinstance(event_loop_policy, uvloop.EventLoopPolicy)


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as provider:
        yield provider


@pytest.fixture
async def transport() -> AsyncIterator[FastTransport]:
    t = FastTransport(pool_size=8, connect_timeout=5.0)
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
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> UpstreamRequest:
    body: dict[str, Any] = {"model": "gpt-test", "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return UpstreamRequest(
        method,
        url,
        {"content-type": "application/json", "authorization": "Bearer k", **(headers or {})},
        orjson.dumps(body) if method == "POST" else b"",
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


async def collect(resp: UpstreamResponse, idle: float | None = None) -> list[bytes]:
    return [chunk async for chunk in resp.iter_chunks(idle)]


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(SETTLE_S):
        while not condition():
            await asyncio.sleep(0.01)


def stream_texts(raw: bytes) -> str:
    return "".join(
        orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in raw.split(b"\n")
        if line.startswith(b"data: {") and b'"choices":[{' in line
    )


# --- plain exchanges ------------------------------------------------------------------------------------


async def test_non_stream_exchange(mock: MockProvider, transport: FastTransport) -> None:
    mock.script([{"text": "pong"}])
    resp = await transport.send(chat(mock.url + CHAT))
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("application/json")
    data = orjson.loads(await resp.read())
    assert data["choices"][0]["message"]["content"] == "pong"
    sent = mock.requests[-1]
    assert sent["headers"]["authorization"] == "Bearer k"
    assert sent["headers"]["host"] == f"127.0.0.1:{mock.port}"
    assert sent["headers"]["accept-encoding"] == "gzip, deflate"
    assert "user-agent" not in sent["headers"]
    assert sent["body"]["messages"][0]["content"] == "hi"


async def test_stream_exchange(mock: MockProvider, transport: FastTransport) -> None:
    mock.script([{"text": "one two three four", "chunks": 4}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    raw = b"".join(await collect(resp))
    resp.close()
    assert raw.rstrip().endswith(b"data: [DONE]")
    assert stream_texts(raw) == "one two three four"


async def test_a_delayed_stream_arrives_chunk_by_chunk(mock: MockProvider, transport: FastTransport) -> None:
    mock.script([{"text": "a b c", "chunks": 3, "chunk_delay_ms": 30}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    chunks = await collect(resp)
    resp.close()
    assert len(chunks) >= 3
    assert stream_texts(b"".join(chunks)) == "a b c"


async def test_error_statuses_are_returned_not_raised(mock: MockProvider, transport: FastTransport) -> None:
    mock.script([{"error": {"status": 429, "message": "slow down", "retry_after": 3}}])
    resp = await transport.send(chat(mock.url + CHAT))
    assert resp.status == 429
    assert resp.headers["retry-after"] == "3"
    assert all(name == name.lower() for name in resp.headers)
    assert b"slow down" in await resp.read()


async def test_get_and_head(mock: MockProvider, transport: FastTransport) -> None:
    got = await transport.send(chat(mock.url + "/health", method="GET"))
    assert (got.status, orjson.loads(await got.read())) == (200, {"status": "ok"})
    head = await transport.send(chat(mock.url + "/health", method="HEAD"))
    assert head.status == 200 and int(head.headers["content-length"]) > 0
    assert await head.read() == b""
    again = await transport.send(chat(mock.url + "/health", method="GET"))
    assert await again.read() == b'{"status":"ok"}', "the HEAD exchange left the connection in step"


async def test_bad_urls_are_upstream_errors(transport: FastTransport) -> None:
    with pytest.raises(UpstreamError, match="scheme"):
        await transport.send(chat("ftp://example.test/x"))
    with pytest.raises(UpstreamError, match="no host"):
        await transport.send(chat("http:///x"))


# --- pooling --------------------------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_keep_alive_connection(
    mock: MockProvider, transport: FastTransport, new_connections: list[Any]
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


async def test_a_fully_received_body_frees_the_connection_before_it_is_read(
    mock: MockProvider, transport: FastTransport, new_connections: list[Any]
) -> None:
    first = await transport.send(chat(mock.url + CHAT, text="first"))
    await until(lambda: transport.idle_connections() == 1)
    second = await transport.send(chat(mock.url + CHAT, text="second"))
    assert b"mock" in await second.read() and b"mock" in await first.read()
    assert len(new_connections) == 1


async def test_concurrent_requests_stay_within_the_pool_size(
    mock: MockProvider, new_connections: list[Any]
) -> None:
    transport = FastTransport(pool_size=3)
    mock.script([{"text": f"reply {i}", "latency_ms": 20} for i in range(12)])

    async def one() -> bytes:
        resp = await transport.send(chat(mock.url + CHAT))
        return await resp.read()

    try:
        bodies = await asyncio.gather(*(one() for _ in range(12)))
    finally:
        await transport.aclose()
    assert len(new_connections) == 3
    contents = sorted(orjson.loads(b)["choices"][0]["message"]["content"] for b in bodies)
    assert contents == sorted(f"reply {i}" for i in range(12))


async def test_waiting_for_a_free_connection_is_bounded_by_the_timeout(mock: MockProvider) -> None:
    transport = FastTransport(pool_size=1)
    mock.script([{"latency_ms": 3000}])
    try:
        busy = asyncio.ensure_future(transport.send(chat(mock.url + CHAT)))
        await until(lambda: mock.stats.get(CHAT, 0) == 1)
        with pytest.raises(UpstreamTimeout, match="no free connection"):
            await transport.send(chat(mock.url + CHAT, timeout=0.1))
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
    finally:
        await transport.aclose()


async def test_each_provider_gets_its_own_pool(
    mock: MockProvider, transport: FastTransport, new_connections: list[Any]
) -> None:
    for provider in ("a", "b", "a", "b"):
        resp = await transport.send(chat(mock.url + CHAT, provider=provider))
        await resp.read()
    assert len(new_connections) == 2


async def test_aclose_closes_the_pools_and_a_later_send_opens_new_ones(
    mock: MockProvider, transport: FastTransport, new_connections: list[Any]
) -> None:
    await (await transport.send(chat(mock.url + CHAT))).read()
    await transport.aclose()
    await (await transport.send(chat(mock.url + CHAT))).read()
    assert len(new_connections) == 2


async def test_idle_connections_expire(mock: MockProvider, new_connections: list[Any]) -> None:
    transport = FastTransport(keepalive=0.05)
    try:
        await (await transport.send(chat(mock.url + CHAT))).read()
        await until(lambda: transport.idle_connections() == 0)
        await (await transport.send(chat(mock.url + CHAT))).read()
    finally:
        await transport.aclose()
    assert len(new_connections) == 2


# --- stale keep-alive connections -----------------------------------------------------------------------


async def test_a_server_restart_between_requests_is_survived(
    mock: MockProvider, transport: FastTransport, new_connections: list[Any]
) -> None:
    await (await transport.send(chat(mock.url + "/health", method="GET"))).read()
    await mock.stop()
    await mock.start()  # same port
    resp = await transport.send(chat(mock.url + "/health", method="GET"))
    assert resp.status == 200 and await resp.read() == b'{"status":"ok"}'
    assert len(new_connections) == 2


async def test_a_connection_the_server_closed_while_idle_is_not_reused_for_a_post(
    mock: MockProvider, transport: FastTransport, new_connections: list[Any]
) -> None:
    await (await transport.send(chat(mock.url + CHAT))).read()
    await mock.stop()
    await until(lambda: transport.idle_connections() == 0)
    await mock.start()
    resp = await transport.send(chat(mock.url + CHAT))
    assert resp.status == 200
    await resp.read()
    assert len(new_connections) == 2
    assert mock.stats[CHAT] == 2, "one request before the restart, one after, no resend"


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class RawServer:
    """A loopback HTTP/1.1 server whose replies come from ``answer(connection_no, request_no, head)``:
    bytes to write, or None to close the connection without answering. A reply in HTTP/1.0 or with
    ``connection: close`` is followed by closing the connection. Counts connections and requests."""

    def __init__(self, answer: Callable[[int, int, bytes], bytes | None]) -> None:
        self._answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        try:
            for n in range(1000):
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                self.requests.append(head.split(b" ", 1)[0])
                reply = self._answer(number, n, head)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if reply.startswith(b"HTTP/1.0") or b"connection: close" in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def closes_the_second_request_on_the_first_connection(
    connection: int, request: int, head: bytes
) -> bytes | None:
    """The keep-alive race: the server gives up on the connection just as the next request arrives."""
    return None if (connection, request) == (0, 1) else OK


@pytest.mark.parametrize(
    ("method", "headers"),
    [("GET", {}), ("PUT", {}), ("DELETE", {}), ("POST", {"Idempotency-Key": "abc"})],
)
async def test_a_request_safe_to_resend_is_resent_once_on_a_fresh_connection(
    transport: FastTransport, method: str, headers: dict[str, str]
) -> None:
    async with RawServer(closes_the_second_request_on_the_first_connection) as server:
        for _ in range(2):
            resp = await transport.send(chat(server.url + "/x", method=method, headers=headers))
            assert (resp.status, await resp.read()) == (200, b"ok")
    assert server.connections == 2
    assert len(server.requests) == 3


async def test_a_post_is_not_resent(transport: FastTransport) -> None:
    async with RawServer(closes_the_second_request_on_the_first_connection) as server:
        await (await transport.send(chat(server.url + CHAT))).read()
        with pytest.raises(UpstreamError, match="closed the connection before answering"):
            await transport.send(chat(server.url + CHAT))
        assert server.requests == [b"POST", b"POST"]
        resp = await transport.send(chat(server.url + CHAT))
        assert await resp.read() == b"ok", "the next request gets a fresh connection"


async def test_a_new_connection_failing_is_not_resent(transport: FastTransport) -> None:
    async with RawServer(lambda c, r, h: None) as server:
        with pytest.raises(UpstreamError, match="before answering"):
            await transport.send(chat(server.url + "/x", method="GET"))
    assert server.requests == [b"GET"]


async def test_a_response_cut_after_its_first_byte_is_not_resent(transport: FastTransport) -> None:
    def answer(connection: int, request: int, head: bytes) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 10\r\n\r\nabc" if request else OK

    async with RawServer(answer) as server:
        await (await transport.send(chat(server.url + "/x", method="GET"))).read()
        resp = await transport.send(chat(server.url + "/x", method="GET"))
        with pytest.raises(UpstreamError, match="while reading"):
            await resp.read()
    assert len(server.requests) == 2


# --- responses the mock does not send -------------------------------------------------------------------

BODY = b'{"choices": [{"message": {"content": "' + b"compressed " * 100 + b'"}}]}'


def raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(wbits=-15)
    return z.compress(data) + z.flush()


@pytest.mark.parametrize(
    ("coding", "payload"),
    [
        ("gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", raw_deflate(BODY)),
    ],
)
async def test_compressed_bodies_are_decoded(transport: FastTransport, coding: str, payload: bytes) -> None:
    whole = b"HTTP/1.1 200 OK\r\ncontent-encoding: %b\r\ncontent-length: %d\r\n\r\n%b" % (
        coding.encode(),
        len(payload),
        payload,
    )
    chunked = (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: %b\r\ntransfer-encoding: chunked\r\n\r\n" % coding.encode()
    )
    chunked += b"".join(
        b"%x\r\n%b\r\n" % (len(payload[i : i + 7]), payload[i : i + 7]) for i in range(0, len(payload), 7)
    )
    chunked += b"0\r\n\r\n"
    async with RawServer(lambda c, r, h: whole if r == 0 else chunked) as server:
        resp = await transport.send(chat(server.url + CHAT))
        assert resp.headers["content-encoding"] == coding
        assert await resp.read() == BODY
        resp = await transport.send(chat(server.url + CHAT, stream=True))
        assert b"".join(await collect(resp)) == BODY
        resp.close()
    assert server.connections == 1


async def test_a_corrupt_compressed_body_is_an_upstream_error(transport: FastTransport) -> None:
    reply = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 9\r\n\r\nnot gzip!"
    async with RawServer(lambda c, r, h: reply) as server:
        resp = await transport.send(chat(server.url + CHAT))
        with pytest.raises(UpstreamError, match="cannot decode"):
            await resp.read()


async def test_a_body_read_until_close(transport: FastTransport) -> None:
    async with RawServer(lambda c, r, h: b"HTTP/1.0 200 OK\r\n\r\nuntil the end") as server:
        resp = await transport.send(chat(server.url + CHAT))
        assert await resp.read() == b"until the end"
        resp = await transport.send(chat(server.url + CHAT))
        assert await resp.read() == b"until the end"
    assert server.connections == 2


async def test_connection_close_is_honoured(transport: FastTransport) -> None:
    reply = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
    async with RawServer(lambda c, r, h: reply) as server:
        for _ in range(2):
            assert await (await transport.send(chat(server.url + CHAT))).read() == b"ok"
    assert server.connections == 2


async def test_interim_responses_are_skipped(transport: FastTransport) -> None:
    async with RawServer(lambda c, r, h: b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as server:
        resp = await transport.send(chat(server.url + CHAT))
        assert (resp.status, await resp.read()) == (200, b"ok")


async def test_garbage_from_the_server_is_an_upstream_error(transport: FastTransport) -> None:
    async with RawServer(lambda c, r, h: b"SSH-2.0-OpenSSH_9.6\r\n") as server:
        with pytest.raises(UpstreamError, match="malformed upstream response") as caught:
            await transport.send(chat(server.url + CHAT))
    assert not isinstance(caught.value, UpstreamTimeout)


# --- failures -------------------------------------------------------------------------------------------


async def test_no_answer_within_the_timeout_is_upstream_timeout(
    mock: MockProvider, transport: FastTransport
) -> None:
    mock.script([{"latency_ms": 5000}])
    with pytest.raises(UpstreamTimeout, match=r"did not answer within 0\.2s"):
        await transport.send(chat(mock.url + CHAT, timeout=0.2))
    await until(lambda: mock.stats.get("client_aborts", 0) == 1)


async def test_a_non_stream_timeout_covers_the_whole_exchange(transport: FastTransport) -> None:
    async def slow_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nstart")
            for _ in range(50):  # a byte now and then: never silent for long, never finished in time
                await asyncio.sleep(0.05)
                if writer.is_closing() or reader.at_eof():
                    break
                writer.write(b".")
        finally:
            writer.close()

    server = await asyncio.start_server(slow_body, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        resp = await transport.send(chat(f"http://127.0.0.1:{port}/x", timeout=0.3))
        with pytest.raises(UpstreamTimeout, match="while sending the response"):
            await resp.read()
    finally:
        server.close()


async def test_a_silent_stream_raises_upstream_timeout(mock: MockProvider, transport: FastTransport) -> None:
    mock.script([{"text": "a b c", "chunks": 3, "chunk_delay_ms": 5000}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True, timeout=0.2))
    assert resp.status == 200
    chunks: list[bytes] = []
    with pytest.raises(UpstreamTimeout, match="went silent"):
        async for chunk in resp.iter_chunks():
            chunks.append(chunk)
    resp.close()
    assert chunks, "the first content chunk arrives before the stream goes quiet"
    await until(lambda: mock.stats.get("client_aborts", 0) == 1)


async def test_a_stream_slower_than_the_timeout_in_total_but_never_silent_succeeds(
    mock: MockProvider, transport: FastTransport
) -> None:
    mock.script([{"text": "a b c d e f", "chunks": 6, "chunk_delay_ms": 60}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True, timeout=0.25))
    raw = b"".join(await collect(resp))
    resp.close()
    assert stream_texts(raw) == "a b c d e f"


async def test_idle_yields_empty_keep_alive_chunks_and_loses_no_data(
    mock: MockProvider, transport: FastTransport
) -> None:
    mock.script([{"text": "a b", "chunks": 2, "chunk_delay_ms": 400}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True, timeout=10))
    chunks = await collect(resp, idle=0.02)
    resp.close()
    assert chunks.count(b"") >= 5
    raw = b"".join(chunks)
    assert raw.rstrip().endswith(b"data: [DONE]")
    assert b'"delta":{"content":"a ' in raw and b'"delta":{"content":"b"}' in raw


async def test_idle_ticks_do_not_stop_the_silence_timeout(
    mock: MockProvider, transport: FastTransport
) -> None:
    mock.script([{"text": "a b", "chunks": 2, "chunk_delay_ms": 5000}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True, timeout=0.3))
    ticks = 0
    with pytest.raises(UpstreamTimeout, match="went silent"):
        async for chunk in resp.iter_chunks(0.05):
            ticks += chunk == b""
    resp.close()
    assert ticks >= 2


async def test_connection_refused_is_upstream_connect_error(transport: FastTransport) -> None:
    port = dead_port()
    with pytest.raises(UpstreamConnectError, match=f"127.0.0.1:{port}"):
        await transport.send(chat(f"http://127.0.0.1:{port}{CHAT}"))


async def test_a_stream_cut_mid_way_raises_upstream_error(
    mock: MockProvider, transport: FastTransport
) -> None:
    mock.script([{"text": "a b c d", "chunks": 4, "fail_after_chunks": 2}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    with pytest.raises(UpstreamError, match="stream broke") as caught:
        await collect(resp)
    resp.close()
    assert not isinstance(caught.value, UpstreamTimeout)


async def test_a_body_cut_mid_way_raises_upstream_error_on_read(
    mock: MockProvider, transport: FastTransport
) -> None:
    mock.script([{"text": "a b c d", "chunks": 4, "fail_after_chunks": 1}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    with pytest.raises(UpstreamError, match="while reading"):
        await resp.read()


# --- closing early --------------------------------------------------------------------------------------


async def test_close_before_the_body_is_read_drops_the_connection(
    mock: MockProvider, transport: FastTransport, new_connections: list[Any]
) -> None:
    mock.script([{"text": "a b c d e", "chunks": 5, "chunk_delay_ms": 5000}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    assert resp.status == 200
    resp.close()
    await until(lambda: mock.stats.get("client_aborts", 0) == 1)
    await (await transport.send(chat(mock.url + CHAT))).read()
    assert len(new_connections) == 2, "the dropped connection must not go back to the pool"


async def test_close_mid_stream_aborts_the_upstream(mock: MockProvider, transport: FastTransport) -> None:
    mock.script([{"text": "a b c d e f", "chunks": 6, "chunk_delay_ms": 50}])
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    async for chunk in resp.iter_chunks():
        if chunk:
            break
    resp.close()
    await until(lambda: mock.stats.get("client_aborts", 0) == 1)
    with pytest.raises(UpstreamError):
        await collect(resp)


async def test_cancelling_send_aborts_the_upstream(mock: MockProvider, transport: FastTransport) -> None:
    mock.script([{"latency_ms": 5000}])
    task = asyncio.ensure_future(transport.send(chat(mock.url + CHAT)))
    await until(lambda: mock.stats.get(CHAT, 0) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: mock.stats.get("client_aborts", 0) == 1)


async def test_close_after_the_body_is_read_keeps_the_connection(
    mock: MockProvider, transport: FastTransport, new_connections: list[Any]
) -> None:
    resp = await transport.send(chat(mock.url + CHAT, stream=True))
    await collect(resp)
    resp.close()
    resp.close()
    await (await transport.send(chat(mock.url + CHAT))).read()
    assert len(new_connections) == 1
    assert mock.stats.get("client_aborts", 0) == 0


async def test_a_slow_reader_pauses_the_socket_and_loses_nothing(transport: FastTransport) -> None:
    big = bytes(range(256)) * 16384  # 4 MiB, beyond the read-ahead limit
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(big), big)
    async with RawServer(lambda c, r, h: reply) as server:
        resp = await transport.send(chat(server.url + CHAT, stream=True))
        received = bytearray()
        async for chunk in resp.iter_chunks():
            received += chunk
            await asyncio.sleep(0.001)
        resp.close()
    assert received == big


# --- proxy ----------------------------------------------------------------------------------------------


async def test_the_proxy_is_bypassed_for_loopback_upstreams(
    mock: MockProvider, transport: FastTransport
) -> None:
    dead_proxy = f"http://127.0.0.1:{dead_port()}"
    resp = await transport.send(chat(mock.url + CHAT, proxy=dead_proxy))
    assert resp.status == 200
    await resp.read()


async def test_the_proxy_is_used_for_other_upstreams(transport: FastTransport) -> None:
    port = dead_port()
    with pytest.raises(UpstreamConnectError, match=str(port)):
        await transport.send(chat("http://upstream.example.test" + CHAT, proxy=f"http://127.0.0.1:{port}"))


# --- TLS ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for localhost and 127.0.0.1 (made with the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not available to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield cert, key


@pytest.fixture
async def tls_mock(mock: MockProvider, certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    """An HTTPS front for the mock: TLS terminated here, bytes relayed to the mock as they are."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*certificate)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(mock.host, mock.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=server_ctx)
    try:
        yield f"https://localhost:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_https_upstream(mock: MockProvider, tls_mock: str, certificate: tuple[Path, Path]) -> None:
    transport = FastTransport(ssl_context=ssl.create_default_context(cafile=str(certificate[0])))
    mock.script([{"text": "secure"}, {"text": "x y", "chunks": 2}])
    try:
        resp = await transport.send(chat(tls_mock + CHAT))
        assert orjson.loads(await resp.read())["choices"][0]["message"]["content"] == "secure"
        resp = await transport.send(chat(tls_mock + CHAT, stream=True))
        assert stream_texts(b"".join(await collect(resp))) == "x y"
        resp.close()
    finally:
        await transport.aclose()
    assert mock.requests[0]["headers"]["host"].startswith("localhost:")


async def test_an_untrusted_certificate_is_a_connect_error(tls_mock: str) -> None:
    transport = FastTransport(ssl_context=ssl.create_default_context())
    try:
        with pytest.raises(UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await transport.send(chat(tls_mock + CHAT))
    finally:
        await transport.aclose()


# --- choosing the client --------------------------------------------------------------------------------


def test_make_transport_picks_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_UPSTREAM_CLIENT, raising=False)
    assert isinstance(make_transport(Config()), FastTransport)
    assert isinstance(make_transport(Config(proxy_url="http://proxy.test:3128")), AiohttpTransport)
    monkeypatch.setenv(ENV_UPSTREAM_CLIENT, "aiohttp")
    assert isinstance(make_transport(Config()), AiohttpTransport)
    monkeypatch.setenv(ENV_UPSTREAM_CLIENT, "fast")
    assert isinstance(make_transport(Config()), FastTransport)


async def test_a_cancelled_reader_stops_the_upstream_without_close(
    mock: MockProvider, transport: FastTransport
) -> None:
    await cancelled_reader_stops_the_upstream(mock, transport, chat(mock.url + CHAT, stream=True))
