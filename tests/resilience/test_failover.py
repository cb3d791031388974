from __future__ import annotations

import random

import pytest

from ccr_fast.config.errors import ConfigError
from ccr_fast.resilience.balancer import Balancer, BalancerConfig, Deployment, DeploymentGroup
from ccr_fast.resilience.circuit import Admission, BreakerConfig, CircuitBreakers, CircuitState
from ccr_fast.resilience.failover import (
    AttemptKind,
    AttemptPlan,
    FailoverConfig,
    StopReason,
    failover_routes,
)
from ccr_fast.resilience.health import HealthConfig, HealthTracker, PassiveHealthConfig
from ccr_fast.resilience.outcome import CANCELLED, NETWORK, TIMEOUT, AttemptResult
from ccr_fast.resilience.retry import BudgetConfig, RetryBudget, RetryPolicy
from ccr_fast.resilience.store import InProcessStore

EPOCH = 1_750_000_000.0
POLICY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=8.0, jitter=False, deadline=60.0, budget=None)

FAILED = AttemptResult(status=503)
OK = AttemptResult(status=200, latency=1.0, ttft=0.2)

# --- the route chain --------------------------------------------------------------------------------------

FALLBACK = {
    "default": ["openrouter,deepseek/deepseek-chat", "groq,llama-3.3-70b"],
    "think": ["openrouter,deepseek/deepseek-r1"],
}


def test_chain_follows_the_scenario_fallback_list() -> None:
    config = FailoverConfig()
    assert failover_routes("deepseek,deepseek-chat", config, "default", FALLBACK) == [
        "deepseek,deepseek-chat",
        "openrouter,deepseek/deepseek-chat",
        "groq,llama-3.3-70b",
    ]
    assert failover_routes("deepseek,deepseek-reasoner", config, "think", FALLBACK) == [
        "deepseek,deepseek-reasoner",
        "openrouter,deepseek/deepseek-r1",
    ]
    assert failover_routes("deepseek,deepseek-chat", config, "background", FALLBACK) == [
        "deepseek,deepseek-chat"
    ]


@pytest.mark.parametrize("scenario", ["explicit", "subagent", "custom"])
def test_scenarios_without_a_fallback_key_use_default(scenario: str) -> None:
    assert failover_routes("a,m", FailoverConfig(), scenario, FALLBACK)[1:] == FALLBACK["default"]


def test_chain_adds_retry_providers_and_the_fallback_model_without_repeats() -> None:
    config = FailoverConfig(retry_providers=("openrouter", "deepseek"), fallback_model="groq,llama-3.3-70b")
    assert failover_routes("deepseek,deepseek-chat", config, "default", FALLBACK) == [
        "deepseek,deepseek-chat",
        "openrouter,deepseek-chat",
        "openrouter,deepseek/deepseek-chat",
        "groq,llama-3.3-70b",
    ]


def test_disabled_failover_keeps_only_the_route() -> None:
    assert failover_routes("a,m", FailoverConfig(enabled=False), "default", FALLBACK) == ["a,m"]


def test_failover_config() -> None:
    assert FailoverConfig.from_config(None) == FailoverConfig()
    assert FailoverConfig.from_config(False) == FailoverConfig(enabled=False, context_window_fallback=False)
    config = FailoverConfig.from_config(
        {"retryProviders": ["openrouter"], "fallbackModel": "groq,llama", "contextWindowFallback": False}
    )
    assert config == FailoverConfig(
        retry_providers=("openrouter",), fallback_model="groq,llama", context_window_fallback=False
    )
    with pytest.raises(ConfigError) as caught:
        FailoverConfig.from_config({"retryProviders": "openrouter", "fallbackModel": "groq"})
    assert [p.path for p in caught.value.problems] == ["failover.retryProviders", "failover.fallbackModel"]


# --- plans ------------------------------------------------------------------------------------------------


class World:
    """The per-worker objects a plan works with, over one store."""

    def __init__(
        self,
        policy: RetryPolicy = POLICY,
        breaker: BreakerConfig | None = None,
        budget: BudgetConfig | None = None,
        health: HealthConfig | None = None,
    ) -> None:
        self.store = InProcessStore()
        self.policy = policy
        self.breakers = CircuitBreakers(breaker or BreakerConfig(), self.store)
        self.health = HealthTracker(
            health or HealthConfig(passive=PassiveHealthConfig(enabled=False)), self.store
        )
        self.balancer = Balancer(BalancerConfig(), self.store, random.Random(1), self.breakers, self.health)
        self.budget_config = budget

    def budget(self, provider: str) -> RetryBudget | None:
        if self.budget_config is None:
            return None
        return RetryBudget(self.budget_config, self.store, provider)

    def plan(
        self, *groups: DeploymentGroup, now: float = 0.0, long_context: DeploymentGroup | None = None
    ) -> AttemptPlan:
        return AttemptPlan(
            groups,
            self.policy,
            self.balancer,
            now,
            random.Random(2),
            budgets=self.budget,
            long_context=long_context,
        )


PRIMARY = DeploymentGroup.single("deepseek,deepseek-chat")
POOL = DeploymentGroup(
    "deepseek,deepseek-chat",
    (
        Deployment("key-1", "deepseek", "deepseek-chat"),
        Deployment("key-2", "deepseek", "deepseek-chat"),
    ),
)
BACKUP = DeploymentGroup.single("openrouter,deepseek/deepseek-chat")
LONG = DeploymentGroup.single("gemini,gemini-2.5-pro")


def walk(plan: AttemptPlan, results: list[AttemptResult], now: float = 0.0) -> list[tuple[str, str, float]]:
    """Run a plan against canned results; returns (deployment, kind, delay) per attempt."""
    seen: list[tuple[str, str, float]] = []
    attempt = plan.first(now)
    for result in results:
        if attempt is None:
            break
        seen.append((attempt.deployment.name, attempt.kind.value, attempt.delay))
        now += attempt.delay
        if result.ok:
            plan.finish(result, now)
            return seen
        attempt = plan.next_attempt(result, now, EPOCH + now)
    if attempt is not None:
        seen.append((attempt.deployment.name, attempt.kind.value, attempt.delay))
    return seen


def test_a_first_success_is_one_attempt() -> None:
    world = World()
    plan = world.plan(PRIMARY, BACKUP)
    assert walk(plan, [OK]) == [("deepseek,deepseek-chat", "first", 0.0)]
    assert plan.attempts == 1
    assert plan.client_headers() == {}
    assert plan.stop_reason is None
    assert world.balancer.in_flight("deepseek,deepseek-chat") == 0.0
    assert world.balancer.ewma("deepseek,deepseek-chat") == 0.2


def test_retries_back_off_then_succeed() -> None:
    plan = World().plan(PRIMARY, BACKUP)
    assert walk(plan, [FAILED, FAILED, OK]) == [
        ("deepseek,deepseek-chat", "first", 0.0),
        ("deepseek,deepseek-chat", "retry", 0.5),
        ("deepseek,deepseek-chat", "retry", 1.0),
    ]
    assert plan.client_headers() == {"x-should-retry": "false"}


def test_exhausted_retries_fail_over_along_the_chain() -> None:
    plan = World().plan(POOL, BACKUP)
    walked = walk(plan, [FAILED] * 9)
    assert walked == [
        ("key-1", "first", 0.0),
        ("key-1", "retry", 0.5),
        ("key-1", "retry", 1.0),
        ("key-2", "failover", 0.0),
        ("key-2", "retry", 0.5),
        ("key-2", "retry", 1.0),
        ("openrouter,deepseek/deepseek-chat", "failover", 0.0),
        ("openrouter,deepseek/deepseek-chat", "retry", 0.5),
        ("openrouter,deepseek/deepseek-chat", "retry", 1.0),
    ]
    assert plan.stop_reason is StopReason.EXHAUSTED
    assert plan.tried == {"key-1", "key-2", "openrouter,deepseek/deepseek-chat"}


def test_a_bad_request_is_neither_retried_nor_failed_over() -> None:
    plan = World().plan(PRIMARY, BACKUP)
    assert walk(plan, [AttemptResult(status=400, message="messages: field required")]) == [
        ("deepseek,deepseek-chat", "first", 0.0)
    ]
    assert plan.stop_reason is StopReason.NOT_RETRYABLE
    assert plan.client_headers() == {}


@pytest.mark.parametrize("status", [401, 402, 403, 404])
def test_deployment_faults_fail_over_at_once(status: int) -> None:
    plan = World().plan(POOL)
    assert walk(plan, [AttemptResult(status=status), OK]) == [
        ("key-1", "first", 0.0),
        ("key-2", "failover", 0.0),
    ]


def test_timeouts_and_network_errors_are_retried() -> None:
    plan = World().plan(PRIMARY)
    kinds = [
        kind for _, kind, _ in walk(plan, [AttemptResult(error=TIMEOUT), AttemptResult(error=NETWORK), OK])
    ]
    assert kinds == ["first", "retry", "retry"]


def test_retry_after_replaces_the_backoff() -> None:
    plan = World().plan(PRIMARY, BACKUP)
    limited = AttemptResult(status=429, headers={"retry-after": "3"})
    assert walk(plan, [limited, OK])[1] == ("deepseek,deepseek-chat", "retry", 3.0)


def test_a_long_retry_after_fails_over_when_there_is_somewhere_else() -> None:
    plan = World().plan(PRIMARY, BACKUP)
    limited = AttemptResult(status=429, headers={"retry-after-ms": "20000"})
    assert walk(plan, [limited, OK])[1] == ("openrouter,deepseek/deepseek-chat", "failover", 0.0)


def test_a_long_retry_after_is_waited_out_when_there_is_nowhere_else() -> None:
    plan = World().plan(PRIMARY)
    limited = AttemptResult(status=429, headers={"retry-after": "20"})
    assert walk(plan, [limited, OK])[1] == ("deepseek,deepseek-chat", "retry", 20.0)


def test_a_retry_after_beyond_the_deadline_is_not_waited_for() -> None:
    plan = World().plan(PRIMARY)
    limited = AttemptResult(status=429, headers={"retry-after": "120"})
    assert len(walk(plan, [limited, OK])) == 1
    assert plan.stop_reason is StopReason.EXHAUSTED


def test_the_deadline_stops_the_plan() -> None:
    plan = World().plan(PRIMARY, BACKUP, now=0.0)
    assert plan.first(0.0) is not None
    assert plan.remaining(45.0) == 15.0
    assert plan.next_attempt(FAILED, 61.0, EPOCH) is None
    assert plan.stop_reason is StopReason.DEADLINE
    assert plan.remaining(61.0) == 0.0


def test_a_backoff_that_would_end_past_the_deadline_fails_over() -> None:
    world = World(policy=RetryPolicy(base_delay=5.0, max_delay=5.0, jitter=False, deadline=10.0, budget=None))
    plan = world.plan(PRIMARY, BACKUP)
    plan.first(0.0)
    attempt = plan.next_attempt(FAILED, 6.0, EPOCH)
    assert attempt is not None
    assert (attempt.deployment.name, attempt.kind) == (
        "openrouter,deepseek/deepseek-chat",
        AttemptKind.FAILOVER,
    )


def test_the_upstream_saying_no_retry_moves_on() -> None:
    plan = World().plan(PRIMARY, BACKUP)
    refused = AttemptResult(status=503, headers={"x-should-retry": "false"})
    assert walk(plan, [refused, OK])[1] == ("openrouter,deepseek/deepseek-chat", "failover", 0.0)


def test_the_budget_stops_retries_in_an_outage_but_not_failover() -> None:
    world = World(
        breaker=BreakerConfig(enabled=False), budget=BudgetConfig(ratio=0.2, min_per_second=0.0, window=10.0)
    )
    retries = failovers = 0
    for i in range(50):
        plan = world.plan(PRIMARY, BACKUP, now=float(i) / 10)
        for _, kind, _ in walk(plan, [FAILED] * 6, now=float(i) / 10):
            retries += kind == "retry"
            failovers += kind == "failover"
    # Unbudgeted, the 50 requests would retry 200 times; each provider pays for 20% of its 50 attempts.
    assert retries == 20
    assert failovers == 50


def test_an_opening_breaker_turns_retries_into_failover() -> None:
    world = World(breaker=BreakerConfig(failure_threshold=2))
    plan = world.plan(PRIMARY, BACKUP)
    assert walk(plan, [FAILED, FAILED, OK]) == [
        ("deepseek,deepseek-chat", "first", 0.0),
        ("deepseek,deepseek-chat", "retry", 0.5),
        ("openrouter,deepseek/deepseek-chat", "failover", 0.0),
    ]
    assert world.breakers.state("deepseek,deepseek-chat", 2.0) is CircuitState.OPEN


def test_open_breakers_are_skipped_and_all_open_is_unavailable() -> None:
    world = World(breaker=BreakerConfig(failure_threshold=1))
    world.breakers.get("deepseek,deepseek-chat").force_open()
    plan = world.plan(PRIMARY, BACKUP)
    assert walk(plan, [OK]) == [("openrouter,deepseek/deepseek-chat", "first", 0.0)]
    world.breakers.get("openrouter,deepseek/deepseek-chat").force_open()
    plan = world.plan(PRIMARY, BACKUP)
    assert plan.first(0.0) is None
    assert plan.stop_reason is StopReason.UNAVAILABLE


def test_a_half_open_probe_is_recorded_with_its_admission() -> None:
    world = World(breaker=BreakerConfig(failure_threshold=1, success_threshold=1, timeout=10.0))
    world.breakers.record("deepseek,deepseek-chat", AttemptResult(status=500).outcome, 0.0)
    plan = world.plan(PRIMARY, now=10.0)
    attempt = plan.first(10.0)
    assert attempt is not None and attempt.admission is Admission.PROBE
    plan.finish(OK, 11.0)
    assert world.breakers.state("deepseek,deepseek-chat", 11.0) is CircuitState.CLOSED


def test_passive_health_learns_from_the_attempts() -> None:
    world = World(health=HealthConfig(passive=PassiveHealthConfig(failure_threshold=2)))
    walk(world.plan(POOL), [FAILED, FAILED, OK])
    assert not world.health.is_healthy("key-1", 2.0)


def test_context_window_errors_go_to_the_long_context_route() -> None:
    world = World()
    too_long = AttemptResult(status=400, message="This model's maximum context length is 65536 tokens.")
    plan = world.plan(POOL, BACKUP, long_context=LONG)
    assert walk(plan, [too_long, FAILED, FAILED, FAILED, OK]) == [
        ("key-1", "first", 0.0),
        ("gemini,gemini-2.5-pro", "failover", 0.0),
        ("gemini,gemini-2.5-pro", "retry", 0.5),
        ("gemini,gemini-2.5-pro", "retry", 1.0),
        ("openrouter,deepseek/deepseek-chat", "failover", 0.0),  # key-2 has the same window: skipped
    ]


def test_context_window_errors_stop_without_a_longer_route() -> None:
    too_long = AttemptResult(status=400, message="prompt is too long: 210000 tokens > 200000 maximum")
    plan = World().plan(PRIMARY, BACKUP)
    assert len(walk(plan, [too_long, OK])) == 1
    assert plan.stop_reason is StopReason.NOT_RETRYABLE
    plan = World().plan(LONG, long_context=LONG)  # already on the long-context route
    assert len(walk(plan, [too_long, OK])) == 1
    assert plan.stop_reason is StopReason.NOT_RETRYABLE


def test_cancelling_stops_and_releases_the_in_flight_count() -> None:
    world = World()
    plan = world.plan(PRIMARY)
    plan.first(0.0)
    assert world.balancer.in_flight("deepseek,deepseek-chat") == 1.0
    assert plan.next_attempt(AttemptResult(error=CANCELLED), 0.5, EPOCH) is None
    assert plan.stop_reason is StopReason.CANCELLED
    assert world.balancer.in_flight("deepseek,deepseek-chat") == 0.0


def test_finish_is_for_the_attempt_in_flight_only() -> None:
    world = World()
    plan = world.plan(PRIMARY)
    plan.first(0.0)
    plan.finish(AttemptResult(error=CANCELLED), 1.0)
    plan.finish(AttemptResult(error=CANCELLED), 1.0)
    assert world.balancer.in_flight("deepseek,deepseek-chat") == 0.0


def test_misuse_is_refused() -> None:
    plan = World().plan(PRIMARY)
    with pytest.raises(RuntimeError):
        plan.next_attempt(FAILED, 0.0, EPOCH)
    plan.first(0.0)
    with pytest.raises(RuntimeError):
        plan.first(0.0)
    with pytest.raises(ValueError):
        plan.next_attempt(OK, 0.0, EPOCH)
