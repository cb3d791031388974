"""Keep-alive connections to one upstream origin, with a connection limit and idle expiry.

Idle connections are reused last-in first-out: the most recently used one is the least likely to
have been closed by the server, and the rarely needed ones age out at the bottom of the stack, where
one lazily re-armed timer per pool closes them after ``keepalive`` seconds. A connection the server
closes while idle leaves the pool as soon as the event loop reports it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from ccr_fast.upstream.h1_client import H1Connection
from ccr_fast.upstream.transport import UpstreamConnectError, UpstreamError, UpstreamTimeout


class HostPool:
    """Connections to ``host:port`` (over TLS when ``ssl_context`` is set), at most ``limit`` open at once."""

    __slots__ = (
        "_connect_timeout",
        "_connections",
        "_idle",
        "_keepalive",
        "_limit",
        "_loop",
        "_pending",
        "_ssl",
        "_sweeper",
        "_waiters",
        "host",
        "host_line",
        "port",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        *,
        limit: int,
        keepalive: float,
        connect_timeout: float,
    ) -> None:
        self._loop = loop
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._limit = limit
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        default_port = 443 if ssl_context is not None else 80
        authority = f"[{host}]" if ":" in host else host
        if port != default_port:
            authority = f"{authority}:{port}"
        #: the Host header, built once per origin
        self.host_line = f"host: {authority}\r\n"
        self._idle: deque[H1Connection] = deque()
        self._connections: set[H1Connection] = set()
        #: connections being opened; they count against the limit
        self._pending = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None

    async def acquire(self, timeout: float, *, fresh: bool = False) -> H1Connection:
        """A connection ready for an exchange: an idle one unless ``fresh``, else a new one.

        Waiting for a free slot and connecting both count against ``timeout``; connecting alone is
        also bounded by the pool's connect timeout. Raises UpstreamConnectError / UpstreamTimeout.
        """
        if not fresh:
            conn = self._take_idle()
            if conn is not None:
                return conn
        if self._has_room(fresh):
            return await self._connect(min(self._connect_timeout, timeout))
        return await self._wait_for_slot(timeout, fresh)

    def _take_idle(self) -> H1Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn.in_idle = False
            if not conn.closed:
                return conn
        return None

    def _has_room(self, fresh: bool) -> bool:
        """A new connection may be opened; for a ``fresh`` one, the oldest idle connection makes room."""
        if len(self._connections) + self._pending < self._limit:
            return True
        if fresh and self._idle:
            oldest = self._idle.popleft()
            oldest.in_idle = False
            oldest.abort()  # forget() frees its slot
            return len(self._connections) + self._pending < self._limit
        return False

    async def _wait_for_slot(self, timeout: float, fresh: bool) -> H1Connection:
        deadline = self._loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    waiter = self._loop.create_future()
                    self._waiters.append(waiter)
                    try:
                        await waiter
                    except BaseException:
                        if waiter.done() and not waiter.cancelled():
                            self._wake_one()  # a slot was handed to us too late: pass it on
                        raise
                    if not fresh:
                        conn = self._take_idle()
                        if conn is not None:
                            return conn
                    if self._has_room(fresh):
                        break
        except TimeoutError:
            raise UpstreamTimeout(
                f"no free connection to upstream {self.host}:{self.port} within {timeout:g}s"
            ) from None
        return await self._connect(min(self._connect_timeout, deadline - self._loop.time()))

    async def _connect(self, timeout: float) -> H1Connection:
        loop = self._loop
        self._pending += 1
        opened = False
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: H1Connection(self, loop),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
            opened = True
        except TimeoutError:
            raise UpstreamTimeout(
                f"cannot connect to upstream {self.host}:{self.port} within {timeout:g}s"
            ) from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to upstream {self.host}:{self.port}: {exc}") from exc
        finally:
            self._pending -= 1
            if not opened:
                self._wake_one()
        if conn.closed:
            raise UpstreamConnectError(f"upstream {self.host}:{self.port} closed the connection at once")
        self._connections.add(conn)
        return conn

    def release(self, conn: H1Connection) -> None:
        """Takes back a connection whose exchange ended cleanly."""
        conn.in_idle = True
        conn.idle_since = self._loop.time()
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(conn.idle_since + self._keepalive, self._sweep)
        self._wake_one()

    def forget(self, conn: H1Connection) -> None:
        """A connection closed (by either side); frees its slot. Safe to call more than once."""
        if conn in self._connections:
            self._connections.discard(conn)
            if conn.in_idle:
                conn.in_idle = False
                self._idle.remove(conn)
            self._wake_one()

    def close(self) -> None:
        """Drops every connection, idle or busy (their exchanges fail), and fails the waiters' wait."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:  # before the connections: each one closing would wake a waiter
            if not waiter.done():
                waiter.set_exception(UpstreamError("the connection pool was closed"))
        for conn in list(self._connections):
            conn.fail("the connection pool was closed")

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        self._sweeper = None
        idle = self._idle
        expired_before = self._loop.time() - self._keepalive
        while idle and idle[0].idle_since <= expired_before:
            conn = idle.popleft()
            conn.in_idle = False
            conn.abort()
        if idle:
            self._sweeper = self._loop.call_at(idle[0].idle_since + self._keepalive, self._sweep)
