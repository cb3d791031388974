"""`APIKEYS`: named client keys besides `APIKEY`: checked with key paths, redacted, referred to by name."""

from __future__ import annotations

from typing import Any

import pytest

from ccr_fast.admission import AdmissionConfig
from ccr_fast.config import ApiKey, ConfigError, config_from_dict, redact


def load(env: dict[str, str] | None = None, **data: Any) -> Any:
    return config_from_dict(data, env=env or {})


def errors_of(**data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, env={})
    return [str(p) for p in caught.value.problems]


def test_named_keys_sit_beside_apikey_which_is_named_default() -> None:
    config = load(
        {"CI_KEY": "sk-ci-from-env"},
        APIKEY="sk-main",
        APIKEYS=[{"name": "ci-bot", "key": "$CI_KEY"}, {"name": "alice@example.com", "key": "sk-alice"}],
    )
    assert config.api_keys == (ApiKey("ci-bot", "sk-ci-from-env"), ApiKey("alice@example.com", "sk-alice"))
    assert [k.name for k in config.client_keys] == ["default", "ci-bot", "alice@example.com"]
    assert "sk-ci" not in repr(config.api_keys)  # the secret stays out of reprs (and so of logs)
    assert load(APIKEYS=[{"name": "only", "key": "k1"}]).client_keys == (ApiKey("only", "k1"),)
    assert load().client_keys == ()


def test_named_keys_count_as_authentication_for_host() -> None:
    assert load(HOST="0.0.0.0", APIKEYS=[{"name": "a", "key": "k"}]).host == "0.0.0.0"
    assert load(HOST="0.0.0.0").host == "127.0.0.1"


def test_every_problem_names_its_key_path() -> None:
    problems = errors_of(
        APIKEY="sk-main",
        APIKEYS=[
            {"name": "default", "key": "k1"},
            {"name": "has space", "key": "k2"},
            {"name": "ok", "key": "sk-main"},
            {"name": "ok2", "key": "$UNSET_KEY"},
            {"name": "dup", "key": "k3"},
            {"name": "dup", "key": "k4"},
            {"key": "k5"},
            {"name": "nokey"},
            "sk-plain",
            {"name": "n", "key": 42},
        ],
    )
    assert problems == [
        'APIKEYS[0].name: "default" is the name of APIKEY; choose another',
        "APIKEYS[1].name: expected 1-64 letters, digits, '_', '.', '@' or '-', got \"has space\"",
        "APIKEYS[2].key: the same key as APIKEY: every key must be different",
        "APIKEYS[3].key: $UNSET_KEY is an environment variable that is not set; a key cannot be its own "
        "placeholder",
        'APIKEYS[5].name: duplicate key name "dup" (also APIKEYS[4])',
        "APIKEYS[6].name: missing or empty",
        "APIKEYS[7].key: missing or empty",
        'APIKEYS[8]: expected an object such as {"name": "ci-bot", "key": "$CI_KEY"}, got "sk-plain"',
        "APIKEYS[9].key: expected a string, got a number",
    ]
    assert "k4" not in " ".join(problems) and "sk-main" not in " ".join(problems)
    assert errors_of(APIKEYS={"name": "a", "key": "b"}) == [
        'APIKEYS: expected a list of {"name": ..., "key": ...} objects, got an object'
    ]


def test_unknown_entry_keys_are_warnings() -> None:
    config = load(APIKEYS=[{"name": "a", "key": "k", "level": "high"}])
    assert any("APIKEYS[0].level: unknown key" in w for w in config.warnings)


def test_api_config_shows_the_names_and_masks_the_keys() -> None:
    shown = redact(
        load(APIKEY="sk-main", APIKEYS=[{"name": "ci-bot", "key": "sk-ci-0123456789abcdefXYZ"}]).raw
    )
    assert shown["APIKEY"] == "***"
    assert shown["APIKEYS"] == [{"name": "ci-bot", "key": "***fXYZ"}]


def test_limits_and_priorities_for_keys_nobody_has_are_warned_about() -> None:
    raw = {
        "APIKEY": "k0",
        "APIKEYS": [{"name": "ci-bot", "key": "k1"}],
        "Providers": [{"name": "p"}],
        "RateLimit": {
            "perKey": {"keys": {"ci-bot": {"requestsPerMinute": 5}, "ci-b0t": {"requestsPerMinute": 1}}},
            "providers": {"p": {"requestsPerMinute": 5}},
        },
        "Queue": {"keyPriorities": {"default": "high", "nobody": "low"}},
    }
    warnings = [str(w) for w in AdmissionConfig.from_config(raw).warnings]
    assert warnings == [
        "RateLimit.perKey.keys[\"ci-b0t\"]: no API key is named 'ci-b0t' "
        "(APIKEY is named 'default'; APIKEYS names the others)",
        "Queue.keyPriorities.nobody: no API key is named 'nobody' "
        "(APIKEY is named 'default'; APIKEYS names the others)",
    ]
