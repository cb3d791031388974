"""The ``openai-responses`` endpoint transformer: its plan, its listing, and its dialect in the gateway."""

from __future__ import annotations

from typing import Any

import orjson

from ccr_fast.config import config_from_dict
from ccr_fast.server.dialects import DIALECTS, OpenAIResponses, request_warning
from ccr_fast.transformers import Plan, build_plan
from ccr_fast.transformers.registry import NOT_YET_AVAILABLE, describe_transformers, endpoint_path, lookup

URL = "https://api.openai.com/v1/responses"


def plan(use: list[Any], per_model: list[Any] | None = None, model: str = "gpt-5") -> Plan:
    transformer: dict[str, Any] = {"use": use}
    if per_model is not None:
        transformer[model] = {"use": per_model}
    entry = {
        "name": "oai",
        "api_base_url": URL,
        "api_key": "sk-secret",
        "models": [model],
        "transformer": transformer,
    }
    cfg = config_from_dict({"Providers": [entry], "Router": {"default": f"oai,{model}"}}, env={})
    return build_plan(cfg.providers[0], model)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "claude", "max_tokens": 32000, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_the_plan_speaks_the_responses_api_with_bearer_auth() -> None:
    p = plan(["openai-responses"])
    assert p.endpoint == "openai-responses" and p.chain == ("openai-responses",)
    assert p.unavailable is None and p.passthrough is False
    assert dict(p.headers) == {"content-type": "application/json", "authorization": "Bearer sk-secret"}
    assert plan(["OpenAI-Responses"]).endpoint == "openai-responses"


def test_it_is_listed_and_available() -> None:
    assert lookup("openai-responses") is not None and "openai-responses" not in NOT_YET_AVAILABLE
    assert endpoint_path("openai-responses") == "/v1/responses"
    listed = {t["name"]: t for t in describe_transformers()}
    assert listed["openai-responses"]["available"] is True
    assert listed["openai-responses"]["endpoint"] == "/v1/responses"


def test_the_dialect_encodes_with_the_chains_settings() -> None:
    p = plan(["openai-responses", ["maxtoken", {"max_tokens": 4096}]], [["customparams", {"store": True}]])
    assert isinstance(DIALECTS[p.endpoint], OpenAIResponses)
    url, headers, payload = DIALECTS[p.endpoint].encode(body(stream=True), p, "gpt-5", True)
    sent = orjson.loads(payload)
    assert url == URL and headers == {}
    assert sent["model"] == "gpt-5" and sent["stream"] is True
    assert sent["max_output_tokens"] == 4096 and sent["store"] is True
    translator = DIALECTS[p.endpoint].translator("gpt-5", 10)
    assert translator.usage["input_tokens"] == 10 and translator.stop_reason is None


def test_the_warning_names_what_the_responses_api_did_not_get() -> None:
    p = plan(["openai-responses"])
    web = {"type": "web_search_20250305", "name": "web_search"}
    warning = request_warning(body(stop_sequences=["END"], tools=[web]), p, "gpt-5")
    assert warning == (
        "server tools not supported by model 'gpt-5' and left out: web_search_20250305; "
        "parameters not supported by model 'gpt-5' and left out: stop_sequences"
    )
    assert request_warning(body(), p, "gpt-5") is None
    thinking = body(thinking={"type": "enabled", "budget_tokens": 2048}, temperature=1)
    assert request_warning(thinking, p, "gpt-5-ö") == (
        "parameters not supported by model 'gpt-5-\\xf6' and left out: temperature"
    )
    chat = plan(["OpenAI"])
    assert request_warning(body(stop_sequences=["END"]), chat, "gpt-5") is None
