"""The ASGI and RSGI adapters, driven with fake server callables: body limits, HEAD, streaming, disconnects.

The gateway behind them is real; only its upstream is a MockTransport. A disconnect test must show the
whole chain unwinding: the handling task is cancelled, the upstream stream's ``finally`` runs, the upstream
response is closed and the exchange is accounted as 499.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ccr_fast.config import config_from_dict
from ccr_fast.server.app import App
from ccr_fast.server.gateway import Gateway
from ccr_fast.server.http import CLIENT_CLOSED, Request, Response
from ccr_fast.upstream.mock_transport import MockResponse, MockTransport
from ccr_fast.upstream.transport import UpstreamRequest

LIMIT = 4096
ANTH_URL = "https://anth.example.test/v1/messages"
#: a guard against a hang when cancellation is broken; no test gets anywhere near it
GUARD_S = 10

Scope = dict[str, Any]
Message = dict[str, Any]


def frame(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


MESSAGE_START = frame(
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_up",
            "type": "message",
            "role": "assistant",
            "model": "claude-upstream",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    },
)
FULL_STREAM = b"".join(
    [
        MESSAGE_START,
        frame(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        frame(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        ),
        frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
        frame(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        ),
        frame("message_stop", {"type": "message_stop"}),
    ]
)


@dataclass
class Upstream:
    """Scripted upstream answers, plus what happened to the slow stream."""

    response: MockResponse = field(default_factory=MockResponse)
    first_byte_wait: asyncio.Event | None = None
    stream_finished: bool = False
    handler_cancelled: bool = False

    async def handle(self, request: UpstreamRequest) -> MockResponse:
        if self.first_byte_wait is not None:
            try:
                await self.first_byte_wait.wait()
            except asyncio.CancelledError:
                self.handler_cancelled = True
                raise
        return self.response

    async def slow_chunks(self) -> AsyncIterator[bytes]:
        """One event, then silence until cancelled."""
        try:
            yield MESSAGE_START
            await asyncio.sleep(3600)
            yield FULL_STREAM
        finally:
            self.stream_finished = True


def make_app(upstream: Upstream | None = None, **top: Any) -> tuple[App, MockTransport, Upstream]:
    upstream = upstream or Upstream()
    data: dict[str, Any] = {
        "Providers": [
            {
                "name": "anth",
                "api_base_url": ANTH_URL,
                "api_key": "k",
                "models": ["claude-upstream"],
                "transformer": {"use": ["Anthropic"]},
            }
        ],
        "Router": {"default": "anth,claude-upstream"},
        "MAX_BODY_SIZE": LIMIT,
    }
    data.update(top)
    transport = MockTransport(upstream.handle)
    return App(Gateway(config_from_dict(data, env={}), transport)), transport, upstream


def messages_body(stream: bool = False, text: str = "hello") -> bytes:
    return orjson.dumps(
        {
            "model": "claude-x",
            "max_tokens": 10,
            "stream": stream,
            "metadata": {"user_id": "user_x_account__session_sid-1"},
            "messages": [{"role": "user", "content": text}],
        }
    )


# --- ASGI fakes -----------------------------------------------------------------------------------------


class Receive:
    """Hands out the scripted messages, then blocks until ``disconnect`` is set (like a live client)."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = list(messages)
        self.disconnect = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        if self.messages:
            return self.messages.pop(0)
        await self.disconnect.wait()
        return {"type": "http.disconnect"}


class Send:
    def __init__(self, disconnect_after_chunks: int | None = None, receive: Receive | None = None) -> None:
        self.messages: list[Message] = []
        self._disconnect_after = disconnect_after_chunks
        self._receive = receive

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        if self._disconnect_after is not None and self._receive is not None:
            chunks = [m for m in self.messages if m.get("more_body")]
            if len(chunks) >= self._disconnect_after:
                self._receive.disconnect.set()

    @property
    def start(self) -> Message:
        assert self.messages[0]["type"] == "http.response.start"
        return self.messages[0]

    @property
    def status(self) -> int:
        return int(self.start["status"])

    def header(self, name: str) -> list[str]:
        return [v.decode() for k, v in self.start["headers"] if k.decode() == name]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def http_scope(
    method: str = "POST",
    path: str = "/v1/messages",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
) -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": headers or [],
        "client": ("10.0.0.9", 51234),
    }


def body_messages(body: bytes, pieces: int = 1) -> list[Message]:
    size = max(1, -(-len(body) // pieces))
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    return [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]


async def call_asgi(app: App, scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.wait_for(app(scope, receive, send), GUARD_S)


def completions(app: App) -> list[int]:
    """The statuses the gateway's accounting hook is called with, one per finished exchange."""
    statuses: list[int] = []
    handle = app.gateway.handle

    async def recording(req: Request) -> Response:
        resp = await handle(req)
        inner = resp.on_complete

        def complete(status: int) -> None:
            statuses.append(status)
            if inner is not None:
                inner(status)

        resp.on_complete = complete
        return resp

    app.gateway.handle = recording  # type: ignore[method-assign]
    return statuses


# --- ASGI: requests -------------------------------------------------------------------------------------


async def test_asgi_body_in_several_chunks_reaches_the_upstream_whole() -> None:
    app, transport, upstream = make_app()
    upstream.response = MockResponse(200, {"content-type": "application/json"}, [b'{"ok": true}'])
    body = messages_body(text="x" * 500)
    receive, send = Receive(body_messages(body, pieces=4)), Send()
    await call_asgi(app, http_scope(), receive, send)
    assert send.status == 200
    assert send.body == b'{"ok": true}'
    forwarded = orjson.loads(transport.requests[0].body)
    assert forwarded["messages"][0]["content"] == "x" * 500


async def test_asgi_request_carries_headers_query_and_client() -> None:
    app, _, _ = make_app()
    seen: list[Request] = []
    original = app.gateway.handle

    async def spy(req: Request) -> Response:
        seen.append(req)
        return await original(req)

    app.gateway.handle = spy  # type: ignore[method-assign]
    headers = [(b"X-Custom", b"a"), (b"x-custom", b"b"), (b"Accept", b"*/*")]
    receive, send = Receive(body_messages(b"")), Send()
    await call_asgi(app, http_scope("GET", "/health", headers, b"beta=true"), receive, send)
    (req,) = seen
    assert req.headers == {"x-custom": "a, b", "accept": "*/*"}
    assert (req.query, req.client, req.body) == ("beta=true", "10.0.0.9", b"")
    assert send.header("request-id") == [req.request_id]


async def test_asgi_content_length_over_the_limit_is_413_without_reading() -> None:
    app, transport, _ = make_app()
    receive = Receive([])
    send = Send()
    headers = [(b"content-length", str(LIMIT + 1).encode())]
    await call_asgi(app, http_scope(headers=headers), receive, send)
    assert receive.calls == 0
    assert send.status == 413
    error = orjson.loads(send.body)
    assert error["error"]["type"] == "request_too_large"
    assert str(LIMIT) in error["error"]["message"]
    assert send.header("request-id") == [error["request_id"]]
    assert transport.requests == []


async def test_asgi_chunked_body_over_the_limit_is_413() -> None:
    app, transport, _ = make_app()
    chunk = {"type": "http.request", "body": b"x" * 1000, "more_body": True}
    receive = Receive([dict(chunk) for _ in range(10)])
    send = Send()
    await call_asgi(app, http_scope(), receive, send)
    assert send.status == 413
    assert receive.calls == 5  # stopped reading as soon as the limit was passed
    assert transport.requests == []


async def test_asgi_single_message_over_the_limit_is_413() -> None:
    app, _, _ = make_app()
    receive, send = Receive(body_messages(b"x" * (LIMIT + 1))), Send()
    await call_asgi(app, http_scope(), receive, send)
    assert send.status == 413


async def test_asgi_body_exactly_at_the_limit_is_accepted() -> None:
    app, _, _ = make_app()
    body = b" " * LIMIT
    receive = Receive(body_messages(body, pieces=3))
    send = Send()
    await call_asgi(app, http_scope(headers=[(b"content-length", str(LIMIT).encode())]), receive, send)
    assert send.status == 400  # parsed (and rejected as empty JSON), not refused for size
    assert b"malformed JSON" in send.body


async def test_asgi_disconnect_before_the_body_arrives_sends_nothing() -> None:
    app, transport, _ = make_app()
    receive = Receive(
        [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}]
    )
    send = Send()
    await call_asgi(app, http_scope(), receive, send)
    assert send.messages == []
    assert transport.requests == []


async def test_asgi_head_sends_headers_and_an_empty_body() -> None:
    app, _, _ = make_app()
    receive, send = Receive(body_messages(b"")), Send()
    await call_asgi(app, http_scope("HEAD", "/"), receive, send)
    assert send.status == 200
    assert send.header("content-type") == ["application/json"]
    assert [m["body"] for m in send.messages[1:]] == [b""]


async def test_asgi_non_http_scopes_are_ignored() -> None:
    app, _, _ = make_app()
    receive, send = Receive([]), Send()
    await call_asgi(app, {"type": "websocket"}, receive, send)
    assert send.messages == [] and receive.calls == 0


# --- ASGI: streaming and disconnects --------------------------------------------------------------------


async def test_asgi_streaming_response_sends_more_body_chunks() -> None:
    app, _, upstream = make_app()
    statuses = completions(app)
    pieces = [FULL_STREAM[:120], FULL_STREAM[120:400], FULL_STREAM[400:]]
    upstream.response = MockResponse(200, {"content-type": "text/event-stream"}, pieces)
    receive, send = Receive(body_messages(messages_body(stream=True))), Send()
    await call_asgi(app, http_scope(), receive, send)
    assert send.status == 200
    assert send.header("content-type") == ["text/event-stream"]
    chunks = send.messages[1:-1]
    assert len(chunks) >= 2 and all(m["more_body"] is True for m in chunks)
    assert send.messages[-1] == {"type": "http.response.body", "body": b""}
    assert send.body == FULL_STREAM
    assert upstream.response.closed
    assert statuses == [200]
    assert app.gateway.sessions.get("sid-1") == 3


async def test_asgi_disconnect_during_a_slow_stream_cancels_it() -> None:
    app, _, upstream = make_app()
    statuses = completions(app)
    upstream.response = MockResponse(200, {"content-type": "text/event-stream"}, upstream.slow_chunks())
    receive = Receive(body_messages(messages_body(stream=True)))
    send = Send(disconnect_after_chunks=1, receive=receive)
    await call_asgi(app, http_scope(), receive, send)
    assert send.body == MESSAGE_START
    assert not any(m.get("more_body") is False for m in send.messages[1:])
    assert upstream.stream_finished
    assert upstream.response.closed
    assert statuses == [CLIENT_CLOSED]
    assert asyncio.current_task() is not None and not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_asgi_disconnect_while_waiting_for_the_upstream_cancels_the_call() -> None:
    upstream = Upstream(first_byte_wait=asyncio.Event())
    app, transport, _ = make_app(upstream)
    receive = Receive(body_messages(messages_body()))

    async def disconnect_once_called() -> None:
        while not transport.requests:
            await asyncio.sleep(0)
        receive.disconnect.set()

    send = Send()
    await asyncio.gather(call_asgi(app, http_scope(), receive, send), disconnect_once_called())
    assert upstream.handler_cancelled
    assert send.messages == []


# --- ASGI: lifespan -------------------------------------------------------------------------------------


async def test_asgi_lifespan_startup_and_shutdown_close_the_gateway() -> None:
    app, transport, _ = make_app()
    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(True)

    transport.aclose = aclose  # type: ignore[method-assign]
    receive = Receive([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    send = Send()
    await call_asgi(app, {"type": "lifespan"}, receive, send)
    assert send.messages == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert closed == [True]


# --- RSGI fakes -----------------------------------------------------------------------------------------


class Headers:
    """Granian's RSGI headers: lower-case names (hyper normalises them), repeats kept in order."""

    def __init__(self, items: dict[str, str] | list[tuple[str, str]]) -> None:
        pairs = list(items.items()) if isinstance(items, dict) else list(items)
        self._items = [(name.lower(), value) for name, value in pairs]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


@dataclass
class RSGIScope:
    method: str = "POST"
    path: str = "/v1/messages"
    query_string: str = ""
    headers: Headers = field(default_factory=lambda: Headers({}))
    client: str = "10.0.0.7:40000"
    proto: str = "http"


class StreamTransport:
    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol
        self.chunks: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.chunks.append(data)
        limit = self._protocol.disconnect_after_chunks
        if limit is not None and len(self.chunks) >= limit:
            self._protocol.disconnected.set()


class Protocol:
    """Granian's RSGI HTTP protocol object, as far as the app uses it."""

    def __init__(
        self, body: bytes = b"", pieces: int = 1, disconnect_after_chunks: int | None = None
    ) -> None:
        size = max(1, -(-len(body) // pieces))
        self._parts = [body[i : i + size] for i in range(0, len(body), size)]
        self.body_calls = 0
        self.iterated = 0
        self.disconnected = asyncio.Event()
        self.disconnect_after_chunks = disconnect_after_chunks
        self.response: tuple[int, list[tuple[str, str]], bytes] | None = None
        self.stream_start: tuple[int, list[tuple[str, str]]] | None = None
        self.stream: StreamTransport | None = None

    async def __call__(self) -> bytes:
        self.body_calls += 1
        return b"".join(self._parts)

    async def _iterate(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            self.iterated += 1
            yield part

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def client_disconnect(self) -> None:
        await self.disconnected.wait()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        assert self.response is None and self.stream_start is None
        self.response = (status, list(headers), body)

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> StreamTransport:
        assert self.response is None and self.stream_start is None
        self.stream_start = (status, list(headers))
        self.stream = StreamTransport(self)
        return self.stream


async def call_rsgi(app: App, scope: RSGIScope, protocol: Protocol) -> None:
    await asyncio.wait_for(app.__rsgi__(scope, protocol), GUARD_S)


def rsgi_json(protocol: Protocol) -> tuple[int, dict[str, str], Any]:
    assert protocol.response is not None
    status, headers, body = protocol.response
    return status, dict(headers), orjson.loads(body) if body else None


# --- RSGI -----------------------------------------------------------------------------------------------


async def test_rsgi_reads_a_sized_body_in_one_call() -> None:
    app, transport, upstream = make_app()
    upstream.response = MockResponse(200, {"content-type": "application/json"}, [b'{"ok": 1}'])
    body = messages_body()
    protocol = Protocol(body, pieces=3)
    scope = RSGIScope(headers=Headers({"Content-Length": str(len(body)), "X-Claude-Code-Session-Id": "s"}))
    await call_rsgi(app, scope, protocol)
    assert protocol.body_calls == 1 and protocol.iterated == 0
    status, headers, data = rsgi_json(protocol)
    assert (status, data) == (200, {"ok": 1})
    assert headers["request-id"].startswith("req_")
    assert transport.requests[0].body == orjson.dumps({**orjson.loads(body), "model": "claude-upstream"})


async def test_rsgi_reads_an_unsized_body_by_iterating() -> None:
    app, transport, upstream = make_app()
    upstream.response = MockResponse(200, {"content-type": "application/json"}, [b"{}"])
    body = messages_body(text="y" * 300)
    protocol = Protocol(body, pieces=4)
    await call_rsgi(app, RSGIScope(), protocol)
    assert protocol.body_calls == 0 and protocol.iterated == 4
    assert orjson.loads(transport.requests[0].body)["messages"][0]["content"] == "y" * 300


async def test_rsgi_joins_repeated_headers_like_asgi() -> None:
    app, _, _ = make_app()
    seen: list[Request] = []
    original = app.gateway.handle

    async def spy(req: Request) -> Response:
        seen.append(req)
        return await original(req)

    app.gateway.handle = spy  # type: ignore[method-assign]
    pairs = [("anthropic-beta", "a-1"), ("x-thing", "v"), ("anthropic-beta", "b-2")]
    await call_rsgi(app, RSGIScope("GET", "/health", "", Headers(pairs)), Protocol())
    assert seen[0].headers == {"anthropic-beta": "a-1, b-2", "x-thing": "v"}


async def test_rsgi_passes_method_path_query_client_and_lowercased_headers() -> None:
    app, _, _ = make_app()
    seen: list[Request] = []
    original = app.gateway.handle

    async def spy(req: Request) -> Response:
        seen.append(req)
        return await original(req)

    app.gateway.handle = spy  # type: ignore[method-assign]
    scope = RSGIScope("GET", "/health", "x=1", Headers({"X-Thing": "v"}), "192.168.1.2:5000")
    await call_rsgi(app, scope, Protocol())
    (req,) = seen
    assert (req.method, req.path, req.query, req.client) == ("GET", "/health", "x=1", "192.168.1.2")
    assert req.headers == {"x-thing": "v"}


async def test_rsgi_sized_body_over_the_limit_is_413_without_reading() -> None:
    app, transport, _ = make_app()
    protocol = Protocol(b"x" * 10)
    await call_rsgi(app, RSGIScope(headers=Headers({"content-length": str(LIMIT + 1)})), protocol)
    assert protocol.body_calls == 0 and protocol.iterated == 0
    status, headers, data = rsgi_json(protocol)
    assert status == 413 and data["error"]["type"] == "request_too_large"
    assert headers["request-id"] == data["request_id"]
    assert transport.requests == []


async def test_rsgi_unsized_body_over_the_limit_is_413() -> None:
    app, _, _ = make_app()
    protocol = Protocol(b"x" * (LIMIT * 3), pieces=12)
    await call_rsgi(app, RSGIScope(), protocol)
    assert rsgi_json(protocol)[0] == 413
    assert protocol.iterated == 5  # stopped at the first piece past the limit


async def test_rsgi_head_sends_an_empty_body() -> None:
    app, _, _ = make_app()
    protocol = Protocol()
    await call_rsgi(app, RSGIScope("HEAD", "/"), protocol)
    assert protocol.response is not None
    status, headers, body = protocol.response
    assert status == 200 and body == b""
    assert ("content-type", "application/json") in headers


async def test_rsgi_streams_through_response_stream() -> None:
    app, _, upstream = make_app()
    cut = len(MESSAGE_START) + 10
    upstream.response = MockResponse(
        200, {"content-type": "text/event-stream"}, [FULL_STREAM[:cut], FULL_STREAM[cut:]]
    )
    protocol = Protocol(messages_body(stream=True))
    await call_rsgi(app, RSGIScope(), protocol)
    assert protocol.response is None and protocol.stream_start is not None and protocol.stream is not None
    status, headers = protocol.stream_start
    assert status == 200 and ("content-type", "text/event-stream") in headers
    assert protocol.stream.chunks == [MESSAGE_START, FULL_STREAM[len(MESSAGE_START) :]]


async def test_rsgi_disconnect_during_a_slow_stream_cancels_it() -> None:
    app, _, upstream = make_app()
    statuses = completions(app)
    upstream.response = MockResponse(200, {"content-type": "text/event-stream"}, upstream.slow_chunks())
    protocol = Protocol(messages_body(stream=True), disconnect_after_chunks=1)
    await call_rsgi(app, RSGIScope(), protocol)
    assert protocol.stream is not None and protocol.stream.chunks == [MESSAGE_START]
    assert upstream.stream_finished
    assert upstream.response.closed
    assert statuses == [CLIENT_CLOSED]


async def test_rsgi_ignores_non_http_protocols() -> None:
    app, _, _ = make_app()
    protocol = Protocol()
    await call_rsgi(app, RSGIScope(proto="ws"), protocol)
    assert protocol.response is None and protocol.stream_start is None and protocol.body_calls == 0


def test_rsgi_del_closes_the_gateway_on_the_given_loop() -> None:
    app, transport, _ = make_app()
    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(True)

    transport.aclose = aclose  # type: ignore[method-assign]
    loop = asyncio.new_event_loop()
    try:
        app.__rsgi_init__(loop)
        app.__rsgi_del__(loop)
    finally:
        loop.close()
    assert closed == [True]


def test_rsgi_del_survives_a_failing_close() -> None:
    app, transport, _ = make_app()

    async def aclose() -> None:
        raise OSError("already gone")

    transport.aclose = aclose  # type: ignore[method-assign]
    loop = asyncio.new_event_loop()
    try:
        app.__rsgi_del__(loop)
    finally:
        loop.close()
