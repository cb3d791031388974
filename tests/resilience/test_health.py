from __future__ import annotations

import pytest

from ccr_fast.config.errors import ConfigError
from ccr_fast.resilience.health import (
    ActiveHealthConfig,
    HealthConfig,
    HealthTracker,
    PassiveHealthConfig,
    probe_healthy,
    probe_request,
)
from ccr_fast.resilience.outcome import Outcome
from ccr_fast.resilience.store import InProcessStore

PASSIVE = HealthConfig(
    passive=PassiveHealthConfig(failure_threshold=3, ejection_time=30.0, max_ejection_time=75.0)
)
ACTIVE = HealthConfig(
    active=ActiveHealthConfig(enabled=True, interval=30.0, failure_threshold=2, success_threshold=2)
)


def fail(tracker: HealthTracker, name: str, times: int, now: float) -> None:
    for _ in range(times):
        tracker.record(name, Outcome.FAILURE, now)


def test_consecutive_failures_eject_for_the_ejection_time() -> None:
    tracker = HealthTracker(PASSIVE, InProcessStore())
    fail(tracker, "a", 2, 100.0)
    assert tracker.is_healthy("a", 100.0)
    fail(tracker, "a", 1, 100.0)
    assert not tracker.is_healthy("a", 100.0)
    assert not tracker.is_healthy("a", 129.9)
    assert tracker.is_healthy("a", 130.0)
    assert tracker.is_healthy("b", 100.0)


def test_repeated_ejections_grow_up_to_the_maximum() -> None:
    tracker = HealthTracker(PASSIVE, InProcessStore())
    fail(tracker, "a", 3, 0.0)  # 30 s
    fail(tracker, "a", 3, 30.0)  # 60 s
    assert not tracker.is_healthy("a", 89.9)
    assert tracker.is_healthy("a", 90.0)
    fail(tracker, "a", 3, 90.0)  # 90 s, capped at 75
    assert tracker.is_healthy("a", 165.0)
    assert tracker.snapshot("a", 100.0)["ejections"] == 3


def test_a_success_resets_failures_and_the_ejection_multiplier() -> None:
    tracker = HealthTracker(PASSIVE, InProcessStore())
    fail(tracker, "a", 3, 0.0)
    tracker.record("a", Outcome.SUCCESS, 30.0)
    fail(tracker, "a", 2, 30.0)
    tracker.record("a", Outcome.SUCCESS, 30.0)
    fail(tracker, "a", 2, 30.0)
    assert tracker.is_healthy("a", 30.0)
    fail(tracker, "a", 1, 30.0)
    assert tracker.is_healthy("a", 60.0)  # ejected for the base time again, not twice it


def test_ignored_outcomes_do_not_count() -> None:
    tracker = HealthTracker(PASSIVE, InProcessStore())
    fail(tracker, "a", 2, 0.0)
    tracker.record("a", Outcome.IGNORED, 0.0)
    fail(tracker, "a", 1, 0.0)
    assert not tracker.is_healthy("a", 0.0)


def test_passive_health_can_be_turned_off() -> None:
    tracker = HealthTracker(HealthConfig(passive=PassiveHealthConfig(enabled=False)), InProcessStore())
    fail(tracker, "a", 100, 0.0)
    assert tracker.is_healthy("a", 0.0)


def test_no_probes_when_active_health_is_off() -> None:
    assert HealthTracker(HealthConfig(), InProcessStore()).due_probes(["a"], 0.0) == []


def test_each_probe_is_claimed_by_one_worker_per_interval() -> None:
    store = InProcessStore()
    worker_a, worker_b = HealthTracker(ACTIVE, store), HealthTracker(ACTIVE, store)
    assert worker_a.due_probes(["a", "b"], 100.0) == ["a", "b"]
    assert worker_b.due_probes(["a", "b"], 100.0) == []
    assert worker_b.due_probes(["a", "b"], 129.9) == []
    assert worker_b.due_probes(["a", "b", "c"], 130.0) == ["a", "b", "c"]
    assert worker_a.due_probes(["a", "b", "c"], 130.0) == []


def test_failed_probes_mark_down_and_good_ones_bring_back() -> None:
    tracker = HealthTracker(ACTIVE, InProcessStore())
    tracker.probe_result("a", False, 0.0)
    assert tracker.is_healthy("a", 0.0)
    tracker.probe_result("a", False, 30.0)
    assert not tracker.is_healthy("a", 30.0)
    assert tracker.snapshot("a", 30.0)["probe_down"] is True
    tracker.probe_result("a", True, 60.0)
    assert not tracker.is_healthy("a", 60.0)
    tracker.probe_result("a", True, 90.0)
    assert tracker.is_healthy("a", 90.0)


def test_probe_failures_needed_are_consecutive() -> None:
    tracker = HealthTracker(ACTIVE, InProcessStore())
    for _ in range(5):
        tracker.probe_result("a", False, 0.0)
        tracker.probe_result("a", True, 0.0)
    assert tracker.is_healthy("a", 0.0)


def test_snapshot() -> None:
    tracker = HealthTracker(PASSIVE, InProcessStore())
    fail(tracker, "a", 3, 100.0)
    assert tracker.snapshot("a", 110.0) == {
        "name": "a",
        "healthy": False,
        "probe_down": False,
        "ejected_for": 20.0,
        "consecutive_failures": 0,
        "ejections": 1,
    }


@pytest.mark.parametrize(
    ("endpoint", "url", "probe"),
    [
        ("anthropic", "https://api.anthropic.com/v1/messages", "https://api.anthropic.com/v1/models"),
        ("openai", "https://api.deepseek.com/chat/completions", "https://api.deepseek.com/models"),
        ("openai", "https://openrouter.ai/api/v1/chat/completions", "https://openrouter.ai/api/v1/models"),
        ("openai", "http://127.0.0.1:11434/v1/chat/completions", "http://127.0.0.1:11434/v1/models"),
        (
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?key=k",
            "https://generativelanguage.googleapis.com/v1beta/models?key=k",
        ),
        ("openai", "https://example.com/custom/endpoint", "https://example.com/custom/endpoint"),
        ("openai-responses", "https://api.openai.com/v1/responses", "https://api.openai.com/v1/models"),
        (
            "openai-responses",
            "https://example.com/v1/chat/completions",
            "https://example.com/v1/chat/completions",
        ),
    ],
)
def test_probe_lists_models(endpoint: str, url: str, probe: str) -> None:
    request = probe_request(endpoint, url, {"authorization": "Bearer k", "content-type": "application/json"})
    assert request.method == "GET"
    assert request.url == probe
    assert dict(request.headers) == {"authorization": "Bearer k"}


@pytest.mark.parametrize(
    ("status", "healthy"),
    [
        (200, True),
        (404, True),
        (405, True),
        (401, False),
        (403, False),
        (407, False),
        (429, False),
        (500, False),
        (503, False),
        (None, False),
    ],
)
def test_probe_healthy(status: int | None, healthy: bool) -> None:
    assert probe_healthy(status) is healthy


def test_config_defaults_and_sections() -> None:
    assert HealthConfig.from_config(None) == HealthConfig()
    assert HealthConfig().active.enabled is False
    assert HealthConfig().passive.enabled is True
    assert HealthConfig.from_config(False).passive.enabled is False
    config = HealthConfig.from_config(
        {
            "active": {"interval": "1m", "timeout": "3s", "failureThreshold": 4},
            "passive": {"failureThreshold": 5, "ejectionTime": "10s", "maxEjectionTime": "2m"},
        }
    )
    assert config == HealthConfig(
        active=ActiveHealthConfig(enabled=True, interval=60.0, timeout=3.0, failure_threshold=4),
        passive=PassiveHealthConfig(failure_threshold=5, ejection_time=10.0, max_ejection_time=120.0),
    )
    assert HealthConfig.from_config({"active": {"enabled": False}}).active.enabled is False


def test_config_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        HealthConfig.from_config(
            {"active": {"interval": 0}, "passive": {"ejectionTime": 60, "maxEjectionTime": 30}}
        )
    assert [p.path for p in caught.value.problems] == [
        "healthCheck.active.interval",
        "healthCheck.passive.maxEjectionTime",
    ]
