"""Metrics endpoints: Prometheus text at /metrics, JSON views under /api/metrics, and a live SSE feed.

Every worker reads the same shared-memory numbers, so whichever worker answers reports all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccr_fast.observe.prometheus import CONTENT_TYPE
from ccr_fast.server.http import SSE_HEADERS, Request, Response, json_response

if TYPE_CHECKING:
    from ccr_fast.server.gateway import Gateway


async def metrics_prometheus(gw: Gateway, req: Request) -> Response:
    gw.metrics.reap_dead_workers()
    return Response(200, [("content-type", CONTENT_TYPE)], gw.metrics.prometheus())


async def metrics_realtime(gw: Gateway, req: Request) -> Response:
    return json_response(gw.metrics.realtime())


async def metrics_providers(gw: Gateway, req: Request) -> Response:
    return json_response(gw.metrics.providers())


async def metrics_sessions(gw: Gateway, req: Request) -> Response:
    return json_response(gw.metrics.sessions())


async def metrics_summary(gw: Gateway, req: Request) -> Response:
    return json_response(gw.metrics.summary())


async def metrics_stream(gw: Gateway, req: Request) -> Response:
    interval = 1.0
    for part in req.query.split("&"):
        name, _, value = part.partition("=")
        if name == "interval":
            try:
                interval = min(60.0, max(0.2, float(value)))
            except ValueError:
                pass
    return Response(200, list(SSE_HEADERS), stream=gw.metrics.stream(interval))
