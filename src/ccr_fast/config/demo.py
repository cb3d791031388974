"""The embedded demo config: two providers on a local mock server, one per upstream protocol.

It lets `ccr-fast` start and be tried with no account anywhere: "mock" speaks OpenAI chat completions and
takes every scenario, so the translation path is exercised; "mock-anthropic" speaks Anthropic Messages
behind the `Anthropic` transformer alone, the byte pass-through path, reachable with
`/model mock-anthropic,mock-model`.
"""

from __future__ import annotations

from typing import Any

from ccr_fast.config.loader import config_from_dict
from ccr_fast.config.model import Config

DEMO_SOURCE = "<demo>"
DEMO_API_KEY = "demo-key"
DEMO_MODELS = ("mock-model", "mock-reasoner")


def demo_data(mock_url: str, *, port: int = 3456) -> dict[str, Any]:
    """The demo config as CCR-style JSON data (what `ccr-fast` would write to config.json)."""
    base = mock_url.rstrip("/")
    return {
        "PORT": port,
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "info",
        "Providers": [
            {
                "name": "mock",
                "api_base_url": f"{base}/v1/chat/completions",
                "api_key": DEMO_API_KEY,
                "models": list(DEMO_MODELS),
            },
            {
                "name": "mock-anthropic",
                "api_base_url": f"{base}/v1/messages",
                "api_key": DEMO_API_KEY,
                "models": list(DEMO_MODELS),
                "transformer": {"use": ["Anthropic"]},
            },
        ],
        "Router": {
            "default": "mock,mock-model",
            "background": "mock,mock-model",
            "think": "mock,mock-reasoner",
            "longContext": "mock,mock-model",
            "longContextThreshold": 60000,
            "webSearch": "mock,mock-model",
        },
    }


def demo_config(mock_url: str, *, port: int = 3456) -> Config:
    """The demo snapshot. It ignores the environment (no SERVICE_PORT, no HTTPS_PROXY) so that it always
    reaches the local mock on the port asked for."""
    return config_from_dict(demo_data(mock_url, port=port), source=DEMO_SOURCE, env={})
