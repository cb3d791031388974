"""The resilience config read in one go, and the per-worker objects that apply it.

:class:`ResilienceConfig` reads ccr-fast's top-level resilience keys (``retry``, ``circuitBreaker``,
``healthCheck``, ``loadBalancing``, ``failover``, ``deployments``) from the raw config and reports every
problem across all of them at once. :class:`Resilience` is built from it in each worker, on each config
snapshot: it holds no numbers of its own (those are in the state store, under names that survive a
reload), so swapping it on reload keeps breaker states, health and latency averages.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccr_fast.config.errors import Problem
from ccr_fast.config.reader import child
from ccr_fast.resilience._config import Reader
from ccr_fast.resilience.balancer import Balancer, BalancerConfig, DeploymentGroup, PickContext
from ccr_fast.resilience.circuit import BreakerConfig, CircuitBreakers
from ccr_fast.resilience.failover import AttemptPlan, FailoverConfig, failover_routes
from ccr_fast.resilience.health import HealthConfig, HealthTracker
from ccr_fast.resilience.retry import RetryBudget, RetryPolicy
from ccr_fast.resilience.store import StateStore

#: The top-level config keys this package reads.
CONFIG_KEYS = frozenset(
    {"retry", "circuitBreaker", "healthCheck", "loadBalancing", "failover", "deployments"}
)


@dataclass(frozen=True, slots=True)
class ResilienceConfig:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    balancer: BalancerConfig = field(default_factory=BalancerConfig)
    failover: FailoverConfig = field(default_factory=FailoverConfig)
    #: route -> its deployment pool; routes not listed are served by one deployment named after the route
    deployments: Mapping[str, DeploymentGroup] = field(default_factory=dict)
    #: unknown keys found in these sections
    warnings: tuple[Problem, ...] = ()

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> ResilienceConfig:
        """Read every resilience section of the raw config; raises ``ConfigError`` listing all problems."""
        reader = Reader()
        groups: dict[str, DeploymentGroup] = {}
        for route, value in reader.table("deployments", raw.get("deployments")).items():
            path = child("deployments", route)
            if reader.route(path, route) is not None:
                groups[route] = DeploymentGroup.read(reader, route, value, path)
        config = cls(
            retry=RetryPolicy.read(reader, raw.get("retry"), "retry"),
            breaker=BreakerConfig.read(reader, raw.get("circuitBreaker"), "circuitBreaker"),
            health=HealthConfig.read(reader, raw.get("healthCheck"), "healthCheck"),
            balancer=BalancerConfig.read(reader, raw.get("loadBalancing"), "loadBalancing"),
            failover=FailoverConfig.read(reader, raw.get("failover"), "failover"),
            deployments=groups,
            warnings=tuple(reader.warnings),
        )
        reader.finish(None)
        return config


class Resilience:
    """One worker's breakers, health, balancer and budgets over a shared state store; makes attempt plans."""

    __slots__ = ("_budgets", "_groups", "_rng", "_store", "balancer", "breakers", "config", "health")

    def __init__(self, config: ResilienceConfig, store: StateStore, rng: random.Random) -> None:
        self.config = config
        self._store = store
        self._rng = rng
        self.breakers = CircuitBreakers(config.breaker, store)
        self.health = HealthTracker(config.health, store)
        self.balancer = Balancer(config.balancer, store, rng, self.breakers, self.health)
        self._groups: dict[str, DeploymentGroup] = dict(config.deployments)
        self._budgets: dict[str, RetryBudget] = {}

    def group(self, route: str) -> DeploymentGroup:
        """The deployments serving ``route`` (built once per route and kept)."""
        group = self._groups.get(route)
        if group is None:
            group = self._groups[route] = DeploymentGroup.single(route)
        return group

    def budget(self, provider: str) -> RetryBudget | None:
        """The retry budget of ``provider``, or None when budgets are off."""
        settings = self.config.retry.budget
        if settings is None:
            return None
        found = self._budgets.get(provider)
        if found is None:
            found = self._budgets[provider] = RetryBudget(settings, self._store, provider)
        return found

    def plan(
        self,
        route: str,
        now: float,
        *,
        scenario: str = "default",
        fallback: Mapping[str, Sequence[str]] | None = None,
        long_context: str | None = None,
        ctx: PickContext | None = None,
    ) -> AttemptPlan:
        """The attempt plan of a request routed to ``route``.

        ``fallback`` is the config's CCR v2 ``fallback`` map and ``long_context`` its ``Router.longContext``
        route, tried on a context-window error when ``failover.contextWindowFallback`` is on.
        """
        chain = failover_routes(route, self.config.failover, scenario, fallback)
        longer = None
        if long_context is not None and self.config.failover.context_window_fallback:
            longer = self.group(long_context)
        return AttemptPlan(
            [self.group(r) for r in chain],
            self.config.retry,
            self.balancer,
            now,
            self._rng,
            ctx=ctx,
            budgets=self.budget,
            long_context=longer,
        )
