from __future__ import annotations

import email.utils
import random

import pytest

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.resilience.outcome import NETWORK, TIMEOUT, AttemptResult
from ccr_fast.resilience.retry import (
    DEFAULT_RETRY_STATUSES,
    BudgetConfig,
    RetryBudget,
    RetryPolicy,
    backoff_delay,
    parse_retry_after,
    upstream_should_retry,
)
from ccr_fast.resilience.store import InProcessStore

NOW_EPOCH = 1_750_000_000.0


def delays(policy: RetryPolicy, count: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    out: list[float] = []
    previous = 0.0
    for attempt in range(1, count + 1):
        previous = backoff_delay(policy, attempt, previous, rng)
        out.append(previous)
    return out


# --- backoff ------------------------------------------------------------------------------------------


def test_exponential_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, strategy="exponential", jitter=False)
    assert delays(policy, 7) == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_linear_grows_by_the_base_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=2.0, strategy="linear", jitter=False)
    assert delays(policy, 6) == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]


def test_fibonacci_follows_the_sequence_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0, strategy="fibonacci", jitter=False)
    assert delays(policy, 7) == [1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 10.0]


def test_decorrelated_jitter_stays_between_base_and_three_times_the_previous() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, strategy="decorrelated-jitter")
    sequence = delays(policy, 50, seed=3)
    previous = 0.5
    for delay in sequence:
        assert 0.5 <= delay <= min(8.0, 3 * previous)
        previous = delay
    assert max(sequence) > 4.0  # it does climb towards the cap
    assert sequence == delays(policy, 50, seed=3)  # reproducible with the same seed
    assert sequence != delays(policy, 50, seed=4)


def test_decorrelated_jitter_ignores_the_jitter_flag() -> None:
    with_flag = RetryPolicy(strategy="decorrelated-jitter", jitter=True)
    without = RetryPolicy(strategy="decorrelated-jitter", jitter=False)
    assert delays(with_flag, 10) == delays(without, 10)


def test_jitter_draws_each_delay_from_its_upper_half() -> None:
    plain = RetryPolicy(base_delay=0.5, max_delay=8.0, jitter=False)
    jittered = RetryPolicy(base_delay=0.5, max_delay=8.0, jitter=True)
    for fixed, drawn in zip(delays(plain, 8), delays(jittered, 8, seed=11), strict=True):
        assert fixed / 2 <= drawn <= fixed
    assert delays(jittered, 8, seed=11) == delays(jittered, 8, seed=11)
    assert delays(jittered, 8, seed=11) != delays(plain, 8)


def test_huge_attempt_numbers_stay_capped() -> None:
    rng = random.Random(0)
    for strategy in ("exponential", "linear", "fibonacci"):
        policy = RetryPolicy(base_delay=0.5, max_delay=8.0, strategy=strategy, jitter=False)
        assert backoff_delay(policy, 10_000, 8.0, rng) == 8.0


def test_zero_base_delay_means_immediate_retries() -> None:
    policy = RetryPolicy(base_delay=0.0, max_delay=0.0, strategy="fibonacci", jitter=False)
    assert delays(policy, 3) == [0.0, 0.0, 0.0]


def test_retry_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        backoff_delay(RetryPolicy(), 0, 0.0, random.Random(0))


# --- retry-after ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "5"}, 5.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "1500.5"}, 1.5005),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "Mon, 99 Foo 2025 99:99:99 GMT"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, NOW_EPOCH) == expected


def test_retry_after_http_date_counts_from_now() -> None:
    future = email.utils.formatdate(NOW_EPOCH + 42, usegmt=True)
    assert parse_retry_after({"retry-after": future}, NOW_EPOCH) == pytest.approx(42.0)


def test_retry_after_http_date_in_the_past_means_now() -> None:
    past = email.utils.formatdate(NOW_EPOCH - 600, usegmt=True)
    assert parse_retry_after({"retry-after": past}, NOW_EPOCH) == 0.0


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), (" False ", False), ("maybe", None), (None, None)]
)
def test_upstream_should_retry(value: str | None, expected: bool | None) -> None:
    headers = {} if value is None else {"x-should-retry": value}
    assert upstream_should_retry(headers) is expected


# --- what is retryable ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(DEFAULT_RETRY_STATUSES))
def test_default_retryable_statuses(status: int) -> None:
    assert RetryPolicy().retryable(AttemptResult(status=status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not RetryPolicy().retryable(AttemptResult(status=status))


def test_timeouts_and_network_errors_follow_their_switches() -> None:
    on = RetryPolicy()
    off = RetryPolicy(retry_on_timeout=False, retry_on_network=False)
    assert on.retryable(AttemptResult(error=TIMEOUT))
    assert on.retryable(AttemptResult(error=NETWORK))
    assert not off.retryable(AttemptResult(error=TIMEOUT))
    assert not off.retryable(AttemptResult(error=NETWORK))


def test_error_types_are_retried_whatever_the_status() -> None:
    policy = RetryPolicy(retry_on_status=frozenset(), retry_on_errors=frozenset({"overloaded_error"}))
    assert policy.retryable(AttemptResult(status=400, error="overloaded_error"))
    assert not policy.retryable(AttemptResult(status=503, error="api_error"))


def test_upstream_verdict_overrides_the_tables() -> None:
    policy = RetryPolicy()
    assert not policy.retryable(AttemptResult(status=503, headers={"x-should-retry": "false"}))
    assert policy.retryable(AttemptResult(status=409, headers={"x-should-retry": "true"}))
    assert policy.transient(AttemptResult(status=503, headers={"x-should-retry": "false"}))
    assert not policy.transient(AttemptResult(status=409, headers={"x-should-retry": "true"}))


# --- config ------------------------------------------------------------------------------------------------


def test_absent_section_gives_the_defaults() -> None:
    assert RetryPolicy.from_config(None) == RetryPolicy()
    assert RetryPolicy.from_config({}) == RetryPolicy()


def test_false_turns_retries_off() -> None:
    assert RetryPolicy.from_config(False).max_attempts == 1


def test_full_section() -> None:
    policy = RetryPolicy.from_config(
        {
            "maxAttempts": 5,
            "baseDelay": "250ms",
            "maxDelay": 4,
            "strategy": "fibonacci",
            "jitter": False,
            "retryOn": [429, "503", "timeout", "overloaded_error"],
            "deadline": "2m",
            "budget": {"ratio": 0.1, "minPerSecond": 0.5, "window": "30s"},
        }
    )
    assert policy == RetryPolicy(
        max_attempts=5,
        base_delay=0.25,
        max_delay=4.0,
        strategy="fibonacci",
        jitter=False,
        retry_on_status=frozenset({429, 503}),
        retry_on_timeout=True,
        retry_on_network=False,
        retry_on_errors=frozenset({"overloaded_error"}),
        deadline=120.0,
        budget=BudgetConfig(ratio=0.1, min_per_second=0.5, window=30.0),
    )


def test_values_from_environment_interpolation_are_strings() -> None:
    policy = RetryPolicy.from_config({"maxAttempts": "4", "jitter": "false", "baseDelay": "1.5"})
    assert (policy.max_attempts, policy.jitter, policy.base_delay) == (4, False, 1.5)


def test_max_retries_is_attempts_minus_one() -> None:
    assert RetryPolicy.from_config({"maxRetries": 0}).max_attempts == 1
    assert RetryPolicy.from_config({"maxRetries": 4}).max_attempts == 5


def test_budget_false_turns_the_budget_off() -> None:
    assert RetryPolicy.from_config({"budget": False}).budget is None


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        RetryPolicy.from_config(
            {
                "maxAttempts": 0,
                "maxRetries": 2,
                "baseDelay": "soon",
                "strategy": "random",
                "retryOn": [200, "teapot", True],
                "deadline": 0,
                "budget": {"ratio": 2},
            }
        )
    paths = [p.path for p in caught.value.problems]
    assert paths == [
        "retry.maxAttempts",
        "retry.maxRetries",
        "retry.baseDelay",
        "retry.retryOn[0]",
        "retry.retryOn[1]",
        "retry.retryOn[2]",
        "retry.strategy",
        "retry.deadline",
        "retry.budget.ratio",
    ]
    assert "decorrelated-jitter" in str(caught.value)


def test_max_delay_below_base_delay_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"retry\.maxDelay: must be at least baseDelay \(2s\)"):
        RetryPolicy.from_config({"baseDelay": 2, "maxDelay": 1})


def test_not_an_object_is_an_error() -> None:
    with pytest.raises(ConfigError, match="retry: expected an object"):
        RetryPolicy.from_config([1, 2])


def test_unknown_keys_are_warnings_with_a_suggestion() -> None:
    warnings: list[Problem] = []
    policy = RetryPolicy.from_config({"maxAtempts": 9}, warnings=warnings)
    assert policy == RetryPolicy()
    assert warnings == [Problem("retry.maxAtempts", "unknown key, ignored; did you mean 'maxAttempts'?")]


# --- budget ------------------------------------------------------------------------------------------------


def spend(budget: RetryBudget, requests: int, now: float) -> int:
    """Each request fails and asks for one retry; returns how many the budget paid for."""
    granted = 0
    for _ in range(requests):
        budget.record_request(now)
        if budget.can_retry(now):
            budget.record_retry(now)
            granted += 1
    return granted


def test_budget_caps_retries_at_the_ratio_during_an_outage() -> None:
    budget = RetryBudget(BudgetConfig(ratio=0.2, min_per_second=0.0, window=10.0), InProcessStore(), "p")
    assert spend(budget, 100, now=50.0) == 20


def test_budget_floor_lets_a_quiet_gateway_retry() -> None:
    budget = RetryBudget(BudgetConfig(ratio=0.2, min_per_second=1.0, window=10.0), InProcessStore(), "p")
    assert spend(budget, 100, now=50.0) == 30
    quiet = RetryBudget(BudgetConfig(ratio=0.2, min_per_second=1.0, window=10.0), InProcessStore(), "p")
    assert spend(quiet, 3, now=50.0) == 3


def test_budget_refills_as_the_window_moves_on() -> None:
    budget = RetryBudget(BudgetConfig(ratio=0.2, min_per_second=0.0, window=10.0), InProcessStore(), "p")
    assert spend(budget, 10, now=100.0) == 2
    assert not budget.can_retry(100.0)
    assert spend(budget, 10, now=111.0) == 2  # the first burst left the window


def test_budget_is_shared_by_workers_and_separate_per_key() -> None:
    store = InProcessStore()
    config = BudgetConfig(ratio=0.5, min_per_second=0.0, window=10.0)
    worker_a, worker_b = RetryBudget(config, store, "p"), RetryBudget(config, store, "p")
    other = RetryBudget(config, store, "q")
    for _ in range(4):
        worker_a.record_request(1.0)
    worker_b.record_retry(1.0)
    worker_b.record_retry(1.0)
    assert not worker_a.can_retry(1.0)
    assert worker_a.snapshot(1.0) == {"requests": 4, "retries": 2, "allowance": 2.0}
    assert other.snapshot(1.0)["requests"] == 0
