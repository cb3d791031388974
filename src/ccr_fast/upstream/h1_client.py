"""The HTTP/1.1 upstream connection: an ``asyncio.Protocol`` plus the response it is filling.

Why not aiohttp here: its client spends more CPU per proxied request than the rest of the gateway put
together (request/response object construction, header multidicts, several timer handles per exchange).
This client does the minimum an LLM upstream needs: the request head is one pre-joined string, the
response is parsed by :mod:`ccr_fast.upstream.h1_parser` straight from ``data_received``, and a single
lazily re-armed timer per exchange enforces both the timeout and the keep-alive ``idle`` ticks.

A connection carries one exchange at a time (no pipelining). Once the last byte of a response has
arrived, the connection goes back to its pool at once, even if the caller has not read the body yet:
the body is already buffered in the :class:`H1Response`. Closing a response whose body is still
arriving aborts the socket, which is how a client disconnect stops the upstream generating (and billing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, cast

from ccr_fast.upstream.h1_parser import (
    BodyDecoder,
    EndOfMessage,
    ProtocolError,
    ResponseHead,
    ResponseParser,
)
from ccr_fast.upstream.transport import UpstreamError, UpstreamTimeout

if TYPE_CHECKING:
    from ccr_fast.upstream.h1_pool import HostPool

#: buffered, unread body bytes at which the socket stops reading until the caller catches up
_HIGH_WATER = 1024 * 1024
#: timers may fire up to a loop tick early; a deadline this close counts as reached
_SLACK = 0.001
#: request headers the client writes itself, from the body and the connection's state
_OWN_HEADERS = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive"))
#: sent unless the caller names its own: the response decoder handles exactly these
ACCEPT_ENCODING = "accept-encoding: gzip, deflate\r\n"


def encode_request_head(
    method: str, target: str, host_line: str, headers: Mapping[str, str], body_len: int
) -> bytes:
    """The request line and headers, ready to write. ``host_line`` is the pool's pre-built Host header.

    A CR or LF inside a header would split it into two (header injection); rather than scanning every
    value, the finished head's line breaks are counted once.
    """
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    own_host = own_encoding = False
    for name, value in headers.items():
        lname = name.lower()
        if lname in _OWN_HEADERS:
            continue
        if lname == "host":
            own_host = True
        elif lname == "accept-encoding":
            own_encoding = True
        lines.append(f"{name}: {value}\r\n")
    if not own_host:
        lines.append(host_line)
    if not own_encoding:
        lines.append(ACCEPT_ENCODING)
    if body_len or method not in ("GET", "HEAD", "OPTIONS", "DELETE", "TRACE"):
        lines.append(f"content-length: {body_len}\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    breaks = len(lines)
    if head.count("\n") != breaks or head.count("\r") != breaks:
        raise UpstreamError("invalid request: a header name or value contains CR or LF")
    try:
        return head.encode()
    except UnicodeEncodeError as exc:
        raise UpstreamError(f"invalid request: header not encodable: {exc}") from None


class H1Response:
    """One exchange: the response head and the body as it arrives (implements ``UpstreamResponse``).

    The per-exchange timer serves both limits: non-streams fail once ``timeout`` has passed since the
    request went out, streams once nothing arrived for ``timeout``; and while ``iter_chunks(idle)``
    waits, the same timer wakes it for a keep-alive tick. It is re-armed only when it fires (or when a
    wait needs it earlier), so a busy stream costs one timer handle per ``idle`` or ``timeout`` period,
    not one per chunk.
    """

    __slots__ = (
        "_chunks",
        "_conn",
        "_deadline",
        "_decoder",
        "_done",
        "_failure",
        "_idle_at",
        "_last_data",
        "_loop",
        "_size",
        "_stream",
        "_timed_out",
        "_timeout",
        "_timer",
        "_timer_when",
        "_waiter",
        "headers",
        "received",
        "status",
    )

    def __init__(
        self, conn: H1Connection, loop: asyncio.AbstractEventLoop, timeout: float, stream: bool
    ) -> None:
        self._conn: H1Connection | None = conn
        self._loop = loop
        self.status = 0
        self.headers: Mapping[str, str] = {}
        #: some byte of the response arrived (an exchange that failed before that may be resent)
        self.received = False
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False
        self._failure: str | None = None
        self._timed_out = False
        self._decoder: BodyDecoder | None = None
        self._waiter: asyncio.Future[bool] | None = None
        self._idle_at: float | None = None
        self._stream = stream
        self._timeout = timeout
        now = loop.time()
        self._last_data = now
        self._deadline = now + timeout
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._arm(self._deadline)

    # --- the caller's side ------------------------------------------------------------------------------

    @property
    def timed_out(self) -> bool:
        return self._timed_out

    async def wait_head(self) -> None:
        """Until the head has arrived; raises UpstreamTimeout / UpstreamError (message without context)."""
        while not self.status:
            if self._failure is not None:
                if self._timed_out:
                    raise UpstreamTimeout(f"upstream did not answer within {self._timeout:g}s")
                raise UpstreamError(f"upstream request failed: {self._failure}")
            await self._wait(None)

    async def read(self) -> bytes:
        try:
            while not self._done:
                if self._failure is not None:
                    if self._timed_out:
                        raise UpstreamTimeout("upstream timed out while sending the response")
                    raise UpstreamError(f"upstream connection failed while reading: {self._failure}")
                await self._wait(None)
            chunks = self._chunks
            self._chunks = []
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        finally:
            self.close()

    async def iter_chunks(self, idle: float | None = None) -> AsyncIterator[bytes]:
        try:
            while True:
                if self._chunks:
                    yield self._take()
                elif self._done:
                    return
                elif self._failure is not None:
                    if self._timed_out:
                        raise UpstreamTimeout("upstream stream went silent longer than the timeout")
                    raise UpstreamError(f"upstream stream broke: {self._failure}")
                elif not await self._wait(idle):
                    yield b""
        except BaseException:
            # cancelled (the client went away) or closed early: the upstream must stop at once, whoever
            # holds this response and whether or not they close it
            self.close()
            raise

    def close(self) -> None:
        conn = self._conn
        if conn is not None:  # the body is still arriving: drop the connection, the upstream stops
            self._conn = None
            conn.abandon()
            self._set_failure("the response was closed before its body was complete")
        self._cancel_timer()

    def _take(self) -> bytes:
        chunks = self._chunks
        self._chunks = []
        self._size = 0
        conn = self._conn
        if conn is not None and conn.paused:
            conn.resume()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _wait(self, idle: float | None) -> bool:
        """Until something happens (True) or ``idle`` seconds pass without anything (False)."""
        waiter = self._waiter = self._loop.create_future()
        if idle is not None:
            self._idle_at = idle_at = self._loop.time() + idle
            self._arm(idle_at)
        try:
            woke: bool = await waiter
        finally:
            self._waiter = None
            self._idle_at = None
        return woke

    # --- the connection's side --------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def _on_head(self, head: ResponseHead) -> None:
        self.status = head.status
        self.headers = head.headers
        encoding = head.headers.get("content-encoding")
        if encoding is not None:
            encoding = encoding.strip().lower()
            if encoding in ("gzip", "x-gzip", "deflate"):
                self._decoder = BodyDecoder(encoding != "deflate")
        self._wake()

    def _on_data(self, data: bytes) -> bool:
        """Buffers a body chunk; returns True when the connection should stop reading for now."""
        decoder = self._decoder
        if decoder is not None:
            data = decoder.decode(data)
            if not data:
                return False
        self._chunks.append(data)
        self._size += len(data)
        self._wake()
        return self._size > _HIGH_WATER

    def _on_end(self) -> None:
        """The body is complete; raises ProtocolError (changing nothing) if it does not decode."""
        decoder = self._decoder
        if decoder is not None:
            tail = decoder.finish()
            if tail:
                self._chunks.append(tail)
        self._conn = None
        self._done = True
        self._cancel_timer()
        self._wake()

    def _set_failure(self, reason: str, timed_out: bool = False) -> None:
        if self._failure is None and not self._done:
            self._failure = reason
            self._timed_out = timed_out
        self._conn = None
        self._cancel_timer()
        self._wake()

    # --- the timer --------------------------------------------------------------------------------------

    def _arm(self, when: float) -> None:
        timer = self._timer
        if timer is not None:
            if self._timer_when <= when:
                return
            timer.cancel()
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        conn = self._conn
        if conn is None:
            return
        now = self._loop.time()
        deadline = self._last_data + self._timeout if self._stream else self._deadline
        if now + _SLACK >= deadline:
            conn.fail("timed out", timed_out=True)
            return
        idle_at = self._idle_at
        if idle_at is not None:
            if now + _SLACK >= idle_at:
                self._idle_at = None
                waiter = self._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(False)
            else:
                deadline = min(deadline, idle_at)
        self._arm(deadline)


class H1Connection(asyncio.Protocol):
    """One keep-alive connection to an upstream, owned by a :class:`~ccr_fast.upstream.h1_pool.HostPool`."""

    __slots__ = (
        "_loop",
        "_parser",
        "_pool",
        "_response",
        "_transport",
        "closed",
        "idle_since",
        "in_idle",
        "paused",
        "reused",
    )

    def __init__(self, pool: HostPool, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser: ResponseParser | None = None
        self._response: H1Response | None = None
        self.closed = False
        #: has carried an exchange before (so the server may have closed it meanwhile)
        self.reused = False
        self.paused = False
        #: managed by the pool: in its idle list, and since when
        self.in_idle = False
        self.idle_since = 0.0

    # --- exchanges --------------------------------------------------------------------------------------

    def send(
        self, head: bytes, body: bytes, *, timeout: float, stream: bool, head_request: bool
    ) -> H1Response:
        """Writes the request and returns the response it will fill."""
        transport = self._transport
        assert transport is not None and self._response is None
        response = H1Response(self, self._loop, timeout, stream)
        self._response = response
        self._parser = ResponseParser(head_request=head_request)
        if len(body) <= 65536:
            transport.write(head + body if body else head)
        else:
            transport.writelines((head, body))
        return response

    def fail(self, reason: str, *, timed_out: bool = False) -> None:
        """Ends the current exchange with an error and drops the connection."""
        response = self._response
        self._response = self._parser = None
        if response is not None:
            response._set_failure(reason, timed_out)
        self.abort()

    def abandon(self) -> None:
        """The caller gave up on the exchange: drop the connection now, unflushed bytes and all."""
        self._response = self._parser = None
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.abort()
            self._pool.forget(self)

    def resume(self) -> None:
        self.paused = False
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    # --- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike; both loops set TCP_NODELAY
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        response = self._response
        parser = self._parser
        if response is None or parser is None:  # nothing was asked: the connection is out of step
            self.abort()
            return
        response.received = True
        response._last_data = self._loop.time()
        try:
            for event in parser.feed(data):
                if type(event) is bytes:
                    if response._on_data(event) and not self.paused and self._transport is not None:
                        self.paused = True
                        self._transport.pause_reading()
                elif type(event) is ResponseHead:
                    response._on_head(event)
                else:
                    self._finish(response, parser)
        except ProtocolError as exc:
            self.fail(f"malformed upstream response: {exc}")

    def eof_received(self) -> bool:
        self._closed_by_peer(None)
        self.abort()  # at once, so the pool cannot hand out a half-closed connection meanwhile
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_by_peer(exc)
        self.closed = True
        self._transport = None
        self._pool.forget(self)

    def _closed_by_peer(self, exc: Exception | None) -> None:
        response = self._response
        parser = self._parser
        if response is None or parser is None:
            return
        try:
            events = parser.feed_eof()
        except ProtocolError as error:
            if not response.received:
                reason = "upstream closed the connection before answering"
            else:
                reason = f"upstream closed the connection mid-response ({error})"
            self.fail(reason if exc is None else f"{reason}: {exc}")
            return
        if events and isinstance(events[0], EndOfMessage):
            try:
                self._finish(response, parser)
            except ProtocolError as error:
                self.fail(f"malformed upstream response: {error}")

    def _finish(self, response: H1Response, parser: ResponseParser) -> None:
        """The response is complete: the connection goes back to the pool, or closes if not reusable."""
        response._on_end()
        self._response = self._parser = None
        self.reused = True
        if self.paused:
            self.resume()
        if parser.keep_alive and not parser.unused and not self.closed and self._transport is not None:
            self._pool.release(self)
        else:
            self.abort()
