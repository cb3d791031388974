"""One app object that Granian can serve over ASGI (the reference interface) or RSGI (faster).

Both adapters do the same four things: read the body under the size limit, build a Request, hand
it to the Gateway, and send the Response — streaming it while watching for the client going away.
A disconnect cancels the handling task, which closes the upstream response (and so stops the upstream
generating). Granian silently drops sends after a disconnect, so we must watch receive() /
client_disconnect() ourselves. The watcher is armed only once a request has been running for
``WATCH_AFTER_S``: most requests finish sooner, and a watcher (a task around Granian's future) per
request costs more than everything else the server adapter does. A disconnect that happened earlier is
seen the moment the watcher is armed, so a client that goes away never waits longer than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.server.gateway import Gateway, new_request_id
from ccr_fast.server.health_probes import run_active_probes
from ccr_fast.server.http import CLIENT_CLOSED, Request, Response, error_response

log = logging.getLogger("ccr_fast.app")

#: how long a request runs before a disconnect watcher is armed for it
WATCH_AFTER_S = 0.02

ASGIScope = dict[str, Any]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


def _too_large(limit: int, request_id: str) -> Response:
    err = GatewayError(413, f"request body exceeds the limit of {limit} bytes", "request_too_large")
    resp = error_response(err, request_id)
    resp.headers.append(("request-id", request_id))
    return resp


async def _finish_stream(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # already failing; the stream's own finally blocks have logged it
            log.debug("error while closing a stream", exc_info=True)


class App:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._background: list[asyncio.Task[None]] = []

    def _start_background(self, loop: asyncio.AbstractEventLoop) -> None:
        """Per-worker background work (health probes, the gateway's own jobs), started once the loop runs."""
        if not self._background:
            self._background.append(loop.create_task(run_active_probes(self.gateway)))
            self._background.extend(loop.create_task(job) for job in self.gateway.background_jobs())

    async def _stop_background(self) -> None:
        tasks, self._background = self._background, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._asgi_http(scope, receive, send)
        elif kind == "lifespan":
            await self._asgi_lifespan(receive, send)

    async def _asgi_lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self._start_background(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self._stop_background()
                await self.gateway.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _asgi_http(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        request_id = new_request_id()
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        limit = self.gateway.max_body_size
        try:
            body = await _asgi_body(receive, headers, limit)
        except BodyTooLarge:
            await _asgi_send(send, _too_large(limit, request_id), head=False)
            return
        except ConnectionError:
            return
        client = scope.get("client")
        req = Request(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            body,
            client[0] if client else "",
            request_id,
        )

        async def watch() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return

        await _serve_watched(
            self.gateway, req, watch, lambda resp: _asgi_send(send, resp, req.method == "HEAD")
        )

    # ------------------------------------------------------------------ RSGI
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._start_background(loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.run_until_complete(self._stop_background())
            loop.run_until_complete(self.gateway.aclose())
        except Exception:
            log.debug("error closing upstream pools", exc_info=True)

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        request_id = new_request_id()
        pairs = scope.headers.items()  # lower-case names: Granian's HTTP stack normalises them
        headers = dict(pairs)
        if len(headers) != len(pairs):  # a repeated header: join the values, as the ASGI adapter does
            headers = _joined(pairs)
        limit = self.gateway.max_body_size
        try:
            body = await _rsgi_body(protocol, headers, limit)
        except BodyTooLarge:
            resp = _too_large(limit, request_id)
            protocol.response_bytes(resp.status, resp.headers, resp.body)
            return
        client = scope.client or ""
        if client.startswith("[") and "]" in client:  # [v6]:port
            host = client[1 : client.index("]")]
        else:
            host = client.rsplit(":", 1)[0] if client.count(":") == 1 else client
        req = Request(scope.method, scope.path, scope.query_string, headers, body, host, request_id)
        await _serve_watched(
            self.gateway,
            req,
            protocol.client_disconnect,
            lambda resp: _rsgi_send(protocol, resp, req.method == "HEAD"),
        )


def _joined(pairs: list[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _serve_watched(
    gateway: Gateway,
    req: Request,
    disconnected: Callable[[], Awaitable[None]],
    sender: Callable[[Response], Awaitable[None]],
) -> None:
    """Run handle+send in this task; once armed, a watcher cancels it the moment the client disconnects."""
    task = asyncio.current_task()
    assert task is not None
    loop = task.get_loop()
    gone = False
    done = False
    watcher: asyncio.Future[None] | None = None

    def on_disconnect(fut: asyncio.Future[None]) -> None:
        nonlocal gone
        if done:
            return
        if not fut.cancelled() and fut.exception() is None:
            gone = True
            task.cancel()

    def arm() -> None:
        nonlocal watcher
        if not done:
            watcher = asyncio.ensure_future(disconnected())
            watcher.add_done_callback(on_disconnect)

    timer = loop.call_later(WATCH_AFTER_S, arm)
    resp: Response | None = None
    status = CLIENT_CLOSED
    try:
        resp = await gateway.handle(req)
        await sender(resp)
        done = True
        status = resp.status
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        log.info("%s client disconnected; upstream request cancelled", req.request_id)
    finally:
        done = True
        timer.cancel()
        if watcher is not None:
            watcher.remove_done_callback(on_disconnect)
            watcher.cancel()
        if resp is not None:
            if resp.stream is not None:
                await _finish_stream(resp.stream)
            if resp.on_complete is not None:
                try:
                    resp.on_complete(status if not gone else CLIENT_CLOSED)
                except Exception:
                    log.exception("%s accounting failed", req.request_id)


async def _asgi_body(receive: ASGIReceive, headers: dict[str, str], limit: int) -> bytes:
    cl = headers.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > limit:
        raise BodyTooLarge
    first = await receive()
    if first["type"] == "http.disconnect":
        raise ConnectionError
    body: bytes = first.get("body", b"")
    if not first.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge
        return body
    buf = bytearray(body)
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ConnectionError
        buf += msg.get("body", b"")
        if len(buf) > limit:
            raise BodyTooLarge
        if not msg.get("more_body", False):
            return bytes(buf)


async def _rsgi_body(protocol: Any, headers: dict[str, str], limit: int) -> bytes:
    cl = headers.get("content-length")
    if cl is not None and cl.isdigit():
        if int(cl) > limit:
            raise BodyTooLarge
        data: bytes = await protocol()
        return data
    buf = bytearray()
    async for chunk in protocol:
        buf += chunk
        if len(buf) > limit:
            raise BodyTooLarge
    return bytes(buf)


async def _asgi_send(send: ASGISend, resp: Response, head: bool) -> None:
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers]
    await send({"type": "http.response.start", "status": resp.status, "headers": raw_headers})
    if resp.stream is None or head:
        await send({"type": "http.response.body", "body": b"" if head else resp.body})
        return
    async for chunk in resp.stream:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _rsgi_send(protocol: Any, resp: Response, head: bool) -> None:
    if resp.stream is None or head:
        protocol.response_bytes(resp.status, resp.headers, b"" if head else resp.body)
        return
    transport = protocol.response_stream(resp.status, resp.headers)
    async for chunk in resp.stream:
        await transport.send_bytes(chunk)
