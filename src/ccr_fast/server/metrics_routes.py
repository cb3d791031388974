"""Metrics endpoints: Prometheus text at /metrics, JSON views under /api/metrics, and a live SSE feed.

Every worker reads the same shared-memory numbers, so whichever worker answers reports all of them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ccr_fast.observe.prometheus import CONTENT_TYPE
from ccr_fast.server.health_probes import known_deployments
from ccr_fast.server.http import SSE_HEADERS, Request, Response, json_response

if TYPE_CHECKING:
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
