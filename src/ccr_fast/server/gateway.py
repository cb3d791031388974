"""The interface-neutral gateway core: one Request in, one Response out.

Holds the immutable config snapshot and everything derived from it (router, transformer plans),
plus the upstream transport. The ASGI and RSGI adapters in ``app.py`` are thin shells around it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from ccr_fast import __version__
from ccr_fast.admission import AdmissionConfig, AdmissionController
from ccr_fast.config import Config, redact
from ccr_fast.observe.metrics import Metrics
from ccr_fast.protocol.anthropic_ids import new_request_id as new_request_id  # re-exported
from ccr_fast.protocol.errors import GatewayError
from ccr_fast.resilience import Resilience, ResilienceConfig
from ccr_fast.routing import Router, SessionUsage, load_custom_router
from ccr_fast.server.admin import list_circuits, open_circuit, reset_circuit
from ccr_fast.server.auth import ApiKeyAuth, is_public
from ccr_fast.server.chat_completions import handle_chat_completions
from ccr_fast.server.client_ip import ClientAddress
from ccr_fast.server.count_tokens import handle_count_tokens
from ccr_fast.server.http import Request, Response, error_response, json_response
from ccr_fast.server.messages import handle_messages
from ccr_fast.server.metrics_routes import (
    metrics_prometheus,
    metrics_providers,
    metrics_realtime,
    metrics_sessions,
    metrics_stream,
    metrics_summary,
)
from ccr_fast.state.shared import SharedState
from ccr_fast.state.store import ShmStore
from ccr_fast.transformers import PlanCache, describe_transformers
from ccr_fast.transformers.registry import endpoint_path
from ccr_fast.upstream.transport import Transport

if TYPE_CHECKING:
    from ccr_fast.admission.cluster_limits import Settlements
    from ccr_fast.observe.cluster import ClusterMetrics
    from ccr_fast.state.redis_backend import RedisBackend

log = logging.getLogger("ccr_fast.gateway")

Handler = Callable[["Gateway", Request], Awaitable[Response]]


class Gateway:
    def __init__(self, config: Config, transport: Transport, state: SharedState | None = None) -> None:
        self.config = config
        self.transport = transport
        #: shared with the other workers; a private segment when none is given (one process, e.g. tests)
        self.state = shared = state if state is not None else SharedState.local()
        self.sessions = SessionUsage()
        self.router = Router(
            config, sessions=self.sessions, custom=load_custom_router(config.custom_router_path)
        )
        self.plans = PlanCache(config)
        # breaker, health and balancer numbers live in shared memory so every worker sees the same ones
        self.resilience = Resilience(
            ResilienceConfig.from_config(config.raw), ShmStore(shared.table), random.Random()
        )
        admission = AdmissionConfig.from_config(config.raw)
        pricing = config.raw.get("Pricing")
        self.metrics = Metrics(shared, pricing=pricing if isinstance(pricing, Mapping) else None)
        #: rate limits and queues; None when nothing is configured (the hot path skips admission)
        self.admission: AdmissionController | None = None
        # Across machines (State.backend = "redis"): every limit and token budget is kept in Redis, and each
        # machine adds its metric totals there (ccr_fast.admission.cluster, ccr_fast.observe.cluster)
        self.redis: RedisBackend | None = None
        self.cluster_metrics: ClusterMetrics | None = None
        self._settlements: Settlements | None = None
        state_section = config.raw.get("State")
        if state_section is not None:  # redis-py is imported only by configs that mention State
            self.admission = self._cluster(admission, state_section, shared)
        if self.admission is None and admission.enabled:
            self.admission = AdmissionController(admission, shared)
        if self.admission is not None:
            self.metrics.watch_queue(self.admission.queue_counts)
        self.priority_header = admission.queue.priority_header
        keys = config.client_keys
        self.auth = ApiKeyAuth([(k.name, k.key) for k in keys]) if keys else None
        self.upstream_timeout = config.api_timeout_ms / 1000.0
        self.max_body_size = config.max_body_size
        self.keepalive_s = config.stream_keepalive_ms / 1000.0 if config.stream_keepalive_ms > 0 else None
        self.started_at = time.time()
        self.client_address = ClientAddress(config.trusted_proxies)
        self.path_prefix = config.path_prefix
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/messages"): handle_messages,
            ("POST", "/v1/messages/count_tokens"): handle_count_tokens,
            ("POST", "/v1/chat/completions"): handle_chat_completions,
            ("GET", "/"): _root,
            ("HEAD", "/"): _root,
            ("GET", "/health"): _health,
            ("HEAD", "/health"): _health,
            ("GET", "/api/config"): _get_config,
            ("GET", "/api/transformers"): _get_transformers,
            ("GET", "/api/circuits"): list_circuits,
            ("GET", "/metrics"): metrics_prometheus,
            ("GET", "/api/metrics/realtime"): metrics_realtime,
            ("GET", "/api/metrics/providers"): metrics_providers,
            ("GET", "/api/metrics/sessions"): metrics_sessions,
            ("GET", "/api/metrics/summary"): metrics_summary,
            ("GET", "/api/metrics/stream"): metrics_stream,
            ("POST", "/api/circuits/reset"): reset_circuit,
            ("POST", "/api/circuits/open"): open_circuit,
        }
        self._paths = {path for _, path in self._routes}

    async def handle(self, req: Request) -> Response:
        """Never raises: every failure becomes an Anthropic-shaped error response."""
        if self.client_address.enabled:
            req.client = self.client_address.resolve(req.client, req.headers)
        prefix = self.path_prefix
        if prefix and (req.path == prefix or req.path.startswith(prefix + "/")):
            req.path = req.path[len(prefix) :] or "/"
        try:
            handler = self._routes.get((req.method, req.path))
            if handler is None:
                path = req.path.rstrip("/") or "/"
                handler = self._routes.get((req.method, path))
            if handler is None:
                if (req.path.rstrip("/") or "/") in self._paths:
                    raise GatewayError(
                        405, f"method {req.method} not allowed on {req.path}", "invalid_request_error"
                    )
                raise GatewayError(404, f"no route for {req.method} {req.path}", "not_found_error")
            if self.auth is not None and not is_public(req.path):
                req.key = self.auth.check(req.headers)
                if req.path.startswith("/v1/"):  # the API, not the dashboards' and scrapers' reads
                    self.metrics.key_used(req.key)
            resp = await handler(self, req)
        except GatewayError as err:
            if err.status >= 500:
                log.warning(
                    "%s %s %s -> %d %s", req.request_id, req.method, req.path, err.status, err.message
                )
            else:
                log.info("%s %s %s -> %d %s", req.request_id, req.method, req.path, err.status, err.message)
            resp = error_response(err, req.request_id)
        except Exception:
            log.exception("%s %s %s: unhandled error", req.request_id, req.method, req.path)
            resp = error_response(
                GatewayError(500, "internal error in ccr-fast; see the server log", "api_error"),
                req.request_id,
            )
        else:
            if resp.stream is None:
                resp.headers.append(("request-id", req.request_id))
            return resp
        resp.headers.append(("request-id", req.request_id))
        return resp

    def _cluster(
        self, admission: AdmissionConfig, section: object, shared: SharedState
    ) -> AdmissionController | None:
        """The Redis backend and what uses it, when ``State.backend`` is "redis"; the admission it needs."""
        from ccr_fast.state.redis_backend import RedisBackend
        from ccr_fast.state.redis_backend import from_config as redis_from_config

        settings = redis_from_config(section)
        if settings is None:
            return None
        from ccr_fast.admission.cluster import ClusterAdmissionController
        from ccr_fast.admission.cluster_limits import ClusterLimits, Settlements
        from ccr_fast.observe.cluster import ClusterMetrics

        self.redis = redis = RedisBackend.from_settings(settings)
        self.cluster_metrics = ClusterMetrics(
            self.metrics, redis, shared, interval_ms=settings.metrics_interval_ms
        )
        if not admission.enabled:
            return None
        limits = ClusterLimits(redis, shared.table, settings.lease_size)
        self._settlements = Settlements(redis)
        return ClusterAdmissionController(admission, shared, limits, self._settlements)

    def background_jobs(self) -> list[Coroutine[Any, Any, None]]:
        """Per-worker background work the app runs while it serves (publishing cluster metrics)."""
        return [] if self.cluster_metrics is None else [self.cluster_metrics.run()]

    async def aclose(self) -> None:
        await self.transport.aclose()
        if self.redis is not None:
            if self._settlements is not None:
                await self._settlements.drain()  # usage booked by the last responses
            if self.cluster_metrics is not None:
                await self.cluster_metrics.publish()  # this machine's last requests into the totals
            await self.redis.aclose()


async def _root(gw: Gateway, req: Request) -> Response:
    return json_response({"message": "LLMs API", "name": "ccr-fast", "version": __version__})


async def _health(gw: Gateway, req: Request) -> Response:
    return json_response(
        {"status": "ok", "timestamp": time.time(), "uptime_s": round(time.time() - gw.started_at, 3)}
    )


async def _get_config(gw: Gateway, req: Request) -> Response:
    return json_response(redact(gw.config.raw))


async def _get_transformers(gw: Gateway, req: Request) -> Response:
    listed = describe_transformers()
    for name, plugin in gw.plans.plugins.items():
        endpoint = endpoint_path(plugin.cls.endpoint)
        listed.append(
            {
                "name": name,
                "endpoint": endpoint,
                "description": plugin.cls.describe(),
                "available": True,
                "plugin": plugin.source,
            }
        )
    return json_response({"transformers": listed})
