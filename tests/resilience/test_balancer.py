from __future__ import annotations

import random
from collections import Counter

import pytest

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.resilience._config import Reader
from ccr_fast.resilience.balancer import (
    Balancer,
    BalancerConfig,
    Deployment,
    DeploymentGroup,
    GeoConfig,
    ModelInfo,
    PickContext,
)
from ccr_fast.resilience.circuit import BreakerConfig, CircuitBreakers
from ccr_fast.resilience.health import HealthConfig, HealthTracker
from ccr_fast.resilience.outcome import Outcome
from ccr_fast.resilience.store import InProcessStore


def dep(name: str, weight: float = 1.0, region: str | None = None, **info: float) -> Deployment:
    return Deployment(name, "p", name, weight, region, ModelInfo(**info))


def group(*deployments: Deployment, strategy: str | None = None) -> DeploymentGroup:
    return DeploymentGroup("p,m", deployments, strategy)  # type: ignore[arg-type]


def names(deployments: list[Deployment]) -> list[str]:
    return [d.name for d in deployments]


def balancer(
    config: BalancerConfig | None = None,
    store: InProcessStore | None = None,
    seed: int = 1,
    breakers: CircuitBreakers | None = None,
    health: HealthTracker | None = None,
) -> Balancer:
    return Balancer(
        config or BalancerConfig(), store or InProcessStore(), random.Random(seed), breakers, health
    )


A, B, C = dep("a"), dep("b"), dep("c")

# --- round-robin ------------------------------------------------------------------------------------------


def test_round_robin_rotates_exactly() -> None:
    b = balancer()
    picks = [names(b.pick(group(A, B, C), 0.0)) for _ in range(4)]
    assert picks == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    firsts = Counter(b.pick(group(A, B, C), 0.0)[0].name for _ in range(300))
    assert firsts == {"a": 100, "b": 100, "c": 100}


def test_round_robin_turn_is_shared_by_workers() -> None:
    store = InProcessStore()
    worker_a, worker_b = balancer(store=store), balancer(store=store)
    firsts = [(worker_a if i % 2 else worker_b).pick(group(A, B, C), 0.0)[0].name for i in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]


# --- weighted ---------------------------------------------------------------------------------------------


def test_weighted_follows_the_weights() -> None:
    b = balancer(BalancerConfig(strategy="weighted"), seed=42)
    pool = group(dep("heavy", 3.0), dep("light", 1.0))
    firsts = Counter(b.pick(pool, 0.0)[0].name for _ in range(4000))
    assert firsts["heavy"] / 4000 == pytest.approx(0.75, abs=0.03)


def test_weighted_three_ways() -> None:
    b = balancer(BalancerConfig(strategy="weighted"), seed=7)
    pool = group(dep("x", 5.0), dep("y", 3.0), dep("z", 2.0))
    firsts = Counter(b.pick(pool, 0.0)[0].name for _ in range(5000))
    assert firsts["x"] / 5000 == pytest.approx(0.5, abs=0.03)
    assert firsts["y"] / 5000 == pytest.approx(0.3, abs=0.03)
    assert firsts["z"] / 5000 == pytest.approx(0.2, abs=0.03)


def test_weight_zero_is_a_standby() -> None:
    b = balancer(BalancerConfig(strategy="weighted"))
    pool = group(dep("standby", 0.0), dep("x"), dep("y"))
    assert all(b.pick(pool, 0.0)[-1].name == "standby" for _ in range(200))


def test_weighted_is_reproducible_with_a_seed() -> None:
    pool = group(dep("x", 2.0), dep("y"), dep("z"))
    runs = [[names(balancer(BalancerConfig(strategy="weighted"), seed=5).pick(pool, 0.0))] for _ in range(2)]
    assert runs[0] == runs[1]


# --- least-connections ------------------------------------------------------------------------------------


def test_least_connections_prefers_the_idlest() -> None:
    b = balancer(BalancerConfig(strategy="least-connections"))
    for d in (A, A, B):
        b.record_start(d)
    assert names(b.pick(group(A, B, C), 0.0)) == ["c", "b", "a"]
    b.record_end(A, ok=True)
    b.record_end(A, ok=True)
    b.record_start(C)
    b.record_start(C)
    assert names(b.pick(group(A, B, C), 0.0)) == ["a", "b", "c"]


def test_least_connections_counts_per_unit_of_weight() -> None:
    b = balancer(BalancerConfig(strategy="least-connections"))
    big, small = dep("big", 4.0), dep("small", 1.0)
    for _ in range(3):
        b.record_start(big)
    b.record_start(small)
    assert b.pick(group(big, small), 0.0)[0].name == "big"  # 3/4 < 1/1


def test_in_flight_counts_are_shared_and_never_negative() -> None:
    store = InProcessStore()
    worker_a, worker_b = balancer(store=store), balancer(store=store)
    worker_a.record_start(A)
    worker_b.record_start(A)
    assert worker_a.in_flight("a") == 2.0
    worker_a.record_end(A, ok=True)
    worker_b.record_end(A, ok=True)
    worker_b.record_end(A, ok=True)
    assert worker_a.in_flight("a") == 0.0


def test_least_connections_breaks_ties_at_random() -> None:
    b = balancer(BalancerConfig(strategy="least-connections"), seed=3)
    firsts = Counter(b.pick(group(A, B), 0.0)[0].name for _ in range(400))
    assert firsts["a"] > 150 and firsts["b"] > 150


# --- response-time ----------------------------------------------------------------------------------------


def test_ewma_moves_towards_new_samples() -> None:
    b = balancer(BalancerConfig(ewma_alpha=0.5))
    b.record_start(A)
    b.record_end(A, ok=True, latency=9.0, ttft=1.0)
    assert b.ewma("a") == 1.0  # the first sample is taken as is
    b.record_start(A)
    b.record_end(A, ok=True, latency=9.0, ttft=3.0)
    assert b.ewma("a") == 2.0


def test_ewma_metric_latency_and_ttft_fallback() -> None:
    by_latency = balancer(BalancerConfig(metric="latency"))
    by_latency.record_end(A, ok=True, latency=4.0, ttft=1.0)
    assert by_latency.ewma("a") == 4.0
    by_ttft = balancer(BalancerConfig(metric="ttft"))
    by_ttft.record_end(A, ok=True, latency=4.0)  # a non-streamed answer: its first byte is its end
    assert by_ttft.ewma("a") == 4.0


def test_failures_do_not_feed_the_average() -> None:
    b = balancer()
    b.record_end(A, ok=True, ttft=2.0)
    b.record_end(A, ok=False, ttft=0.01)
    assert b.ewma("a") == 2.0


def test_response_time_prefers_the_faster() -> None:
    b = balancer(BalancerConfig(strategy="response-time"))
    b.record_end(A, ok=True, ttft=2.0)
    b.record_end(B, ok=True, ttft=0.5)
    b.record_end(C, ok=True, ttft=1.0)
    assert names(b.pick(group(A, B, C), 0.0)) == ["b", "c", "a"]


def test_response_time_weighs_in_flight_requests() -> None:
    b = balancer(BalancerConfig(strategy="response-time"))
    b.record_end(A, ok=True, ttft=1.0)
    b.record_end(B, ok=True, ttft=0.5)
    for _ in range(3):
        b.record_start(B)  # 0.5 * 4 = 2.0 > 1.0 * 1
    assert b.pick(group(A, B), 0.0)[0].name == "a"


def test_response_time_tries_unmeasured_deployments_as_the_best_known() -> None:
    b = balancer(BalancerConfig(strategy="response-time"))
    b.record_end(A, ok=True, ttft=1.0)
    b.record_end(B, ok=True, ttft=3.0)
    order = names(b.pick(group(A, B, C), 0.0))
    assert order[-1] == "b"
    assert set(order[:2]) == {"a", "c"}


# --- cost-optimized ---------------------------------------------------------------------------------------


PRICED = (
    dep("cheap-in", price_in=0.1, price_out=10.0),
    dep("cheap-out", price_in=5.0, price_out=0.5),
    dep("unpriced"),
)


def test_cost_orders_by_estimated_cost() -> None:
    b = balancer(BalancerConfig(strategy="cost-optimized"))
    long_prompt = PickContext(input_tokens=100_000, output_tokens=1_000)
    long_answer = PickContext(input_tokens=1_000, output_tokens=100_000)
    assert names(b.pick(group(*PRICED), 0.0, long_prompt)) == ["cheap-in", "cheap-out", "unpriced"]
    assert names(b.pick(group(*PRICED), 0.0, long_answer)) == ["cheap-out", "cheap-in", "unpriced"]


def test_speed_priority_orders_by_the_average() -> None:
    b = balancer(BalancerConfig(strategy="cost-optimized", priority="speed"))
    b.record_end(PRICED[0], ok=True, ttft=2.0)
    b.record_end(PRICED[1], ok=True, ttft=1.0)
    b.record_end(PRICED[2], ok=True, ttft=0.5)
    assert names(b.pick(group(*PRICED), 0.0)) == ["unpriced", "cheap-out", "cheap-in"]


def test_quality_priority_with_cost_breaking_ties() -> None:
    b = balancer(BalancerConfig(strategy="cost-optimized"))
    pool = group(
        dep("good", quality=80, price_in=3.0, price_out=15.0),
        dep("good-cheap", quality=80, price_in=1.0, price_out=5.0),
        dep("best", quality=95, price_in=15.0, price_out=75.0),
        dep("unrated", price_in=0.1, price_out=0.1),
    )
    ctx = PickContext(input_tokens=1000, output_tokens=1000, priority="quality")
    assert names(b.pick(pool, 0.0, ctx)) == ["best", "good-cheap", "good", "unrated"]


def test_price_table_by_route_then_model_with_deployment_overrides() -> None:
    config = BalancerConfig(
        strategy="cost-optimized",
        models={"or,deepseek-chat": ModelInfo(1.0, 1.0), "deepseek-chat": ModelInfo(0.2, 0.2, 50.0)},
    )
    b = balancer(config)
    via_router = Deployment("or", "or", "deepseek-chat")
    direct = Deployment("ds", "deepseek", "deepseek-chat")
    overridden = Deployment("own", "x", "deepseek-chat", info=ModelInfo(price_in=0.05))
    assert b.model_info(via_router) == ModelInfo(1.0, 1.0, None)
    assert b.model_info(direct) == ModelInfo(0.2, 0.2, 50.0)
    assert b.model_info(overridden) == ModelInfo(0.05, 0.2, 50.0)
    ctx = PickContext(input_tokens=1000, output_tokens=1000)
    assert names(b.pick(group(via_router, direct, overridden), 0.0, ctx)) == ["own", "ds", "or"]


# --- geo --------------------------------------------------------------------------------------------------

GEO = GeoConfig(regions={"eu": ("eu-west", "eu-central")}, fallback_region="us-east")
REGIONAL = (
    dep("us-e", region="us-east"),
    dep("eu-c", region="eu-central"),
    dep("ap", region="ap-south"),
    dep("eu-w", region="eu-west"),
    dep("global"),
)


def test_geo_prefers_the_client_regions_in_order_then_the_fallback() -> None:
    b = balancer(BalancerConfig(geo=GEO))
    order = names(b.pick(group(*REGIONAL), 0.0, PickContext(client_region="eu")))
    assert order[:3] == ["eu-w", "eu-c", "us-e"]
    assert set(order[3:]) == {"ap", "global"}


def test_geo_unlisted_client_region_prefers_its_own_name() -> None:
    b = balancer(BalancerConfig(geo=GEO))
    assert names(b.pick(group(*REGIONAL), 0.0, PickContext(client_region="ap-south")))[:2] == ["ap", "us-e"]


def test_geo_without_a_client_region_starts_at_the_fallback() -> None:
    b = balancer(BalancerConfig(geo=GEO))
    assert b.pick(group(*REGIONAL), 0.0)[0].name == "us-e"


def test_geo_default_client_region_from_config_and_header() -> None:
    geo = GeoConfig(client_region="eu", regions=GEO.regions, fallback_region="us-east")
    b = balancer(BalancerConfig(geo=geo))
    assert b.pick(group(*REGIONAL), 0.0)[0].name == "eu-w"
    assert geo.region_of({"x-client-region": "ap-south"}) == "ap-south"
    assert geo.region_of({}) == "eu"


def test_geo_balances_within_a_tier() -> None:
    b = balancer(BalancerConfig(geo=GeoConfig(regions={"eu": ("eu-west",)})))
    pool = group(dep("w1", region="eu-west"), dep("w2", region="eu-west"), dep("far", region="us"))
    ctx = PickContext(client_region="eu")
    firsts = [names(b.pick(pool, 0.0, ctx)) for _ in range(2)]
    assert firsts == [["w1", "w2", "far"], ["w2", "w1", "far"]]


# --- availability -----------------------------------------------------------------------------------------


def guarded(seed: int = 1) -> tuple[Balancer, CircuitBreakers, HealthTracker]:
    store = InProcessStore()
    breakers = CircuitBreakers(BreakerConfig(failure_threshold=1, timeout=10.0), store)
    health = HealthTracker(HealthConfig(), store)
    return balancer(store=store, seed=seed, breakers=breakers, health=health), breakers, health


def trip(breakers: CircuitBreakers, name: str, now: float) -> None:
    breakers.record(name, Outcome.FAILURE, now)


def test_open_circuits_are_skipped_and_half_open_ones_come_first() -> None:
    b, breakers, _ = guarded()
    trip(breakers, "a", 100.0)
    assert "a" not in names(b.pick(group(A, B, C), 105.0))
    assert names(b.pick(group(A, B, C), 110.0))[0] == "a"  # half-open: probed first, or it never recovers


def test_unhealthy_deployments_are_skipped() -> None:
    b, _, health = guarded()
    for _ in range(3):
        health.record("b", Outcome.FAILURE, 100.0)
    assert all("b" not in names(b.pick(group(A, B, C), 100.0)) for _ in range(3))
    assert "b" in names(b.pick(group(A, B, C), 130.0))


def test_all_unhealthy_falls_back_to_the_unhealthy_ones() -> None:
    b, breakers, health = guarded()
    for name in ("a", "b"):
        for _ in range(3):
            health.record(name, Outcome.FAILURE, 100.0)
    assert sorted(names(b.pick(group(A, B, C), 100.0))) == ["c"]
    trip(breakers, "c", 100.0)
    assert sorted(names(b.pick(group(A, B, C), 100.0))) == ["a", "b"]  # panic mode


def test_all_circuits_open_leaves_nothing() -> None:
    b, breakers, _ = guarded()
    for name in ("a", "b", "c"):
        trip(breakers, name, 100.0)
    assert b.pick(group(A, B, C), 100.0) == []


def test_excluded_deployments_are_left_out() -> None:
    b = balancer()
    assert names(b.pick(group(A, B, C), 0.0, PickContext(exclude=frozenset({"a", "c"})))) == ["b"]


def test_stats() -> None:
    b = balancer()
    b.record_start(A)
    assert b.stats("a") == {"in_flight": 1.0, "ewma": 0.0}


# --- config -----------------------------------------------------------------------------------------------


def read_group(route: str, value: object) -> tuple[DeploymentGroup, Reader]:
    reader = Reader()
    return DeploymentGroup.read(reader, route, value, f"deployments[{route!r}]"), reader


def test_single_deployment_group() -> None:
    single = DeploymentGroup.single("deepseek,deepseek-chat")
    assert single.deployments == (Deployment("deepseek,deepseek-chat", "deepseek", "deepseek-chat"),)


def test_group_from_a_list_names_key_pools_apart() -> None:
    pool, reader = read_group(
        "deepseek,deepseek-chat",
        [
            {"provider": "deepseek", "apiKey": "sk-1", "weight": 2},
            {"provider": "deepseek", "apiKey": "sk-2", "region": "eu"},
            {"provider": "openrouter", "model": "deepseek/deepseek-chat", "priceIn": 0.3, "priceOut": "1.2"},
            {"provider": "deepseek", "name": "spare"},
        ],
    )
    assert not reader.errors
    assert names(list(pool.deployments)) == [
        "deepseek,deepseek-chat",
        "deepseek,deepseek-chat#2",
        "openrouter,deepseek/deepseek-chat",
        "spare",
    ]
    first, second, third, _ = pool.deployments
    assert (first.weight, first.api_key, second.region) == (2.0, "sk-1", "eu")
    assert third.info == ModelInfo(0.3, 1.2, None)
    assert "sk-1" not in repr(first)
    assert pool.strategy is None


def test_group_from_an_object_with_a_strategy() -> None:
    pool, reader = read_group("p,m", {"strategy": "least-connections", "deployments": [{"provider": "p"}]})
    assert not reader.errors
    assert pool.strategy == "least-connections"
    assert pool.deployments == (Deployment("p,m", "p", "m"),)


def test_group_problems() -> None:
    _, reader = read_group(
        "p,m",
        [
            {"model": "x"},
            {"provider": "p", "name": "dup"},
            {"provider": "q", "name": "dup", "apiKey": 12345, "weight": -1},
            "p,m",
        ],
    )
    assert [str(p) for p in reader.errors] == [
        "deployments['p,m'][0].provider: missing",
        "deployments['p,m'][2].name: \"dup\" is used by another deployment of this route",
        "deployments['p,m'][2].apiKey: expected a string, got a number",
        "deployments['p,m'][2].weight: expected a number >= 0, got -1",
        "deployments['p,m'][3]: expected a deployment object such as {provider, model, weight}, got \"p,m\"",
    ]


def test_empty_group_is_an_error() -> None:
    _, reader = read_group("p,m", [])
    assert [p.reason for p in reader.errors] == ["expected at least one deployment"]


def test_balancer_config() -> None:
    config = BalancerConfig.from_config(
        {
            "strategy": "response-time",
            "metric": "latency",
            "ewmaAlpha": 0.5,
            "priority": "speed",
            "geo": {
                "header": "X-Region",
                "clientRegion": "eu",
                "regions": {"eu": ["eu-west", "eu-central"]},
                "fallbackRegion": "us-east",
            },
            "models": {"deepseek-chat": {"priceIn": 0.27, "priceOut": 1.1, "quality": 70}},
        }
    )
    assert config == BalancerConfig(
        strategy="response-time",
        metric="latency",
        ewma_alpha=0.5,
        priority="speed",
        geo=GeoConfig("x-region", "eu", {"eu": ("eu-west", "eu-central")}, "us-east"),
        models={"deepseek-chat": ModelInfo(0.27, 1.1, 70.0)},
    )
    assert BalancerConfig.from_config(None) == BalancerConfig()


def test_balancer_config_problems() -> None:
    warnings: list[Problem] = []
    with pytest.raises(ConfigError) as caught:
        BalancerConfig.from_config(
            {"strategy": "fastest", "geo": {"regions": {"eu": "eu-west"}}, "models": {"m": {"priceIn": "x"}}},
            warnings=warnings,
        )
    assert [p.path for p in caught.value.problems] == [
        "loadBalancing.models.m.priceIn",
        "loadBalancing.strategy",
        "loadBalancing.geo.regions.eu",
    ]
    assert warnings == []
