"""The embedded demo config."""

from __future__ import annotations

import pytest

from ccr_fast.config import config_from_dict, demo_config
from ccr_fast.config.demo import DEMO_SOURCE, demo_data

MOCK = "http://127.0.0.1:18080"


def test_demo_config_validates_cleanly() -> None:
    config = demo_config(MOCK)
    assert config.warnings == ()
    assert config.source == DEMO_SOURCE == "<demo>"
    assert config.port == 3456


def test_every_scenario_routes_to_the_openai_compatible_mock() -> None:
    router = demo_config(MOCK).router
    routes = [router.default, router.background, router.think, router.long_context, router.web_search]
    assert all(r is not None and r.startswith("mock,") for r in routes)
    assert router.think == "mock,mock-reasoner"


def test_both_upstream_protocols_are_present() -> None:
    config = demo_config(MOCK + "/")
    mock = config.provider("mock")
    anthropic = config.provider("mock-anthropic")
    assert mock is not None and anthropic is not None
    assert mock.api_base_url == f"{MOCK}/v1/chat/completions"
    assert mock.api_key == "demo-key"
    assert mock.models == ("mock-model", "mock-reasoner")
    assert dict(mock.transformer) == {}
    assert anthropic.api_base_url == f"{MOCK}/v1/messages"
    assert anthropic.transformer == {"use": ["Anthropic"]}


def test_port_is_taken_and_the_environment_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_PORT", "9999")
    monkeypatch.setenv("HTTPS_PROXY", "http://corporate-proxy:3128")
    config = demo_config(MOCK, port=4567)
    assert config.port == 4567
    assert config.proxy_url is None


def test_demo_data_round_trips_through_the_normal_loader() -> None:
    assert config_from_dict(demo_data(MOCK), source=DEMO_SOURCE, env={}) == demo_config(MOCK)
