"""LiteLLM as a peer: its config maps every scenario to the mock ccr-fast sends it to (nothing installed)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.bodies import CLAUDE_CODE_HEADERS
from bench.litellm_peer import (
    LITELLM_VERSION,
    MASTER_KEY,
    installed_version,
    litellm_config,
    litellm_env,
)
from bench.scenarios import HOLD_SCENARIO, SCENARIOS, proxy_routes

PORTS = {"fast": 1001, "stream50": 1002, "paced": 1003, "hold": 1004}


def test_config_routes_every_scenario_model_to_its_mock() -> None:
    config = litellm_config(proxy_routes(PORTS))
    routes = {entry["model_name"]: entry["litellm_params"] for entry in config["model_list"]}
    for scenario in (*SCENARIOS.values(), HOLD_SCENARIO):
        params = routes[scenario.model]
        port = PORTS[scenario.mock]
        if scenario.anthropic_upstream:
            # LiteLLM's Anthropic provider appends /v1/messages itself
            assert params == {
                "model": "anthropic/claude-upstream",
                "api_base": f"http://127.0.0.1:{port}",
                "api_key": "sk-ant-bench-upstream",
            }
        else:
            assert params["model"] == "openai/gpt-test"
            assert params["api_base"] == f"http://127.0.0.1:{port}/v1"
    # the 1 KB and the Claude-Code-sized scenarios share a model: one entry, not two
    assert len(config["model_list"]) == len(routes)
    assert routes["claude-sonnet-5"]["api_base"] == "http://127.0.0.1:1001/v1"
    # the key the benchmark's requests carry is LiteLLM's master key, so every request is authorised
    assert config["general_settings"]["master_key"] == MASTER_KEY == dict(CLAUDE_CODE_HEADERS)["x-api-key"]
    assert MASTER_KEY.startswith("sk-")
    json.dumps(config)  # written as JSON, which LiteLLM's YAML loader reads


def test_routes_skip_mocks_that_are_not_running() -> None:
    routes = proxy_routes({"fast": 1001})
    assert {model for model, *_ in routes} == {
        s.model for s in (*SCENARIOS.values(), HOLD_SCENARIO) if s.mock == "fast"
    }


def test_environment_points_messages_at_chat_completions_and_stays_offline(tmp_path: Path) -> None:
    env = litellm_env(tmp_path)
    assert env["LITELLM_MASTER_KEY"] == MASTER_KEY
    assert env["LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES"] == "True"
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"  # no price-list download at start-up
    assert env["HOME"] == str(tmp_path)


def test_installed_version_reads_the_dist_info(tmp_path: Path) -> None:
    assert installed_version(tmp_path) is None
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    (site / f"litellm-{LITELLM_VERSION}.dist-info").mkdir(parents=True)
    (site / "litellm_proxy_extras-0.1.0.dist-info").mkdir()
    assert installed_version(tmp_path) == LITELLM_VERSION
