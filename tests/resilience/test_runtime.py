from __future__ import annotations

import random

import pytest

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.resilience.balancer import Deployment, DeploymentGroup
from ccr_fast.resilience.circuit import CircuitState
from ccr_fast.resilience.failover import AttemptKind
from ccr_fast.resilience.outcome import AttemptResult
from ccr_fast.resilience.runtime import CONFIG_KEYS, Resilience, ResilienceConfig
from ccr_fast.resilience.store import InProcessStore

RAW = {
    "Providers": [],
    "Router": {"default": "deepseek,deepseek-chat", "longContext": "gemini,gemini-2.5-pro"},
    "fallback": {"default": ["openrouter,deepseek/deepseek-chat"]},
    "retry": {"maxAttempts": 2, "baseDelay": "100ms", "jitter": False},
    "circuitBreaker": {"failureThreshold": 2, "timeout": "20s"},
    "healthCheck": {"passive": {"failureThreshold": 10}},
    "loadBalancing": {"strategy": "round-robin"},
    "failover": {"fallbackModel": "groq,llama-3.3-70b"},
    "deployments": {
        "deepseek,deepseek-chat": [
            {"provider": "deepseek", "apiKey": "sk-1"},
            {"provider": "deepseek", "apiKey": "sk-2"},
        ]
    },
}


def test_reads_every_section() -> None:
    config = ResilienceConfig.from_config(RAW)
    assert config.retry.max_attempts == 2
    assert config.retry.base_delay == 0.1
    assert config.breaker.failure_threshold == 2
    assert config.health.passive.failure_threshold == 10
    assert config.failover.fallback_model == "groq,llama-3.3-70b"
    assert [d.name for d in config.deployments["deepseek,deepseek-chat"].deployments] == [
        "deepseek,deepseek-chat",
        "deepseek,deepseek-chat#2",
    ]
    assert config.warnings == ()
    assert {
        "retry",
        "circuitBreaker",
        "healthCheck",
        "loadBalancing",
        "failover",
        "deployments",
    } == CONFIG_KEYS


def test_a_config_without_sections_gets_the_defaults() -> None:
    assert ResilienceConfig.from_config({"Providers": []}) == ResilienceConfig()


def test_problems_of_every_section_at_once() -> None:
    raw = {
        "retry": {"maxAttempts": 0},
        "circuitBreaker": {"timeout": "later"},
        "healthCheck": {"passive": {"failureThreshold": 0}},
        "loadBalancing": {"strategy": "fastest"},
        "failover": {"fallbackModel": "groq"},
        "deployments": {"not-a-route": [], "a,b": [{"provider": 5}]},
    }
    with pytest.raises(ConfigError) as caught:
        ResilienceConfig.from_config(raw)
    assert [p.path for p in caught.value.problems] == [
        'deployments["not-a-route"]',
        'deployments["a,b"][0].provider',
        "retry.maxAttempts",
        "circuitBreaker.timeout",
        "healthCheck.passive.failureThreshold",
        "loadBalancing.strategy",
        "failover.fallbackModel",
    ]


def test_unknown_keys_become_warnings() -> None:
    config = ResilienceConfig.from_config({"retry": {"strategy": "linear", "stratgy": "x"}})
    assert config.warnings == (Problem("retry.stratgy", "unknown key, ignored; did you mean 'strategy'?"),)


def resilience(store: InProcessStore | None = None) -> Resilience:
    return Resilience(ResilienceConfig.from_config(RAW), store or InProcessStore(), random.Random(0))


def test_groups_come_from_the_pools_or_the_route_itself() -> None:
    r = resilience()
    assert len(r.group("deepseek,deepseek-chat").deployments) == 2
    assert r.group("groq,llama") == DeploymentGroup.single("groq,llama")
    assert r.group("groq,llama") is r.group("groq,llama")


def test_budgets_are_per_provider_and_can_be_off() -> None:
    r = resilience()
    assert r.budget("deepseek") is r.budget("deepseek")
    assert r.budget("deepseek") is not r.budget("groq")
    off = Resilience(
        ResilienceConfig.from_config({"retry": {"budget": False}}), InProcessStore(), random.Random(0)
    )
    assert off.budget("deepseek") is None


def test_plans_walk_the_pool_then_the_fallbacks() -> None:
    r = resilience()
    plan = r.plan("deepseek,deepseek-chat", 0.0, fallback=RAW["fallback"])  # type: ignore[arg-type]
    failed = AttemptResult(status=500)
    seen: list[tuple[str, AttemptKind]] = []
    attempt = plan.first(0.0)
    while attempt is not None:
        seen.append((attempt.deployment.name, attempt.kind))
        attempt = plan.next_attempt(failed, 0.0, 0.0)
    assert seen == [
        ("deepseek,deepseek-chat", AttemptKind.FIRST),
        ("deepseek,deepseek-chat", AttemptKind.RETRY),
        ("deepseek,deepseek-chat#2", AttemptKind.FAILOVER),
        ("deepseek,deepseek-chat#2", AttemptKind.RETRY),
        ("openrouter,deepseek/deepseek-chat", AttemptKind.FAILOVER),
        ("openrouter,deepseek/deepseek-chat", AttemptKind.RETRY),
        ("groq,llama-3.3-70b", AttemptKind.FAILOVER),
        ("groq,llama-3.3-70b", AttemptKind.RETRY),
    ]


def test_plans_fail_over_to_the_long_context_route() -> None:
    r = resilience()
    plan = r.plan("groq,llama-3.3-70b", 0.0, long_context="gemini,gemini-2.5-pro")
    plan.first(0.0)
    attempt = plan.next_attempt(AttemptResult(status=400, message="prompt is too long"), 0.0, 0.0)
    assert attempt is not None
    assert attempt.deployment == Deployment("gemini,gemini-2.5-pro", "gemini", "gemini-2.5-pro")


def test_a_reload_keeps_the_shared_state() -> None:
    store = InProcessStore()
    before = resilience(store)
    for _ in range(2):
        before.breakers.record("groq,llama-3.3-70b", AttemptResult(status=503).outcome, 5.0)
    after = resilience(store)  # a new snapshot, same store
    assert after.breakers.state("groq,llama-3.3-70b", 6.0) is CircuitState.OPEN
    plan = after.plan("groq,llama-3.3-70b", 6.0)
    assert plan.first(6.0) is None
