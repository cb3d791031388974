from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from ccr_fast.mock import MockProvider
from tests.servers import RunningServer, run_ccr_fast

pytestmark = pytest.mark.e2e


def gateway_config(mock_url: str, *, resilience: bool = False, **extra: Any) -> dict[str, Any]:
    """The shared test gateway. Retries, breakers and passive health are on by default in ccr-fast; here
    they are off unless asked for, so that tests of error mapping see each upstream answer exactly once
    and one test's failures cannot open a breaker under the next (tests/e2e/test_resilience.py turns
    them on)."""
    cfg: dict[str, Any] = {
        "LOG_LEVEL": "info",
        "Providers": [
            {
                "name": "oai",
                "api_base_url": f"{mock_url}/v1/chat/completions",
                "api_key": "sk-oai-secret-1234",
                "models": ["gpt-test", "reasoner-test"],
            },
            {
                "name": "anth",
                "api_base_url": f"{mock_url}/v1/messages",
                "api_key": "sk-ant-secret-5678",
                "models": ["claude-upstream"],
                "transformer": {"use": ["Anthropic"]},
            },
            {
                "name": "ds",
                "api_base_url": f"{mock_url}/v1/chat/completions",
                "api_key": "sk-ds-secret",
                "models": ["deepseek-chat"],
                "transformer": {"use": ["deepseek"]},
            },
            {
                "name": "gem",
                "api_base_url": f"{mock_url}/v1beta/models/",
                "api_key": "gm-secret-key",
                "models": ["gemini-2.5-pro"],
                "transformer": {"use": ["gemini"]},
            },
            {
                "name": "dead",
                "api_base_url": "http://127.0.0.1:9/v1/chat/completions",
                "api_key": "k",
                "models": ["m"],
            },
        ],
        "Router": {
            "default": "oai,gpt-test",
            "background": "anth,claude-upstream",
            "think": "oai,reasoner-test",
        },
    }
    if not resilience:
        cfg.update({"retry": False, "circuitBreaker": False, "healthCheck": False, "failover": False})
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module")
def gateway(mock_provider: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("gw")
    with run_ccr_fast(gateway_config(mock_provider.url), tmp, workers=1) as server:
        yield server


@pytest.fixture
def client(gateway: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="anything", max_retries=0, timeout=20)
