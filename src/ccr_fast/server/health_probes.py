"""Active health checks: each worker wakes every second and probes the deployments that are due.

``HealthTracker.due_probes`` claims each due deployment in shared state, so across all workers every
deployment is probed once per interval. A probe lists the deployment's models with its own key (no
tokens spent); the verdict feeds the shared health state that the balancer reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ccr_fast.resilience import Deployment, probe_healthy, probe_request
from ccr_fast.upstream.transport import UpstreamError, UpstreamRequest

if TYPE_CHECKING:
    from ccr_fast.server.gateway import Gateway

log = logging.getLogger("ccr_fast.health")


def known_deployments(gw: Gateway) -> dict[str, Deployment]:
    """Every deployment a request could reach: pools, every Router slot and every fallback route."""
    routes: list[str] = list(gw.resilience.config.deployments)
    router = gw.config.router
    for route in (
        router.default,
        router.background,
        router.think,
        router.long_context,
        router.web_search,
        router.image,
    ):
        if route:
            routes.append(route)
    for chain in gw.config.fallback.values():
        routes.extend(chain)
    found: dict[str, Deployment] = {}
    for route in routes:
        if "," not in route:
            continue
        for d in gw.resilience.group(route).deployments:
            if gw.config.provider(d.provider) is not None:
                found.setdefault(d.name, d)
    return found


async def probe(gw: Gateway, d: Deployment, timeout: float) -> bool:
    provider = gw.config.provider(d.provider)
    if provider is None:
        return False
    plan = gw.plans.get(provider, d.model, api_key=d.api_key)
    req = probe_request(plan.endpoint, plan.url, plan.headers)
    upstream = UpstreamRequest(
        req.method,
        req.url,
        dict(req.headers),
        b"",
        timeout=timeout,
        provider=plan.provider,
        proxy=gw.config.proxy_url,
    )
    status: int | None
    try:
        if plan.auth is not None:  # Vertex AI's access token (an UpstreamError when there is none)
            await plan.auth.authorize(upstream, gw.transport)
        resp = await gw.transport.send(upstream)
    except UpstreamError:
        status = None
    else:
        status = resp.status
        resp.close()
    return probe_healthy(status)


async def run_active_probes(gw: Gateway, tick: float = 1.0) -> None:
    """Runs for the life of the worker; a no-op loop exit when active checks are off."""
    active = gw.resilience.config.health.active
    if not active.enabled:
        return
    health = gw.resilience.health
    deployments = known_deployments(gw)
    while True:
        await asyncio.sleep(tick)
        try:
            due = health.due_probes(deployments, time.monotonic())
            if not due:
                continue
            verdicts = await asyncio.gather(*(probe(gw, deployments[n], active.timeout) for n in due))
            now = time.monotonic()
            for name, healthy in zip(due, verdicts, strict=True):
                health.probe_result(name, healthy, now)
                if not healthy:
                    log.warning("health probe of %s failed", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("active health probes failed")
