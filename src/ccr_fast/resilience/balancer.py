"""Choosing among the deployments of a route: which to try first, and the order of the rest.

A route (``"provider,model"``) can be served by several deployments: other keys of the same provider (an
API-key pool), other providers of the same model, other regions. :meth:`Balancer.pick` orders them:

1. deployments whose breaker is open are left out (an open breaker means "do not send");
2. the rest are probing (healthy, breaker half-open), ready (healthy, breaker closed) or unhealthy
   (ejected by passive health or marked down by probes);
3. probing then ready deployments are returned, ordered by the strategy. Probing ones come first because a
   probe is the only way a recovered deployment gets back into rotation (with a healthy alternative it
   would otherwise never be tried); the breaker admits only ``halfOpenMaxRequests`` of them at a time and a
   failed probe simply fails over to the next deployment in the list. Unhealthy ones are only returned
   when nothing else is left ("panic mode", as in Envoy): a deployment that recently failed is a better
   bet than a certain 503. When every breaker is open the list is empty and the caller answers at once.

With geo routing the order is first by region tier (the client region's preferred regions in order, then
``fallbackRegion``, then the rest), then by the strategy within a tier.

Strategies: ``round-robin`` (a shared counter: exact rotation across workers), ``weighted`` (weighted
random order, Efraimidis-Spirakis keys; weight 0 is a standby used only after the others),
``least-connections`` (fewest in-flight requests per unit of weight, counted across workers),
``response-time`` (peak-EWMA: the moving average of time to first token times in-flight + 1, so a fast
deployment takes load until it stops being fast), and ``cost-optimized`` (estimated request cost from the
model price table; ``priority`` ``speed`` or ``quality`` instead order by EWMA or by quality score, cost
breaking ties). Ties are broken at random with the injected RNG.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ccr_fast.config.errors import Problem
from ccr_fast.config.reader import child, describe
from ccr_fast.resilience._config import Reader
from ccr_fast.resilience.circuit import CircuitBreakers, CircuitState
from ccr_fast.resilience.health import HealthTracker
from ccr_fast.resilience.store import StateStore, update

Strategy = Literal["round-robin", "weighted", "least-connections", "response-time", "cost-optimized"]
Priority = Literal["cost", "speed", "quality"]
Metric = Literal["ttft", "latency"]
STRATEGIES: Mapping[str, Strategy] = {
    s: s for s in ("round-robin", "weighted", "least-connections", "response-time", "cost-optimized")
}
PRIORITIES: Mapping[str, Priority] = {p: p for p in ("cost", "speed", "quality")}
METRICS: Mapping[str, Metric] = {m: m for m in ("ttft", "latency")}

_BALANCER_KEYS = frozenset({"strategy", "metric", "ewmaAlpha", "priority", "geo", "models"})
_GEO_KEYS = frozenset({"header", "clientRegion", "regions", "fallbackRegion"})
_MODEL_KEYS = frozenset({"priceIn", "priceOut", "quality"})
_GROUP_KEYS = frozenset({"strategy", "deployments"})
_DEPLOYMENT_KEYS = frozenset(
    {"name", "provider", "model", "weight", "region", "priceIn", "priceOut", "quality", "apiKey"}
)
_TOKENS_PER_PRICE_UNIT = 1_000_000.0


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Price (USD per million tokens) and quality score of a model; None when unknown."""

    price_in: float | None = None
    price_out: float | None = None
    quality: float | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a route can be sent: a provider, a model there, and optionally its own key and region."""

    #: unique per group; breakers, health and balancing numbers are kept under this name
    name: str
    provider: str
    model: str
    weight: float = 1.0
    region: str | None = None
    #: overrides the price table (USD per million tokens) and quality score
    info: ModelInfo = field(default_factory=ModelInfo)
    #: the key this deployment uses instead of its provider's (API-key pools)
    api_key: str | None = field(default=None, repr=False)

    @property
    def route(self) -> str:
        return f"{self.provider},{self.model}"


@dataclass(frozen=True, slots=True)
class DeploymentGroup:
    """The deployments that serve one route, and optionally the strategy that balances them."""

    route: str
    deployments: tuple[Deployment, ...]
    strategy: Strategy | None = None

    @classmethod
    def single(cls, route: str) -> DeploymentGroup:
        """A route without a pool: one deployment named after the route itself."""
        provider, _, model = route.partition(",")
        return cls(route, (Deployment(route, provider, model),))

    @classmethod
    def read(cls, reader: Reader, route: str, value: object, path: str) -> DeploymentGroup:
        """A ``deployments`` entry: a list of deployments, or ``{strategy, deployments: [...]}``."""
        strategy: Strategy | None = None
        entries: object = value
        if isinstance(value, Mapping):
            reader.section(path, value, _GROUP_KEYS)
            strategy = reader.choice(child(path, "strategy"), value.get("strategy"), None, STRATEGIES)
            entries = value.get("deployments")
            path = child(path, "deployments")
        _, _, route_model = route.partition(",")
        deployments: list[Deployment] = []
        repeats: dict[str, int] = {}
        names: set[str] = set()
        listed = reader.sequence(path, entries, "a list of deployments")
        for i, entry in enumerate(listed):
            found = _deployment(reader, child(path, i), entry, route_model, repeats, names)
            if found is not None:
                deployments.append(found)
        if not listed and isinstance(entries, list | tuple):
            reader.error(path, "expected at least one deployment")
        return cls(route, tuple(deployments), strategy)


def _deployment(
    reader: Reader, path: str, value: object, route_model: str, repeats: dict[str, int], names: set[str]
) -> Deployment | None:
    if not isinstance(value, Mapping):
        reader.error(
            path, f"expected a deployment object such as {{provider, model, weight}}, got {describe(value)}"
        )
        return None
    found = reader.section(path, value, _DEPLOYMENT_KEYS) or value
    provider = reader.text(child(path, "provider"), found.get("provider"))
    if provider is None:
        if found.get("provider") in (None, ""):
            reader.error(child(path, "provider"), "missing")
        return None
    model = reader.text(child(path, "model"), found.get("model")) or route_model
    base = f"{provider},{model}"
    repeat = repeats[base] = repeats.get(base, 0) + 1
    # Several keys of one provider and model (an API-key pool) need distinct names for their breakers.
    name = reader.text(child(path, "name"), found.get("name")) or (
        base if repeat == 1 else f"{base}#{repeat}"
    )
    if name in names:
        reader.error(child(path, "name"), f"{describe(name)} is used by another deployment of this route")
    names.add(name)
    api_key = found.get("apiKey")
    if api_key is not None and not isinstance(api_key, str):
        reader.error(child(path, "apiKey"), f"expected a string, got {describe(api_key, secret=True)}")
        api_key = None
    return Deployment(
        name=name,
        provider=provider,
        model=model,
        weight=reader.number(child(path, "weight"), found.get("weight"), 1.0, 0.0),
        region=reader.text(child(path, "region"), found.get("region")),
        info=_model_info(reader, path, found),
        api_key=api_key or None,
    )


def _model_info(reader: Reader, path: str, found: Mapping[str, Any]) -> ModelInfo:
    def optional(key: str) -> float | None:
        if found.get(key) is None:
            return None
        return reader.number(child(path, key), found.get(key), 0.0, 0.0)

    return ModelInfo(optional("priceIn"), optional("priceOut"), optional("quality"))


@dataclass(frozen=True, slots=True)
class GeoConfig:
    """Geo routing: prefer deployments in the client's regions.

    ``regions`` maps a client region to deployment regions in order of preference; a client region not
    listed prefers deployments in a region of the same name. ``fallback_region`` comes next, then all the
    other deployments (a far answer beats none).
    """

    #: request header that names the client region (lower-case)
    header: str = "x-client-region"
    #: the client region when the header is absent
    client_region: str | None = None
    regions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fallback_region: str | None = None

    def region_of(self, headers: Mapping[str, str]) -> str | None:
        """The client region of a request (lower-case header names, as the server delivers them)."""
        return headers.get(self.header) or self.client_region

    def tier(self, region: str | None, client: str | None) -> int:
        preferred = self.regions.get(client, (client,)) if client else ()
        if region is not None:
            if region in preferred:
                return preferred.index(region)
            if region == self.fallback_region:
                return len(preferred)
        return len(preferred) + 1


@dataclass(frozen=True, slots=True)
class BalancerConfig:
    strategy: Strategy = "round-robin"
    #: what ``response-time`` (and ``priority: speed``) averages
    metric: Metric = "ttft"
    #: weight of the newest sample in the moving average
    ewma_alpha: float = 0.3
    #: what ``cost-optimized`` optimises for
    priority: Priority = "cost"
    geo: GeoConfig | None = None
    #: price and quality per model, keyed by ``"provider,model"`` or by model name
    models: Mapping[str, ModelInfo] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, value: object, path: str = "loadBalancing", warnings: list[Problem] | None = None
    ) -> BalancerConfig:
        """Read the ``loadBalancing`` section; raises ``ConfigError`` listing every problem."""
        reader = Reader()
        config = cls.read(reader, value, path)
        reader.finish(warnings)
        return config

    @classmethod
    def read(cls, reader: Reader, value: object, path: str) -> BalancerConfig:
        defaults = cls()
        found = reader.section(path, value, _BALANCER_KEYS)
        if found is None:
            return defaults
        models: dict[str, ModelInfo] = {}
        for key, entry in reader.table(child(path, "models"), found.get("models")).items():
            entry_path = child(child(path, "models"), key)
            info = reader.section(entry_path, entry, _MODEL_KEYS)
            if info is not None:
                models[key] = _model_info(reader, entry_path, info)
        return cls(
            strategy=reader.choice(
                child(path, "strategy"), found.get("strategy"), defaults.strategy, STRATEGIES
            ),
            metric=reader.choice(child(path, "metric"), found.get("metric"), defaults.metric, METRICS),
            ewma_alpha=reader.number(
                child(path, "ewmaAlpha"), found.get("ewmaAlpha"), defaults.ewma_alpha, 0.01, 1.0
            ),
            priority=reader.choice(
                child(path, "priority"), found.get("priority"), defaults.priority, PRIORITIES
            ),
            geo=_geo(reader, child(path, "geo"), found.get("geo")),
            models=models,
        )


def _geo(reader: Reader, path: str, value: object) -> GeoConfig | None:
    found = reader.section(path, value, _GEO_KEYS)
    if found is None:
        return None
    regions: dict[str, tuple[str, ...]] = {}
    for client, preferred in reader.table(child(path, "regions"), found.get("regions")).items():
        entry_path = child(child(path, "regions"), client)
        names = [
            reader.text(child(entry_path, i), name)
            for i, name in enumerate(reader.sequence(entry_path, preferred, "a list of regions"))
        ]
        regions[client] = tuple(n for n in names if n is not None)
    header = reader.text(child(path, "header"), found.get("header")) or GeoConfig().header
    return GeoConfig(
        header=header.lower(),
        client_region=reader.text(child(path, "clientRegion"), found.get("clientRegion")),
        regions=regions,
        fallback_region=reader.text(child(path, "fallbackRegion"), found.get("fallbackRegion")),
    )


@dataclass(frozen=True, slots=True)
class PickContext:
    """What the balancer may know about the request being placed."""

    client_region: str | None = None
    #: token estimates for ``cost-optimized`` (the input count, and max_tokens or a guess for output)
    input_tokens: int = 0
    output_tokens: int = 0
    #: overrides ``BalancerConfig.priority`` for this request
    priority: Priority | None = None
    #: deployment names already tried by this request
    exclude: frozenset[str] = frozenset()


class _Keys:
    __slots__ = ("ewma", "in_flight")

    def __init__(self, name: str) -> None:
        self.in_flight = f"lb:{name}:in_flight"
        self.ewma = f"lb:{name}:ewma"


class Balancer:
    """Orders deployments (see the module docstring) and keeps their in-flight counts and latency averages."""

    __slots__ = ("_keys", "_rng", "_rotation", "_store", "breakers", "config", "health")

    def __init__(
        self,
        config: BalancerConfig,
        store: StateStore,
        rng: random.Random,
        breakers: CircuitBreakers | None = None,
        health: HealthTracker | None = None,
    ) -> None:
        self.config = config
        self.breakers = breakers
        self.health = health
        self._store = store
        self._rng = rng
        self._keys: dict[str, _Keys] = {}
        self._rotation: dict[str, str] = {}

    def _of(self, name: str) -> _Keys:
        keys = self._keys.get(name)
        if keys is None:
            keys = self._keys[name] = _Keys(name)
        return keys

    def pick(self, group: DeploymentGroup, now: float, ctx: PickContext | None = None) -> list[Deployment]:
        """The group's usable deployments, best first."""
        ctx = ctx or PickContext()
        ready: list[Deployment] = []
        probing: list[Deployment] = []
        unhealthy: list[Deployment] = []
        for d in group.deployments:
            if d.name in ctx.exclude:
                continue
            state = self.breakers.state(d.name, now) if self.breakers is not None else CircuitState.CLOSED
            if state is CircuitState.OPEN:
                continue
            if self.health is not None and not self.health.is_healthy(d.name, now):
                unhealthy.append(d)
            elif state is CircuitState.HALF_OPEN:
                probing.append(d)
            else:
                ready.append(d)
        strategy = group.strategy or self.config.strategy
        turn = 0
        if strategy == "round-robin" and len(group.deployments) > 1:
            key = self._rotation.get(group.route)
            if key is None:
                key = self._rotation[group.route] = f"lb:{group.route}:turn"
            turn = int(self._store.add(key, 1.0)) - 1
        if ready or probing:
            return self._order(probing, strategy, turn, ctx) + self._order(ready, strategy, turn, ctx)
        return self._order(unhealthy, strategy, turn, ctx)

    def _order(
        self, deployments: list[Deployment], strategy: Strategy, turn: int, ctx: PickContext
    ) -> list[Deployment]:
        if len(deployments) < 2:
            return deployments
        geo = self.config.geo
        if geo is None:
            return self._by_strategy(deployments, strategy, turn, ctx)
        client = ctx.client_region or geo.client_region
        tiers: dict[int, list[Deployment]] = {}
        for d in deployments:
            tiers.setdefault(geo.tier(d.region, client), []).append(d)
        ordered: list[Deployment] = []
        for tier in sorted(tiers):
            ordered += self._by_strategy(tiers[tier], strategy, turn, ctx)
        return ordered

    def _by_strategy(
        self, deployments: list[Deployment], strategy: Strategy, turn: int, ctx: PickContext
    ) -> list[Deployment]:
        if len(deployments) < 2:
            return deployments
        rnd = self._rng.random
        if strategy == "round-robin":
            start = turn % len(deployments)
            return deployments[start:] + deployments[:start]
        if strategy == "weighted":
            # Efraimidis-Spirakis: sorting by u ** (1 / w) is a weighted random order without replacement.
            return sorted(
                deployments, key=lambda d: rnd() ** (1.0 / d.weight) if d.weight > 0 else -1.0, reverse=True
            )
        if strategy == "least-connections":
            return sorted(deployments, key=lambda d: (self._load(d), rnd()))
        if strategy == "response-time":
            latency = self._latencies(deployments)
            return sorted(
                deployments, key=lambda d: (latency[d.name] * (self.in_flight(d.name) + 1.0), rnd())
            )
        return self._by_priority(deployments, ctx)

    def _by_priority(self, deployments: list[Deployment], ctx: PickContext) -> list[Deployment]:
        rnd = self._rng.random
        priority = ctx.priority or self.config.priority
        cost = {d.name: self._cost(d, ctx) for d in deployments}
        if priority == "speed":
            latency = self._latencies(deployments)
            return sorted(deployments, key=lambda d: (latency[d.name], cost[d.name], rnd()))
        if priority == "quality":
            quality = {d.name: self.model_info(d).quality for d in deployments}
            return sorted(deployments, key=lambda d: (-(quality[d.name] or 0.0), cost[d.name], rnd()))
        return sorted(deployments, key=lambda d: (cost[d.name], rnd()))

    def _load(self, d: Deployment) -> float:
        return self.in_flight(d.name) / d.weight if d.weight > 0 else math.inf

    def _latencies(self, deployments: list[Deployment]) -> dict[str, float]:
        """Each deployment's average; one never measured gets the best measured one (or 1 s when none is),
        so it is tried soon but not flooded before its first answer comes back."""
        measured = {d.name: self.ewma(d.name) for d in deployments}
        known = [v for v in measured.values() if v > 0]
        default = min(known) if known else 1.0
        return {name: value if value > 0 else default for name, value in measured.items()}

    def _cost(self, d: Deployment, ctx: PickContext) -> float:
        info = self.model_info(d)
        if info.price_in is None or info.price_out is None:
            return math.inf
        return (
            info.price_in * ctx.input_tokens + info.price_out * ctx.output_tokens
        ) / _TOKENS_PER_PRICE_UNIT

    def model_info(self, d: Deployment) -> ModelInfo:
        """The deployment's price and quality: its own fields, else the table by route, else by model."""
        table = self.config.models.get(d.route) or self.config.models.get(d.model) or ModelInfo()
        own = d.info
        return ModelInfo(
            own.price_in if own.price_in is not None else table.price_in,
            own.price_out if own.price_out is not None else table.price_out,
            own.quality if own.quality is not None else table.quality,
        )

    def in_flight(self, name: str) -> float:
        return self._store.get(self._of(name).in_flight)

    def ewma(self, name: str) -> float:
        """The moving average of the configured metric in seconds; 0 when never measured."""
        return self._store.get(self._of(name).ewma)

    def record_start(self, d: Deployment) -> None:
        """A request was committed to ``d``; it is in flight from now on, a retry's backoff wait included."""
        self._store.add(self._of(d.name).in_flight, 1.0)

    def record_end(
        self, d: Deployment, ok: bool, latency: float | None = None, ttft: float | None = None
    ) -> None:
        """The request committed to ``d`` is over; a successful one feeds the moving average.

        Failures do not: a deployment that fails fast would otherwise look fast. Keeping failing
        deployments out is the job of health and breakers.
        """
        keys = self._of(d.name)
        if self._store.add(keys.in_flight, -1.0) < 0.0:
            self._store.set(keys.in_flight, 0.0)  # the start was counted before the store was reset
        sample = latency if self.config.metric == "latency" or ttft is None else ttft
        if not ok or sample is None:
            return
        sample = max(sample, 1e-6)  # zero means "never measured"
        alpha = self.config.ewma_alpha
        update(self._store, keys.ewma, lambda old: sample if old <= 0 else old + alpha * (sample - old))

    def stats(self, name: str) -> dict[str, float]:
        return {"in_flight": self.in_flight(name), "ewma": self.ewma(name)}
