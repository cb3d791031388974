"""The mock provider's HTTP/1.1 server: raw ``asyncio.Protocol``, no framework, so it costs next to nothing.

Benchmarks compare the proxy against talking to this server directly; any time spent here hides the
proxy's own cost. So requests are cut out of the receive buffer by hand (keep-alive, pipelining,
Content-Length and chunked bodies), every response is decided up front (``replies.respond``) and written
in one call when it has no delays, and only delayed or streamed responses get a task.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote

import orjson
import uvloop

from ccr_fast.mock.dialects import ANTHROPIC, GEMINI, OPENAI
from ccr_fast.mock.google_oauth import OAuthServer
from ccr_fast.mock.replies import (
    JSON_TYPE,
    Dialect,
    Outcome,
    Reply,
    ReplyError,
    auto_reply,
    parse_reply,
    respond,
)
from ccr_fast.mock.responses_api import responses_route
from ccr_fast.mock.vertex import GoogleRoutes

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
#: parsed requests waiting behind a slow response before the connection stops reading
MAX_PIPELINE = 128
_MAX_METHOD = 16
_MAX_CHUNK_LINE = 4096
_SIZE_LINE, _TRAILERS = -1, -2
_HEX = frozenset(b"0123456789abcdefABCDEF")
_REASONS = {status.value: status.phrase for status in HTTPStatus} | {529: "Overloaded"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")
_GEMINI_METHODS = (":generateContent", ":streamGenerateContent")


class BadRequest(Exception):
    """The connection's bytes are not HTTP/1.1 we accept; answered with ``status`` and then closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    http10: bool


@dataclass(slots=True)
class _Head:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    keep_alive: bool
    http10: bool
    #: body length, or -1 for a chunked body
    length: int


class RequestReader:
    """Cuts complete requests out of a connection's receive buffer, one at a time, resuming where it was.

    It consumes only what belongs to a request, so pipelined requests stay in the buffer for the next call.
    """

    __slots__ = ("_body", "_chunk_left", "_head", "continue_wanted")

    def __init__(self) -> None:
        self._head: _Head | None = None
        self._body = bytearray()
        self._chunk_left = _SIZE_LINE
        #: a head asked for ``Expect: 100-continue`` and its body has not arrived yet
        self.continue_wanted = False

    def next_request(self, buf: bytearray) -> Request | None:
        """The next complete request (consumed from ``buf``), or None until more bytes arrive."""
        head = self._head
        if head is None:
            head = self._head = self._read_head(buf)
            if head is None:
                return None
        if head.length >= 0:
            if len(buf) < head.length:
                return None
            body = bytes(buf[: head.length])
            del buf[: head.length]
        else:
            chunked = self._read_chunked(buf)
            if chunked is None:
                return None
            body = chunked
        self._head = None
        self.continue_wanted = False
        return Request(head.method, head.path, head.query, head.headers, body, head.keep_alive, head.http10)

    def _read_head(self, buf: bytearray) -> _Head | None:
        while buf[:2] == b"\r\n":
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise BadRequest(431, "request head too large")
            _check_method(bytes(buf[: _MAX_METHOD + 1]))
            return None
        if end > MAX_HEAD:
            raise BadRequest(431, "request head too large")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise BadRequest(400, "malformed request line")
        method, target, version = parts
        if not method or len(method) > _MAX_METHOD or not (method.isalpha() and method.isupper()):
            raise BadRequest(400, "malformed request line")
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise BadRequest(400, "unsupported HTTP version")
        if not target.startswith(b"/"):
            raise BadRequest(400, "malformed request target")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name.strip(b" \t") != name:
                raise BadRequest(400, "malformed header line")
            key = name.decode("latin-1").lower()
            text = value.strip(b" \t").decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        path, _, query = target.decode("latin-1").partition("?")
        http10 = version == b"HTTP/1.0"
        connection = headers.get("connection", "").lower()
        keep_alive = "keep-alive" in connection if http10 else "close" not in connection
        head = _Head(
            method.decode(), unquote(path), query, headers, keep_alive, http10, _body_length(headers)
        )
        self.continue_wanted = headers.get("expect", "").lower() == "100-continue"
        return head

    def _read_chunked(self, buf: bytearray) -> bytes | None:
        while True:
            if self._chunk_left == _SIZE_LINE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > _MAX_CHUNK_LINE:
                        raise BadRequest(400, "malformed chunk size")
                    return None
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip(b" \t")
                if not size_text or not _HEX.issuperset(size_text):
                    raise BadRequest(400, "malformed chunk size")
                del buf[: end + 2]
                size = int(size_text, 16)
                if len(self._body) + size > MAX_BODY:
                    raise BadRequest(413, "request body too large")
                self._chunk_left = size if size else _TRAILERS
            elif self._chunk_left == _TRAILERS:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise BadRequest(431, "request trailers too large")
                    return None
                del buf[: end + 2]
                if end == 0:
                    body = bytes(self._body)
                    self._body = bytearray()
                    self._chunk_left = _SIZE_LINE
                    return body
            else:
                size = self._chunk_left
                if len(buf) < size + 2:
                    return None
                if buf[size : size + 2] != b"\r\n":
                    raise BadRequest(400, "malformed chunk")
                self._body += buf[:size]
                del buf[: size + 2]
                self._chunk_left = _SIZE_LINE


def _check_method(start: bytes) -> None:
    """Reject a request at its first bytes, so binary garbage gets its 400 without waiting for more."""
    method = start.split(b" ", 1)[0]
    if len(method) > _MAX_METHOD or (method and not (method.isalpha() and method.isupper())):
        raise BadRequest(400, "malformed request line")
    if not method and start:
        raise BadRequest(400, "malformed request line")


def _body_length(headers: Mapping[str, str]) -> int:
    encoding = headers.get("transfer-encoding")
    if encoding is not None:
        if encoding.lower().rsplit(",", 1)[-1].strip() != "chunked":
            raise BadRequest(501, "unsupported transfer-encoding")
        return -1
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise BadRequest(400, "malformed content-length")
    if int(length) > MAX_BODY:
        raise BadRequest(413, "request body too large")
    return int(length)


# --- response bytes ----------------------------------------------------------------------------------


def _head(
    status: int,
    content_type: str,
    headers: Sequence[tuple[str, str]],
    length: int | None,
    close: bool,
    http10: bool,
) -> bytes:
    """Status line and headers; ``length`` None means a streamed body (chunked, or until close on 1.0)."""
    parts = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\ncontent-type: {content_type}\r\n"]
    if length is None:
        parts.append(
            "cache-control: no-cache\r\n"
            if http10
            else "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
        )
    else:
        parts.append(f"content-length: {length}\r\n")
    parts += [f"{name}: {value}\r\n" for name, value in headers]
    if close:
        parts.append("connection: close\r\n")
    elif http10:
        parts.append("connection: keep-alive\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _closes(request: Request, outcome: Outcome) -> bool:
    """HTTP/1.0 has no chunked encoding: a streamed body there ends by closing the connection."""
    return not request.keep_alive or (request.http10 and outcome.segments is not None)


def _render(request: Request, outcome: Outcome) -> bytes:
    """The whole response in one piece (no delays in it)."""
    close = _closes(request, outcome)
    if outcome.segments is None:
        head = _head(
            outcome.status, outcome.content_type, outcome.headers, len(outcome.body), close, request.http10
        )
        return head if request.method == "HEAD" else head + outcome.body
    head = _head(outcome.status, outcome.content_type, outcome.headers, None, close, request.http10)
    if request.http10:
        return head + b"".join(data for _, data in outcome.segments)
    return head + b"".join(_chunk(data) for _, data in outcome.segments) + b"0\r\n\r\n"


def _json(status: int, value: Any) -> Outcome:
    return Outcome(status, JSON_TYPE, orjson.dumps(value))


def _problem(status: int, message: str) -> Outcome:
    return _json(status, {"error": {"type": "mock_error", "message": message}})


def _bad_request_bytes(error: BadRequest) -> bytes:
    body = orjson.dumps({"error": {"type": "invalid_request_error", "message": error.message}})
    return _head(error.status, JSON_TYPE, (), len(body), True, False) + body


# --- the application: routes, script, request log -------------------------------------------------------


class _App:
    """Routes one request to a dialect or the control API, and keeps the script, log and counters."""

    def __init__(self, defaults: Reply, log_size: int) -> None:
        self.defaults = defaults
        self.script: deque[Reply] = deque()
        self.log: deque[tuple[str, str, str, dict[str, str], bytes]] = deque(maxlen=log_size)
        self.stats: dict[str, int] = {}
        self.serial = 0
        self.google = GoogleRoutes(self._provider)
        self._routes: dict[str, Callable[[Request], Outcome]] = {
            "/v1/chat/completions": lambda request: self._provider(OPENAI, request),
            "/v1/messages": lambda request: self._provider(ANTHROPIC, request),
            "/v1/messages/count_tokens": self._count_tokens,
            "/v1/responses": responses_route(self._provider),
        }

    def handle(self, request: Request) -> Outcome:
        path = request.path
        if path.startswith("/_mock/"):
            return self._control(request)
        self.stats[path] = self.stats.get(path, 0) + 1
        self.log.append((request.method, path, request.query, request.headers, request.body))
        route = self._routes.get(path)
        if route is None and path.startswith(_GEMINI_PREFIXES) and path.endswith(_GEMINI_METHODS):
            route = self._gemini
        if route is None:
            route = self.google.route(path)  # Vertex AI, Google's token endpoint, Gemini countTokens
        if route is not None:
            return route(request) if request.method == "POST" else _problem(405, "use POST")
        if path in ("/", "/health"):
            if request.method not in ("GET", "HEAD"):
                return _problem(405, "use GET")
            return _json(200, {"status": "ok"})
        return _problem(404, f"no such endpoint: {path}")

    def reset(self) -> None:
        self.google.reset()
        self.script.clear()
        self.log.clear()
        self.stats.clear()

    def requests(self) -> list[dict[str, Any]]:
        return [
            {"method": method, "path": path, "query": query, "headers": headers, "body": _parse_or_none(body)}
            for method, path, query, headers, body in list(self.log)
        ]

    def queue(self, specs: Any) -> None:
        if not isinstance(specs, list):
            raise ValueError("replies must be a list")
        self.script.extend([parse_reply(spec, self.defaults) for spec in specs])

    def _gemini(self, request: Request) -> Outcome:
        return self._provider(GEMINI, request)

    def _provider(self, dialect: Dialect, request: Request) -> Outcome:
        self.serial += 1
        body = _parse_or_none(request.body)
        if not isinstance(body, dict):
            ctx = dialect.context(
                {}, path=request.path, query=request.query, body_len=len(request.body), serial=self.serial
            )
            error = dialect.error(ReplyError(400, "the request body must be a JSON object"), ctx)
            return Outcome(400, JSON_TYPE, error, dialect.headers(ctx))
        ctx = dialect.context(
            body, path=request.path, query=request.query, body_len=len(request.body), serial=self.serial
        )
        reply = self.script.popleft() if self.script else auto_reply(dialect.latest_turn(body), self.defaults)
        return respond(dialect, reply, ctx)

    def _count_tokens(self, request: Request) -> Outcome:
        """A rough count (bytes / 4). It never takes a scripted reply: Claude Code sends these in bursts."""
        return _json(200, {"input_tokens": len(request.body) // 4})

    def _control(self, request: Request) -> Outcome:
        action = request.path[len("/_mock/") :]
        method = request.method
        if action == "script" and method == "POST":
            spec = _parse_or_none(request.body)
            try:
                self.queue(spec.get("replies") if isinstance(spec, dict) else None)
            except ValueError as exc:
                return _problem(400, str(exc))
            return _json(200, {"queued": len(self.script)})
        if action == "reset" and method == "POST":
            self.reset()
            return _json(200, {"reset": True})
        if action == "requests" and method == "GET":
            return _json(200, self.requests())
        if action == "stats" and method == "GET":
            return _json(200, self.stats)
        return _problem(404, f"no such control endpoint: {method} {request.path}")


def _parse_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


# --- the connection ------------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One client connection: answers requests strictly in order, parking later ones behind a slow one."""

    def __init__(self, app: _App, connections: set[_Connection]) -> None:
        self._app = app
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._reader = RequestReader()
        self._pending: deque[Request | BadRequest] = deque()
        self._task: asyncio.Task[None] | None = None
        self._abort_counted = False
        self._broken = False
        self._eof = False
        self._read_paused = False
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._pending.clear()
        if self._task is not None:
            self._count_abort()
            self._task.cancel()

    def _count_abort(self) -> None:
        """The client went away before its response was complete (how a proxy cancels us)."""
        if not self._abort_counted:
            self._abort_counted = True
            stats = self._app.stats
            stats["client_aborts"] = stats.get("client_aborts", 0) + 1

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self._task is None:
            self._serve()

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return
        buf = self._buf
        buf += data
        try:
            while (request := self._reader.next_request(buf)) is not None:
                self._pending.append(request)
        except BadRequest as exc:
            self._pending.append(exc)
            self._broken = True
            buf.clear()
        transport = self._transport
        assert transport is not None
        if self._reader.continue_wanted and self._task is None and not self._pending:
            self._reader.continue_wanted = False
            transport.write(_CONTINUE)
        if self._task is None:
            self._serve()
        if len(self._pending) > MAX_PIPELINE and not self._read_paused:
            self._read_paused = True
            transport.pause_reading()

    def eof_received(self) -> bool:
        """A half-closed client still gets every answer it asked for; close once they are written."""
        self._eof = True
        if self._task is not None:
            self._count_abort()
        return self._task is not None or bool(self._pending)

    def close(self) -> asyncio.Task[None] | None:
        """Drop the connection now (server shutdown); returns the cancelled task to await, if any."""
        if self._transport is not None:
            self._transport.abort()
        task = self._task
        if task is not None:
            task.cancel()
        return task

    def _serve(self) -> None:
        transport = self._transport
        assert transport is not None
        while self._pending and self._task is None and not self._write_paused and not transport.is_closing():
            item = self._pending.popleft()
            if isinstance(item, BadRequest):
                transport.write(_bad_request_bytes(item))
                transport.close()
                return
            outcome = self._app.handle(item)
            if outcome.immediate:
                transport.write(_render(item, outcome))
                if _closes(item, outcome):
                    transport.close()
                    return
            else:
                self._task = asyncio.get_running_loop().create_task(self._send_later(item, outcome))
        if transport.is_closing():
            return
        if self._eof and self._task is None and not self._pending:
            transport.close()
        elif self._read_paused and len(self._pending) <= MAX_PIPELINE // 2:
            self._read_paused = False
            transport.resume_reading()

    async def _drain(self) -> None:
        if self._write_paused:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    async def _send_later(self, request: Request, outcome: Outcome) -> None:
        transport = self._transport
        assert transport is not None
        try:
            if outcome.delay > 0:
                await asyncio.sleep(outcome.delay)
            close = _closes(request, outcome)
            if outcome.segments is None:
                transport.write(_render(request, outcome))
            else:
                head = _head(
                    outcome.status, outcome.content_type, outcome.headers, None, close, request.http10
                )
                transport.write(head)
                for delay, data in outcome.segments:
                    if delay > 0:
                        await asyncio.sleep(delay)
                    transport.write(data if request.http10 else _chunk(data))
                    await self._drain()
                if outcome.aborted:
                    transport.close()
                    return
                if not request.http10:
                    transport.write(b"0\r\n\r\n")
            if close:
                transport.close()
                return
        finally:
            self._task = None
        self._serve()


# --- public API -----------------------------------------------------------------------------------------


class MockProvider:
    """A mock LLM upstream (OpenAI, Anthropic and Gemini APIs) on a real socket, driven by scripts.

    ``defaults`` is a reply spec (see ``ccr_fast.mock``) used for unscripted requests and as the base of
    scripted replies. ``log_size`` bounds the request log (0 turns it off, e.g. for long benchmarks).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        defaults: Mapping[str, Any] | None = None,
        *,
        log_size: int = 1000,
    ) -> None:
        self.host = host
        self.port = port
        self._app = _App(parse_reply(defaults or {}, Reply()), log_size)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Received provider requests, oldest first (method, path, query, headers, parsed JSON body)."""
        return self._app.requests()

    @property
    def stats(self) -> dict[str, int]:
        """Requests received per path (control endpoints excluded)."""
        return dict(self._app.stats)

    @property
    def oauth(self) -> OAuthServer:
        """Google's token endpoint (``POST /token``): trust a key, set the token lifetime, make it fail."""
        return self._app.google.oauth

    def script(self, replies: list[dict[str, Any]]) -> None:
        """Queue replies, consumed one per provider request in order; ValueError on a malformed spec."""
        self._app.queue(replies)

    def reset(self) -> None:
        """Forget queued replies, logged requests and counters."""
        self._app.reset()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self._app, self._connections),
            self.host,
            self.port,
            backlog=2048,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = [task for conn in list(self._connections) if (task := conn.close()) is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> MockProvider:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def run_in_thread(
    defaults: Mapping[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[MockProvider, Callable[[], None]]:
    """Start a MockProvider on its own uvloop loop in a daemon thread, for synchronous tests.

    Returns the provider (already listening) and a function that stops it and joins the thread.
    """
    provider = MockProvider(host, port, defaults)
    loop = uvloop.new_event_loop()
    started = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(provider.start())
        except BaseException as exc:
            failures.append(exc)
            loop.close()
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(provider.stop())
        loop.close()

    thread = threading.Thread(target=run, name="ccr-fast-mock", daemon=True)
    thread.start()
    started.wait()
    if failures:
        raise failures[0]

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    return provider, stop
