"""The HTTP/1.1 layer (request framing, keep-alive, pipelining, bad input) and the control API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import openai
import orjson
import pytest

from ccr_fast.mock import MockProvider, run_in_thread
from ccr_fast.mock.server import MAX_HEAD, BadRequest, Request, RequestReader

CHAT = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "host: x", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response off a keep-alive connection: Content-Length or chunked body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, headers, body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    return status, headers, await reader.readexactly(int(headers.get("content-length", "0")))


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as provider:
        yield provider


@pytest.fixture
async def conn(mock: MockProvider) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
    yield reader, writer
    writer.close()


# --- RequestReader, without sockets ----------------------------------------------------------------------


def read_all(data: bytes, step: int) -> list[Request | BadRequest]:
    """Feed ``data`` ``step`` bytes at a time; collect requests (or the BadRequest that ends the stream)."""
    reader, buf = RequestReader(), bytearray()
    out: list[Request | BadRequest] = []
    for start in range(0, len(data), step):
        buf += data[start : start + step]
        try:
            while (request := reader.next_request(buf)) is not None:
                out.append(request)
        except BadRequest as exc:
            out.append(exc)
            break
    return out


def read_requests(data: bytes, step: int) -> list[Request]:
    out = read_all(data, step)
    assert all(isinstance(item, Request) for item in out)
    return [item for item in out if isinstance(item, Request)]


@pytest.mark.parametrize("step", [1, 2, 7, 10_000])
def test_reader_pipelined_requests_any_split(step: int) -> None:
    chunked = (
        b"POST /v1/messages?beta=true HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n"
    )
    data = post("/a", b"first") + b"GET /health HTTP/1.1\r\nHost: y\r\n\r\n" + chunked
    requests = read_requests(data, step)
    assert [(r.method, r.path, r.query, r.body) for r in requests] == [
        ("POST", "/a", "", b"first"),
        ("GET", "/health", "", b""),
        ("POST", "/v1/messages", "beta=true", b"hello world"),
    ]


def test_reader_headers_and_connection_semantics() -> None:
    data = b"GET /%3Ax HTTP/1.0\r\nX-Dup: a\r\nx-dup: b\r\nConnection: Keep-Alive\r\n\r\n"
    (request,) = read_requests(data, 1000)
    assert request.path == "/:x"
    assert request.headers == {"x-dup": "a, b", "connection": "Keep-Alive"}
    assert request.keep_alive and request.http10
    (closing,) = read_requests(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1000)
    assert not closing.keep_alive


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00", 400),
        (b"get / HTTP/1.1\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET example.com HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", 413),
        (b"GET /" + b"a" * (MAX_HEAD + 10), 431),
    ],
)
def test_reader_rejects_garbage(data: bytes, status: int) -> None:
    (result,) = read_all(data, 4096)
    assert isinstance(result, BadRequest)
    assert result.status == status


# --- the connection ------------------------------------------------------------------------------------


async def test_keep_alive_many_sequential_requests(
    mock: MockProvider, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    reader, writer = conn
    for _ in range(200):
        writer.write(post("/v1/chat/completions", CHAT))
        status, _, body = await read_response(reader)
        assert status == 200
        assert orjson.loads(body)["object"] == "chat.completion"
    assert mock.stats == {"/v1/chat/completions": 200}


async def test_pipelined_requests_answer_in_order_behind_a_slow_stream(
    mock: MockProvider, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    mock.script([{"text": "slow one", "chunks": 2, "chunk_delay_ms": 20}, {"text": "fast one"}])
    stream = b'{"model":"m","stream":true,"messages":[]}'
    reader, writer = conn
    writer.write(
        post("/v1/chat/completions", stream) + post("/v1/chat/completions", CHAT) + post("/health", b"")
    )
    first = await read_response(reader)
    second = await read_response(reader)
    third = await read_response(reader)
    assert first[1]["content-type"] == "text/event-stream"
    assert b'"content":"slow "' in first[2] and first[2].endswith(b"data: [DONE]\n\n")
    assert orjson.loads(second[2])["choices"][0]["message"]["content"] == "fast one"
    assert third[0] == 405


async def test_half_closed_client_still_gets_delayed_answers(mock: MockProvider) -> None:
    mock.script([{"text": "late", "latency_ms": 30}])
    reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
    writer.write(post("/v1/chat/completions", CHAT) + post("/v1/messages", CHAT))
    writer.write_eof()
    raw = await reader.read()
    writer.close()
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert b'"content":"late"' in raw and raw.endswith(b"}")


async def test_garbage_gets_400_and_server_keeps_serving(mock: MockProvider) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
    writer.write(b"\x16\x03\x01 this is not http\r\n\r\n")
    raw = await reader.read()
    writer.close()
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in raw
    reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
    writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    status, _, body = await read_response(reader)
    writer.close()
    assert (status, orjson.loads(body)) == (200, {"status": "ok"})


async def test_chunked_request_body_over_the_wire(
    mock: MockProvider, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    reader, writer = conn
    body = CHAT
    pieces = [body[:5], body[5:17], body[17:]]
    framed = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    head = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
    for part in (head + framed[:3], framed[3:20], framed[20:]):
        writer.write(part)
        await writer.drain()
    status, _, answer = await read_response(reader)
    assert status == 200
    assert orjson.loads(answer)["type"] == "message"
    assert mock.requests[-1]["body"] == orjson.loads(body)


async def test_chunked_request_body_from_aiohttp(mock: MockProvider) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"model":"gen",'
        yield b'"messages":[]}'

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{mock.url}/v1/messages", data=pieces()) as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["model"] == "gen"
    assert mock.requests[-1]["headers"]["transfer-encoding"] == "chunked"


async def test_expect_continue(
    mock: MockProvider, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    reader, writer = conn
    writer.write(post("/v1/chat/completions", CHAT, "expect: 100-continue")[: -len(CHAT)])
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(CHAT)
    status, _, _ = await read_response(reader)
    assert status == 200


async def test_http10_stream_is_close_delimited(mock: MockProvider) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
    body = b'{"model":"m","stream":true,"messages":[]}'
    writer.write(b"POST /v1/messages HTTP/1.0\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body))
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head and b"connection: close" in head
    assert payload.startswith(b"event: message_start\n")
    assert payload.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


async def test_head_has_no_body(
    mock: MockProvider, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    reader, writer = conn
    writer.write(b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    status, _, body = await read_response(reader)
    assert (status, body) == (200, b'{"status":"ok"}')


async def test_fail_after_chunks_breaks_the_connection(mock: MockProvider) -> None:
    mock.script([{"text": "one two three four five six", "chunks": 6, "fail_after_chunks": 2}])
    reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
    writer.write(post("/v1/chat/completions", b'{"model":"m","stream":true,"messages":[]}'))
    raw = await reader.read()
    writer.close()
    assert not raw.endswith(b"0\r\n\r\n")
    assert raw.count(b'"content":"') == 3  # the role chunk, then exactly two content chunks
    assert b"[DONE]" not in raw and b'finish_reason":"stop' not in raw

    mock.script([{"text": "a b c", "fail_after_chunks": 1}])
    stream = {"model": "m", "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{mock.url}/v1/messages", json=stream) as resp,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_unknown_paths_and_methods(mock: MockProvider) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{mock.url}/v1/chat/completions") as resp:
            assert resp.status == 405
        async with session.post(f"{mock.url}/v2/nothing", data=b"{}") as resp:
            assert resp.status == 404
        async with session.post(f"{mock.url}/v1/chat/completions", data=b"not json") as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["type"] == "invalid_request_error"
        async with session.post(f"{mock.url}/v1/messages", data=b"[1]") as resp:
            assert resp.status == 400
            assert (await resp.json())["type"] == "error"


# --- control API ---------------------------------------------------------------------------------------


async def test_control_api_script_log_stats_reset(mock: MockProvider) -> None:
    async with aiohttp.ClientSession(base_url=mock.url) as session:
        async with session.post(
            "/_mock/script", json={"replies": [{"text": "first"}, {"text": "second"}]}
        ) as resp:
            assert (await resp.json()) == {"queued": 2}
        texts = []
        for _ in range(3):
            async with session.post("/v1/chat/completions?x=1", json={"model": "m", "messages": []}) as resp:
                texts.append((await resp.json())["choices"][0]["message"]["content"])
        assert texts == ["first", "second", "Hello from the ccr-fast mock provider."]

        async with session.get("/_mock/requests") as resp:
            log = await resp.json()
        assert len(log) == 3
        assert (
            log[0]["method"] == "POST"
            and log[0]["path"] == "/v1/chat/completions"
            and log[0]["query"] == "x=1"
        )
        assert log[0]["body"] == {"model": "m", "messages": []}
        assert log[0]["headers"]["content-type"] == "application/json"
        async with session.get("/_mock/stats") as resp:
            assert await resp.json() == {"/v1/chat/completions": 3}

        async with session.post("/_mock/script", json={"replies": [{"text": "dropped"}]}) as resp:
            assert resp.status == 200
        async with session.post("/_mock/reset") as resp:
            assert resp.status == 200
        async with session.get("/_mock/requests") as resp:
            assert await resp.json() == []
        async with session.post("/v1/chat/completions", json={"model": "m", "messages": []}) as resp:
            assert (await resp.json())["choices"][0]["message"]["content"] != "dropped"

        async with session.post("/_mock/script", json={"replies": [{"txt": "typo"}]}) as resp:
            assert resp.status == 400
            assert "txt" in (await resp.json())["error"]["message"]
        async with session.post("/_mock/script", json={"replies": {}}) as resp:
            assert resp.status == 400
        async with session.get("/_mock/nothing") as resp:
            assert resp.status == 404


async def test_request_log_is_bounded() -> None:
    async with MockProvider(log_size=3) as provider, aiohttp.ClientSession() as session:
        for i in range(5):
            async with session.post(f"{provider.url}/v1/messages", json={"model": f"m{i}"}) as resp:
                assert resp.status == 200
        assert [r["body"]["model"] for r in provider.requests] == ["m2", "m3", "m4"]
        assert provider.stats == {"/v1/messages": 5}


async def test_scripted_replies_inherit_defaults() -> None:
    async with MockProvider(defaults={"text": "default text", "chunks": 1}) as provider:
        provider.script([{"tool_calls": [{"name": "t"}]}, {"finish_reason": "length"}])
        async with aiohttp.ClientSession(base_url=provider.url) as session:
            stream = {"model": "m", "stream": True, "messages": []}
            async with session.post("/v1/chat/completions", json=stream) as resp:
                raw = await resp.read()
            assert b"default text" not in raw and b'"name":"t"' in raw
            async with session.post("/v1/chat/completions", json=stream) as resp:
                raw = await resp.read()
            assert raw.count(b'"content":"default text"') == 1
            assert b'"finish_reason":"length"' in raw


async def test_stop_closes_open_streams() -> None:
    provider = MockProvider(defaults={"ttft_ms": 60_000})
    await provider.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", provider.port)
    writer.write(post("/v1/messages", b'{"model":"m","stream":true}'))
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")
    await asyncio.wait_for(provider.stop(), timeout=5)
    rest = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert b"event: message_start" in rest and b"message_stop" not in rest
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", provider.port)


def test_run_in_thread_serves_sync_clients() -> None:
    provider, stop = run_in_thread({"text": "from a thread"})
    try:
        client = openai.OpenAI(base_url=f"{provider.url}/v1", api_key="k", max_retries=0)
        provider.script([{"text": "scripted from a thread"}])
        first = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        second = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        client.close()
        assert first.choices[0].message.content == "scripted from a thread"
        assert second.choices[0].message.content == "from a thread"
        assert len(provider.requests) == 2
    finally:
        stop()
    stop()
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=f"{provider.url}/v1", api_key="k", max_retries=0).models.list()
