"""The lean HTTP/1.1 transport: :mod:`~ccr_fast.upstream.h1_client` connections behind the ``Transport`` seam.

It behaves like :class:`~ccr_fast.upstream.aiohttp_transport.AiohttpTransport` (same pools per provider,
same exceptions and messages, same response contract) at a fraction of the CPU per request. Requests
that must go through an outbound proxy are handed to an aiohttp transport, which speaks CONNECT.

Resending on a stale connection. A kept-alive connection can be closed by the server at the moment a
request is written to it; the client then sees the connection end with no response. The request is
sent once more, on a newly opened connection, only when all of these hold:

* the connection had already carried an exchange (a new connection failing is a real failure),
* not one byte of the response arrived (so nothing of it can have reached the caller),
* the failure was the connection closing or breaking, not a timeout (a slow upstream is not stale),
* the request is safe to resend: an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or an
  ``Idempotency-Key`` header. A POST may already be generating (and billing) upstream, so that
  decision is left to the gateway's retry policy, which sees the error.

The common case needs no resend at all: a server that closes an idle connection between requests is
noticed while the connection sits in the pool, and it is never handed out.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ccr_fast.config.model import Config
from ccr_fast.upstream.h1_client import H1Response, encode_request_head
from ccr_fast.upstream.h1_pool import HostPool
from ccr_fast.upstream.transport import (
    Transport,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
)

if TYPE_CHECKING:
    from ccr_fast.upstream.aiohttp_transport import AiohttpTransport

#: set to "aiohttp" to send upstream requests through aiohttp instead of this client
ENV_UPSTREAM_CLIENT = "CCR_FAST_UPSTREAM_CLIENT"
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))
_LOOPBACK = ("127.", "localhost", "::1", "[::1]")
#: parsed URLs remembered per (provider, URL); upstream URLs are few and repeat on every request
_MAX_ROUTES = 4096


@dataclass(frozen=True, slots=True)
class _Route:
    pool: HostPool
    #: the request target: path and query
    target: str


class FastTransport:
    """One :class:`HostPool` per (provider, scheme, host, port), ``pool_size`` connections each.

    ``ssl_context`` verifies HTTPS upstreams (default: the system's trust store); ``keepalive`` is
    how long an idle connection is kept.
    """

    def __init__(
        self,
        pool_size: int = 256,
        *,
        connect_timeout: float = 30.0,
        keepalive: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._ssl_context = ssl_context
        self._pools: dict[tuple[str, str, str, int], HostPool] = {}
        self._routes: dict[tuple[str, str], _Route] = {}
        self._proxied: AiohttpTransport | None = None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        route = self._routes.get((request.provider, request.url)) or self._route(request)
        pool = route.pool
        if request.proxy is not None and not pool.host.startswith(_LOOPBACK):
            return await self._via_proxy(request)
        method = request.method
        body = request.body
        head = encode_request_head(method, route.target, pool.host_line, request.headers, len(body))
        timeout = request.timeout
        loop = asyncio.get_running_loop()
        started = loop.time()
        conn = await pool.acquire(timeout)
        is_head = method == "HEAD"
        response = conn.send(head, body, timeout=timeout, stream=request.stream, head_request=is_head)
        try:
            return await _answered(response)
        except UpstreamError:
            if not (
                conn.reused and not response.received and not response.timed_out and _resendable(request)
            ):
                raise
        remaining = timeout if request.stream else timeout - (loop.time() - started)
        conn = await pool.acquire(remaining, fresh=True)
        response = conn.send(head, body, timeout=remaining, stream=request.stream, head_request=is_head)
        return await _answered(response)

    def idle_connections(self) -> int:
        """Kept-alive connections waiting in the pools, for metrics (and tests of the pooling)."""
        return sum(pool.idle_count for pool in self._pools.values())

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        self._routes = {}
        for pool in pools.values():
            pool.close()
        proxied, self._proxied = self._proxied, None
        if proxied is not None:
            await proxied.aclose()

    def _route(self, request: UpstreamRequest) -> _Route:
        parts = urlsplit(request.url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UpstreamError(f"unsupported upstream URL scheme: {request.url!r}")
        host = parts.hostname
        if not host:
            raise UpstreamError(f"upstream URL has no host: {request.url!r}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise UpstreamError(f"upstream URL has an invalid port: {request.url!r}") from None
        key = (request.provider, scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = HostPool(
                asyncio.get_running_loop(),
                host,
                port,
                self._tls() if scheme == "https" else None,
                limit=self._pool_size,
                keepalive=self._keepalive,
                connect_timeout=self._connect_timeout,
            )
            self._pools[key] = pool
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        route = _Route(pool, target)
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[(request.provider, request.url)] = route
        return route

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def _via_proxy(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._proxied is None:
            from ccr_fast.upstream.aiohttp_transport import AiohttpTransport  # only proxies need it

            self._proxied = AiohttpTransport(self._pool_size, connect_timeout=self._connect_timeout)
        return await self._proxied.send(request)


async def _answered(response: H1Response) -> H1Response:
    """``response`` once its head has arrived; dropped (connection and all) if that fails or is cancelled."""
    try:
        await response.wait_head()
    except BaseException:
        response.close()
        raise
    return response


def _resendable(request: UpstreamRequest) -> bool:
    if request.method in IDEMPOTENT_METHODS:
        return True
    return any(name.lower() == "idempotency-key" for name in request.headers)


def make_transport(config: Config) -> Transport:
    """The transport for this configuration: this client, or aiohttp when an outbound proxy is
    configured (every request would go through it) or ``CCR_FAST_UPSTREAM_CLIENT=aiohttp`` asks for it."""
    if config.proxy_url or os.environ.get(ENV_UPSTREAM_CLIENT) == "aiohttp":
        from ccr_fast.upstream.aiohttp_transport import AiohttpTransport  # imported only when used

        return AiohttpTransport(pool_size=config.upstream_pool_size)
    return FastTransport(pool_size=config.upstream_pool_size)
