"""Metrics endpoints: Prometheus text at /metrics, JSON views under /api/metrics, and a live SSE feed.

Every worker reads the same shared-memory numbers, so whichever worker answers reports all of them.
With ``State.backend: "redis"``, ``?scope=cluster`` on the realtime, providers and summary views answers
the totals of every machine instead (``ccr_fast.observe.cluster``); /metrics stays per instance, since
Prometheus scrapes every instance and sums them itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ccr_fast.observe import cluster_view
from ccr_fast.observe.prometheus import CONTENT_TYPE
from ccr_fast.protocol.errors import GatewayError
from ccr_fast.server.health_probes import known_deployments
from ccr_fast.server.http import SSE_HEADERS, Request, Response, json_response

if TYPE_CHECKING:
    from ccr_fast.observe.cluster_view import ClusterSnapshot
    from ccr_fast.server.gateway import Gateway


async def metrics_prometheus(gw: Gateway, req: Request) -> Response:
    gw.metrics.reap_dead_workers()
    return Response(200, [("content-type", CONTENT_TYPE)], gw.metrics.prometheus() + _resilience_metrics(gw))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _resilience_metrics(gw: Gateway) -> bytes:
    """Breaker state and health of every deployment, read from the shared state at scrape time."""
    now = time.monotonic()
    res = gw.resilience
    states = [
        "# HELP ccr_circuit_state Circuit breaker state per deployment (0 closed, 1 open, 2 half-open).",
        "# TYPE ccr_circuit_state gauge",
    ]
    healthy = [
        "# HELP ccr_deployment_healthy Whether health checks consider the deployment usable.",
        "# TYPE ccr_deployment_healthy gauge",
    ]
    for name in sorted(known_deployments(gw)):
        label = f'{{deployment="{_label(name)}"}}'
        states.append(f"ccr_circuit_state{label} {res.breakers.state(name, now).code}")
        healthy.append(f"ccr_deployment_healthy{label} {int(res.health.is_healthy(name, now))}")
    return ("\n".join(states + healthy) + "\n").encode()


def _query(req: Request, name: str) -> str | None:
    for part in req.query.split("&"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    return None


async def _cluster(gw: Gateway, req: Request, view: Callable[[ClusterSnapshot], Any]) -> Response | None:
    """The cluster-wide answer when the query asks for ``scope=cluster``; None for this instance's."""
    scope = _query(req, "scope")
    if scope is None or scope in ("", "instance"):
        return None
    if scope != "cluster":
        raise GatewayError(400, f'unknown scope {scope!r}: expected "instance" or "cluster"')
    if gw.cluster_metrics is None:
        raise GatewayError(
            400,
            'scope=cluster needs State.backend "redis"; this server\'s metrics are its own (scope=instance)',
        )
    snapshot = await gw.cluster_metrics.read()
    if snapshot is None:
        raise GatewayError(503, "the cluster metrics are unavailable: Redis cannot be reached", "api_error")
    return json_response(view(snapshot))


async def metrics_realtime(gw: Gateway, req: Request) -> Response:
    return await _cluster(gw, req, cluster_view.realtime) or json_response(gw.metrics.realtime())


async def metrics_providers(gw: Gateway, req: Request) -> Response:
    return await _cluster(gw, req, cluster_view.providers) or json_response(gw.metrics.providers())


async def metrics_sessions(gw: Gateway, req: Request) -> Response:
    return json_response(gw.metrics.sessions())


async def metrics_summary(gw: Gateway, req: Request) -> Response:
    return await _cluster(gw, req, cluster_view.summary) or json_response(gw.metrics.summary())


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
