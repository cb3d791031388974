"""Reading RateLimit and Queue: typed values, every problem at once with its key path, useful warnings."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from ccr_fast.admission.config import (
    AdmissionConfig,
    Backpressure,
    Limits,
    Overflow,
    PressureAction,
    QueueConfig,
    Rate,
)
from ccr_fast.config.errors import ConfigError

PROVIDERS = [{"name": "deepseek"}, {"name": "groq"}, {"name": "openrouter"}]


def _read(**sections: Any) -> AdmissionConfig:
    return AdmissionConfig.from_config({"Providers": PROVIDERS, **sections})


def _problems(**sections: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _read(**sections)
    return [str(problem) for problem in caught.value.problems]


def test_nothing_configured_is_disabled() -> None:
    config = AdmissionConfig.from_config({})
    assert config == AdmissionConfig()
    assert not config.enabled
    assert config.queue == QueueConfig()


def test_the_documented_example_reads_completely() -> None:
    config = _read(
        RateLimit={
            "global": {"requestsPerSecond": 50, "requestsPerMinute": 1000},
            "perSession": {"requestsPerMinute": 60, "tokenBudget": 200000},
            "perIP": {"requestsPerMinute": 120, "blacklist": ["203.0.113.0/24"], "whitelist": ["10.0.0.0/8"]},
            "perKey": {"requestsPerMinute": 600, "keys": {"ci-bot": {"requestsPerMinute": 30}}},
            "providers": {"deepseek": {"requestsPerMinute": 500, "tokensPerMinute": 1000000}},
        },
        Queue={
            "maxSize": 1000,
            "timeoutMs": 30000,
            "priorityHeader": "X-CCR-Priority",
            "levels": ["high", "normal", "low"],
            "keyPriorities": {"ci-bot": "low"},
            "overflow": "spillover",
            "spilloverProviders": ["groq,llama-3.3-70b"],
            "backpressure": {"threshold": 0.8, "action": "redirect", "redirectTo": "openrouter,some/model"},
        },
    )
    limits = config.rate_limit
    assert config.enabled and config.warnings == ()
    assert limits.global_limits == Limits(Rate(50, 1.0), Rate(1000, 60.0))
    assert limits.per_session == Limits(None, Rate(60, 60.0), Rate(200000, 60.0, "tokens"))
    assert limits.per_ip == Limits(None, Rate(120, 60.0))
    assert limits.blacklist == (ipaddress.ip_network("203.0.113.0/24"),)
    assert limits.whitelist == (ipaddress.ip_network("10.0.0.0/8"),)
    assert limits.key_overrides["ci-bot"] == Limits(None, Rate(30, 60.0))
    assert limits.providers["deepseek"] == Limits(None, Rate(500, 60.0), Rate(1000000, 60.0, "tokens"))
    queue = config.queue
    assert queue.priority_header == "x-ccr-priority"  # header names are matched lower-case
    assert queue.timeout == 30.0
    assert queue.overflow is Overflow.SPILLOVER
    assert queue.spillover == ("groq,llama-3.3-70b",)
    assert queue.key_priorities == {"ci-bot": "low"}
    assert queue.backpressure == Backpressure(0.8, PressureAction.REDIRECT, "openrouter,some/model", 1.0)


def test_rates_describe_themselves_and_hold_one_period_at_once() -> None:
    assert str(Rate(60, 60.0)) == "60 requests per minute"
    assert str(Rate(2.5, 1.0)) == "2.5 requests per second"
    assert str(Rate(1, 1.0)) == "1 request per second"
    assert str(Rate(1, 60.0, "tokens")) == "1 token per minute"
    assert Rate(60, 60.0).per_second == 1.0
    assert Rate(60, 60.0).burst == 60
    assert Rate(0.5, 60.0).burst == 1  # a bucket always holds at least one request


def test_a_key_override_replaces_only_the_limits_it_sets() -> None:
    limits = _read(
        RateLimit={
            "perKey": {"requestsPerSecond": 5, "tokenBudget": 1000, "keys": {"big": {"tokenBudget": 9000}}}
        }
    ).rate_limit
    assert limits.key_overrides["big"] == Limits(Rate(5, 1.0), None, Rate(9000, 60.0, "tokens"))


def test_numbers_may_come_as_strings_from_environment_interpolation() -> None:
    config = _read(RateLimit={"global": {"requestsPerSecond": "25"}}, Queue={"maxSize": "10"})
    assert config.rate_limit.global_limits.per_second == Rate(25, 1.0)
    assert config.queue.max_size == 10


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    problems = _problems(
        RateLimit={
            "global": {"requestsPerSecond": -1, "requestsPerMinute": 0},
            "perIP": {"blacklist": ["203.0.113.0/24", "nonsense", 7], "whitelist": ["203.0.113.0/24"]},
            "providers": {"deepseek": {"tokensPerMinute": "lots"}},
        },
        Queue={
            "maxSize": 0,
            "levels": ["high", "High"],
            "overflow": "drop",
            "priorityHeader": "bad header",
            "backpressure": {"threshold": 80, "action": "redirect"},
        },
    )
    assert problems == [
        "RateLimit.global.requestsPerSecond: expected a number between 0 and 1e+09, got -1",
        "RateLimit.global.requestsPerMinute: must be at least 0.001 (leave the key out for no limit)",
        'RateLimit.perIP.blacklist[1]: not an IP address or CIDR range: "nonsense"',
        "RateLimit.perIP.blacklist[2]: expected an address or CIDR range, got 7",
        "RateLimit.perIP.whitelist: 203.0.113.0/24 is also in the blacklist",
        'RateLimit.providers.deepseek.tokensPerMinute: expected a number between 0 and 1e+09, got "lots"',
        "Queue.maxSize: expected an integer >= 1, got 0",
        'Queue.priorityHeader: not an HTTP header name: "bad header"',
        "Queue.levels: level names must be unique (the header is matched ignoring case)",
        "Queue.overflow: expected one of 'queue', 'reject', 'spillover', got \"drop\"",
        "Queue.backpressure.threshold: expected a number between 0 and 1 (a fraction: 0.5 means 50%), got 80",
        'Queue.backpressure.redirectTo: required when action is "redirect"',
    ]


def test_spillover_needs_routes_and_routes_need_a_model() -> None:
    assert _problems(Queue={"overflow": "spillover", "spilloverProviders": ["groq"]}) == [
        'Queue.spilloverProviders[0]: expected "provider,model", got "groq"',
        'Queue.spilloverProviders: needs at least one "provider,model" when overflow is "spillover"',
    ]


def test_levels_must_be_known_where_they_are_named() -> None:
    assert _problems(
        Queue={"levels": ["fast", "slow"], "defaultLevel": "normal", "keyPriorities": {"k": "vip"}}
    ) == [
        "Queue.defaultLevel: expected one of the levels 'fast', 'slow', got \"normal\"",
        "Queue.keyPriorities.k: expected one of the levels 'fast', 'slow', got \"vip\"",
    ]


def test_default_level_is_normal_when_listed_else_the_lowest() -> None:
    assert _read(Queue={}).queue.default_level == "normal"
    assert _read(Queue={"levels": ["fast", "slow"]}).queue.default_level == "slow"


def test_warnings_for_unknown_keys_providers_host_bits_and_a_useless_queue() -> None:
    config = _read(
        RateLimit={
            "perSesion": {},
            "perIP": {"blacklist": ["10.1.2.3/8"]},
            "providers": {"deepsek": {"requestsPerMinute": 10}},
        },
        Queue={"spilloverProviders": ["nowhere,model"]},
    )
    assert [str(w) for w in config.warnings] == [
        "RateLimit.perSesion: unknown key, ignored; did you mean 'perSession'?",
        "RateLimit.perIP.blacklist[0]: host bits set; read as 10.0.0.0/8",
        "RateLimit.providers.deepsek: no provider named 'deepsek' in Providers",
        "Queue.spilloverProviders[0]: no provider named 'nowhere' in Providers",
    ]
    useless = _read(RateLimit={"global": {"requestsPerSecond": 1}}, Queue={"maxSize": 5})
    assert [str(w) for w in useless.warnings] == [
        "Queue: has no effect: only requests for providers in RateLimit.providers wait"
    ]


def test_per_model_provider_limits_check_the_provider_part() -> None:
    config = _read(RateLimit={"providers": {"deepseek,deepseek-chat": {"requestsPerMinute": 10}}})
    assert config.warnings == ()
    assert "deepseek,deepseek-chat" in config.rate_limit.providers


def test_a_blacklist_alone_enables_admission() -> None:
    assert _read(RateLimit={"perIP": {"blacklist": ["192.0.2.1"]}}).enabled
    assert not _read(RateLimit={"perIP": {"whitelist": ["192.0.2.1"]}}).enabled


def test_sections_switched_off_with_false() -> None:
    assert _read(RateLimit=False, Queue=False) == AdmissionConfig()
