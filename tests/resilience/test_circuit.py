from __future__ import annotations

import pytest

from ccr_fast.config.errors import ConfigError
from ccr_fast.resilience.circuit import (
    Admission,
    BreakerConfig,
    CircuitBreaker,
    CircuitBreakers,
    CircuitState,
)
from ccr_fast.resilience.outcome import Outcome
from ccr_fast.resilience.store import InProcessStore

CONSECUTIVE = BreakerConfig(
    failure_threshold=3, success_threshold=2, timeout=10.0, half_open_max_requests=2, volume_threshold=1000
)


def breaker(config: BreakerConfig = CONSECUTIVE, store: InProcessStore | None = None) -> CircuitBreaker:
    return CircuitBreaker("deepseek,deepseek-chat", config, store or InProcessStore())


def fail(b: CircuitBreaker, times: int, now: float) -> None:
    for _ in range(times):
        b.record(Outcome.FAILURE, now, b.allow(now))


def opened(now: float = 100.0) -> CircuitBreaker:
    b = breaker()
    fail(b, 3, now)
    assert b.state(now) is CircuitState.OPEN
    return b


def test_opens_after_consecutive_failures() -> None:
    b = breaker()
    fail(b, 2, 100.0)
    assert b.state(100.0) is CircuitState.CLOSED
    assert b.allow(100.0) is Admission.ALLOWED
    fail(b, 1, 100.0)
    assert b.state(100.0) is CircuitState.OPEN
    assert b.allow(100.0) is Admission.REJECTED
    assert not b.allow(100.0)


def test_a_success_resets_the_consecutive_count() -> None:
    b = breaker()
    for _ in range(5):
        fail(b, 2, 100.0)
        b.record(Outcome.SUCCESS, 100.0)
    assert b.state(100.0) is CircuitState.CLOSED


def test_ignored_outcomes_count_neither_way() -> None:
    b = breaker()
    fail(b, 2, 100.0)
    b.record(Outcome.IGNORED, 100.0)
    fail(b, 1, 100.0)
    assert b.state(100.0) is CircuitState.OPEN


RATE = BreakerConfig(
    failure_threshold=100, error_rate_threshold=0.5, rolling_window=60.0, volume_threshold=10
)


def test_error_rate_opens_once_the_volume_is_reached() -> None:
    b = breaker(RATE)
    for i in range(9):
        b.record(Outcome.FAILURE if i % 2 else Outcome.SUCCESS, 100.0 + i)
    assert b.state(109.0) is CircuitState.CLOSED  # 4 of 9 failed, and 9 is below the volume
    b.record(Outcome.FAILURE, 109.0)
    assert b.state(109.0) is CircuitState.OPEN  # 5 of 10


def test_error_rate_below_the_threshold_keeps_it_closed() -> None:
    b = breaker(RATE)
    for i in range(40):
        b.record(Outcome.FAILURE if i % 3 == 0 else Outcome.SUCCESS, 100.0 + i)
    assert b.state(140.0) is CircuitState.CLOSED


def test_all_failures_below_the_volume_do_not_trip_the_rate_rule() -> None:
    b = breaker(RATE)
    fail(b, 9, 100.0)
    assert b.state(100.0) is CircuitState.CLOSED


def test_failures_outside_the_rolling_window_are_forgotten() -> None:
    b = breaker(RATE)
    fail(b, 8, 100.0)
    for i in range(8):
        b.record(Outcome.SUCCESS, 170.0 + i)  # the failures are more than 60 s old now
    fail(b, 2, 180.0)
    assert b.state(180.0) is CircuitState.CLOSED  # 2 of 10 in the window


def test_open_turns_half_open_after_the_timeout() -> None:
    b = opened(100.0)
    assert b.state(109.9) is CircuitState.OPEN
    assert b.allow(109.9) is Admission.REJECTED
    assert b.state(110.0) is CircuitState.HALF_OPEN


def test_half_open_admits_at_most_the_probe_limit() -> None:
    b = opened(100.0)
    assert b.allow(110.0) is Admission.PROBE
    assert b.allow(110.0) is Admission.PROBE
    assert b.allow(110.0) is Admission.REJECTED
    b.record(Outcome.IGNORED, 111.0, Admission.PROBE)  # a probe slot comes back without a verdict
    assert b.allow(111.0) is Admission.PROBE


def test_probe_successes_close_the_breaker() -> None:
    b = opened(100.0)
    first = b.allow(110.0)
    b.record(Outcome.SUCCESS, 110.5, first)
    assert b.state(110.5) is CircuitState.HALF_OPEN
    second = b.allow(110.5)
    b.record(Outcome.SUCCESS, 111.0, second)
    assert b.state(111.0) is CircuitState.CLOSED
    fail(b, 2, 111.0)  # counts start afresh after closing
    assert b.state(111.0) is CircuitState.CLOSED


def test_a_failed_probe_reopens_for_a_full_timeout() -> None:
    b = opened(100.0)
    probe = b.allow(110.0)
    b.record(Outcome.FAILURE, 112.0, probe)
    assert b.state(112.0) is CircuitState.OPEN
    assert b.state(121.9) is CircuitState.OPEN
    assert b.state(122.0) is CircuitState.HALF_OPEN
    assert b.snapshot(112.0)["trips"] == 2


def test_successes_needed_are_consecutive() -> None:
    config = BreakerConfig(failure_threshold=1, success_threshold=2, timeout=10.0, half_open_max_requests=1)
    b = breaker(config)
    fail(b, 1, 0.0)
    b.record(Outcome.SUCCESS, 10.0, b.allow(10.0))
    b.record(Outcome.FAILURE, 10.0, b.allow(10.0))  # re-opens, and the success is forgotten
    b.record(Outcome.SUCCESS, 20.0, b.allow(20.0))
    assert b.state(20.0) is CircuitState.HALF_OPEN
    b.record(Outcome.SUCCESS, 20.0, b.allow(20.0))
    assert b.state(20.0) is CircuitState.CLOSED


def test_a_lost_probe_is_given_up_after_a_timeout() -> None:
    b = opened(100.0)
    assert b.allow(110.0) is Admission.PROBE
    assert b.allow(110.0) is Admission.PROBE
    assert b.allow(119.0) is Admission.REJECTED
    assert b.allow(120.0) is Admission.PROBE  # neither probe reported back within a timeout


def test_late_results_of_requests_admitted_while_closed_do_not_move_it() -> None:
    b = opened(100.0)
    b.record(Outcome.SUCCESS, 101.0)  # sent before it opened; says nothing about recovery
    b.record(Outcome.SUCCESS, 110.0, Admission.ALLOWED)
    assert b.state(110.0) is CircuitState.HALF_OPEN
    assert b.snapshot(110.0)["probe_successes"] == 0


def test_force_open_holds_until_reset() -> None:
    b = breaker()
    b.force_open()
    assert b.state(0.0) is CircuitState.OPEN
    assert b.state(1e9) is CircuitState.OPEN
    assert b.allow(1e9) is Admission.REJECTED
    assert b.snapshot(5.0)["forced"] is True
    b.reset()
    assert b.state(0.0) is CircuitState.CLOSED
    assert b.allow(0.0) is Admission.ALLOWED


def test_reset_forgets_the_counts() -> None:
    b = breaker()
    fail(b, 2, 100.0)
    b.reset()
    fail(b, 2, 100.0)
    assert b.state(100.0) is CircuitState.CLOSED
    b = opened(100.0)
    b.reset()
    assert b.state(100.0) is CircuitState.CLOSED
    assert b.snapshot(100.0)["consecutive_failures"] == 0


def test_state_is_shared_through_the_store() -> None:
    store = InProcessStore()
    worker_a, worker_b = breaker(store=store), breaker(store=store)
    fail(worker_a, 2, 100.0)
    fail(worker_b, 1, 100.0)
    assert worker_a.state(100.0) is CircuitState.OPEN
    assert worker_a.allow(110.0) is Admission.PROBE
    assert worker_b.allow(110.0) is Admission.PROBE
    assert worker_b.allow(110.0) is Admission.REJECTED  # the two probe slots are shared


def test_disabled_breakers_never_trip_but_can_be_forced() -> None:
    b = breaker(BreakerConfig(enabled=False, failure_threshold=1))
    fail(b, 50, 100.0)
    assert b.state(100.0) is CircuitState.CLOSED
    b.force_open()
    assert b.allow(100.0) is Admission.REJECTED


def test_snapshot() -> None:
    b = breaker(RATE)
    b.record(Outcome.SUCCESS, 100.0)
    b.record(Outcome.FAILURE, 100.0)
    assert b.snapshot(100.0) == {
        "name": "deepseek,deepseek-chat",
        "state": "closed",
        "forced": False,
        "consecutive_failures": 1,
        "window": {"requests": 2, "failures": 1, "error_rate": 0.5},
        "trips": 0,
    }
    b = opened(100.0)
    assert b.snapshot(104.0)["half_open_in"] == pytest.approx(6.0)
    assert b.snapshot(110.0)["state"] == "half_open"


def test_state_codes_for_the_metric() -> None:
    assert [s.code for s in CircuitState] == [0, 1, 2]


def test_registry_keeps_one_breaker_per_name() -> None:
    breakers = CircuitBreakers(CONSECUTIVE, InProcessStore())
    assert breakers.get("a") is breakers.get("a")
    for _ in range(3):
        breakers.record("a", Outcome.FAILURE, 5.0, breakers.allow("a", 5.0))
    assert breakers.state("a", 5.0) is CircuitState.OPEN
    assert breakers.state("b", 5.0) is CircuitState.CLOSED
    assert [s["state"] for s in breakers.snapshot(["a", "b"], 5.0)] == ["open", "closed"]


def test_config_defaults_values_and_false() -> None:
    assert BreakerConfig.from_config(None) == BreakerConfig()
    assert BreakerConfig.from_config(False).enabled is False
    config = BreakerConfig.from_config(
        {
            "failureThreshold": 4,
            "successThreshold": 3,
            "timeout": "45s",
            "halfOpenMaxRequests": 2,
            "errorRateThreshold": 0.25,
            "rollingWindow": "2m",
            "volumeThreshold": 50,
        }
    )
    assert config == BreakerConfig(
        failure_threshold=4,
        success_threshold=3,
        timeout=45.0,
        half_open_max_requests=2,
        error_rate_threshold=0.25,
        rolling_window=120.0,
        volume_threshold=50,
    )


def test_config_errors_name_their_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        BreakerConfig.from_config({"errorRateThreshold": 50, "failureThreshold": 0, "timeout": -1})
    assert [str(p) for p in caught.value.problems] == [
        "circuitBreaker.failureThreshold: expected an integer >= 1, got 0",
        "circuitBreaker.timeout: expected a duration >= 0.001s (seconds, or a string such as "
        '"250ms", "30s", "5m"), got -1',
        "circuitBreaker.errorRateThreshold: expected a number between 0.01 and 1 "
        "(a fraction: 0.5 means 50%), got 50",
    ]
