"""CCR's routing rules, their order, the token-count shortcuts, and custom-router fallback."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.routing import RouteDecision, Router, SessionUsage, load_custom_router
from ccr_fast.routing.custom import CustomRouter, RouterRequest
from ccr_fast.tokens import TokenCounter, count_tokens

SID = "5b0e2c8e-1d4f-4a7b-8c3e-9f6a1b2c3d4e"
TAG = "<CCR-SUBAGENT-MODEL>openrouter,google/gemini-2.5-pro</CCR-SUBAGENT-MODEL>"


@dataclasses.dataclass(frozen=True)
class Slots:
    default: str | None = "deepseek,deepseek-chat"
    background: str | None = "ollama,qwen2.5-coder:latest"
    think: str | None = "deepseek,deepseek-reasoner"
    long_context: str | None = "openrouter,google/gemini-2.5-pro"
    long_context_threshold: int = 60000
    web_search: str | None = "gemini,gemini-2.5-flash"
    image: str | None = "openrouter,anthropic/claude-sonnet-4"


@dataclasses.dataclass(frozen=True)
class Provider:
    name: str
    models: tuple[str, ...]


PROVIDERS = (
    Provider("deepseek", ("deepseek-chat", "deepseek-reasoner")),
    Provider("openrouter", ("google/gemini-2.5-pro", "anthropic/claude-sonnet-4")),
    Provider("ollama", ("qwen2.5-coder:latest",)),
    Provider("gemini", ("gemini-2.5-flash", "gemini-2.5-pro")),
    Provider("Moonshot", ("Kimi-K2",)),
)


class FakeConfig:
    """The slice of ccr_fast.config.Config that routing reads."""

    def __init__(self, router: Slots | None = None, providers: tuple[Provider, ...] = PROVIDERS) -> None:
        self.router = router or Slots()
        self._providers = {p.name: p for p in providers}
        self.raw: dict[str, Any] = {
            "Providers": [{"name": p.name, "models": list(p.models)} for p in providers],
            "Router": {"default": self.router.default},
            "team": "core",
        }

    def provider(self, name: str) -> Provider | None:
        return self._providers.get(name)


class SpyCounter(TokenCounter):
    """A real counter that reports how often whole bodies were counted."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies = 0

    def count(self, body: Mapping[str, Any]) -> int:
        self.bodies += 1
        return super().count(body)

    async def count_async(self, body: Mapping[str, Any]) -> int:
        self.bodies += 1
        return await super().count_async(body)


def make_body(model: str = "claude-sonnet-5", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Main prompt.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        "metadata": {"user_id": f'{{"device_id":"d","account_uuid":"","session_id":"{SID}"}}'},
    }
    body.update(extra)
    return body


def size(body: dict[str, Any]) -> int:
    return len(orjson.dumps(body))


async def route(
    body: dict[str, Any],
    router: Router | None = None,
    headers: Mapping[str, str] | None = None,
    body_size: int | None = None,
) -> RouteDecision:
    router = router or Router(FakeConfig())
    return await router.route(body, headers or {}, body_size=size(body) if body_size is None else body_size)


def image_block() -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


WEB_SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}


def everything_body() -> dict[str, Any]:
    """A body that every rule matches: haiku, web search, thinking, an image, a subagent tag."""
    body = make_body(
        "claude-haiku-4-5-20251001",
        tools=[WEB_SEARCH_TOOL],
        thinking={"type": "enabled", "budget_tokens": 31999},
    )
    body["system"][1]["text"] = TAG + "You are a subagent."
    body["messages"][0]["content"].append(image_block())
    return body


# --- order --------------------------------------------------------------------------------------


async def test_explicit_model_beats_every_other_rule() -> None:
    body = everything_body()
    body["model"] = "gemini,gemini-2.5-pro"
    config = FakeConfig(Slots(long_context_threshold=1))
    decision = await route(body, Router(config))
    assert (decision.provider, decision.model, decision.scenario) == ("gemini", "gemini-2.5-pro", "explicit")
    assert decision.token_count is None


@pytest.mark.parametrize(
    ("unset", "scenario", "expected"),
    [
        ((), "longContext", "openrouter,google/gemini-2.5-pro"),
        (("long_context",), "subagent", "openrouter,google/gemini-2.5-pro"),
        (("long_context", "tag"), "background", "ollama,qwen2.5-coder:latest"),
        (("long_context", "tag", "background"), "webSearch", "gemini,gemini-2.5-flash"),
        (
            ("long_context", "tag", "background", "web_search"),
            "image",
            "openrouter,anthropic/claude-sonnet-4",
        ),
        (("long_context", "tag", "background", "web_search", "image"), "think", "deepseek,deepseek-reasoner"),
        (
            ("long_context", "tag", "background", "web_search", "image", "think"),
            "default",
            "deepseek,deepseek-chat",
        ),
    ],
)
async def test_rule_order(unset: tuple[str, ...], scenario: str, expected: str) -> None:
    body = everything_body()
    if "tag" in unset:
        body["system"][1]["text"] = "You are a subagent."
    slots = Slots(long_context_threshold=50, **{name: None for name in unset if name != "tag"})
    decision = await route(body, Router(FakeConfig(slots)))
    assert decision.scenario == scenario
    assert f"{decision.provider},{decision.model}" == expected


async def test_rules_fall_through_when_body_does_not_match() -> None:
    decision = await route(make_body("claude-opus-4-8"))
    assert (decision.provider, decision.model, decision.scenario) == ("deepseek", "deepseek-chat", "default")
    assert decision.session_id == SID


# --- explicit -----------------------------------------------------------------------------------


async def test_explicit_provider_and_model_matched_case_insensitively() -> None:
    decision = await route(make_body("DeepSeek,DeepSeek-Reasoner"))
    assert (decision.provider, decision.model) == ("deepseek", "deepseek-reasoner")
    decision = await route(make_body("moonshot,kimi-k2"))
    assert (decision.provider, decision.model) == ("Moonshot", "Kimi-K2")


async def test_explicit_unlisted_model_passes_through() -> None:
    decision = await route(make_body("deepseek,deepseek-v4-preview"))
    assert (decision.provider, decision.model, decision.scenario) == (
        "deepseek",
        "deepseek-v4-preview",
        "explicit",
    )


async def test_explicit_model_keeps_everything_after_the_first_comma() -> None:
    decision = await route(make_body("openrouter,vendor/model,v2"))
    assert (decision.provider, decision.model) == ("openrouter", "vendor/model,v2")


async def test_unknown_provider_is_404() -> None:
    with pytest.raises(GatewayError) as info:
        await route(make_body("nosuch,model-x"))
    assert info.value.status == 404
    assert info.value.error_type == "not_found_error"
    assert "unknown provider 'nosuch'" in info.value.message
    assert "deepseek" in info.value.message


@pytest.mark.parametrize("model", ["deepseek,", ",deepseek-chat", " , "])
async def test_malformed_explicit_route_is_400(model: str) -> None:
    with pytest.raises(GatewayError) as info:
        await route(make_body(model))
    assert info.value.status == 400
    assert "provider,model" in info.value.message


# --- longContext --------------------------------------------------------------------------------


def big_body(tokens_wanted: int) -> dict[str, Any]:
    """A body whose counted tokens exceed ``tokens_wanted`` (" lorem" is one cl100k token)."""
    body = make_body()
    body["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "ok"}]})
    body["messages"].append({"role": "user", "content": " lorem" * (tokens_wanted + 100)})
    return body


async def test_long_context_by_real_count_at_default_threshold() -> None:
    body = big_body(60000)
    decision = await route(body)
    assert decision.scenario == "longContext"
    assert decision.token_count == count_tokens(body)
    assert decision.token_count is not None and decision.token_count > 60000


async def test_below_threshold_counts_but_stays_default() -> None:
    counter = SpyCounter()
    body = big_body(30000)
    decision = await route(body, Router(FakeConfig(), counter=counter))
    assert decision.scenario == "default"
    assert decision.token_count == count_tokens(body)
    assert counter.bodies == 1


async def test_long_context_unconfigured_skips_counting() -> None:
    counter = SpyCounter()
    decision = await route(big_body(60000), Router(FakeConfig(Slots(long_context=None)), counter=counter))
    assert decision.scenario == "default"
    assert decision.token_count is None
    assert counter.bodies == 0


async def test_long_context_threshold_from_config() -> None:
    body = big_body(2000)
    decision = await route(body, Router(FakeConfig(Slots(long_context_threshold=2000))))
    assert decision.scenario == "longContext"


async def test_long_context_via_session_history() -> None:
    sessions = SessionUsage()
    sessions.record(SID, 70000)
    body = big_body(25000)
    decision = await route(body, Router(FakeConfig(), sessions=sessions))
    assert decision.scenario == "longContext"
    assert decision.token_count is not None and 20000 < decision.token_count < 60000

    fresh = await route(big_body(25000), Router(FakeConfig()))
    assert fresh.scenario == "default"


@pytest.mark.parametrize(("previous", "counted"), [(59000, 0), (70000, 1)])
async def test_only_a_long_session_forces_counting_of_a_mid_sized_body(previous: int, counted: int) -> None:
    sessions = SessionUsage()
    sessions.record(SID, previous)
    counter = SpyCounter()
    body = big_body(8000)
    assert 20000 < size(body) <= 60000
    decision = await route(body, Router(FakeConfig(), sessions=sessions, counter=counter))
    assert decision.scenario == "default"
    assert counter.bodies == counted
    assert decision.token_count == (count_tokens(body) if counted else None)


async def test_session_history_needs_a_sizeable_request() -> None:
    sessions = SessionUsage()
    sessions.record(SID, 90000)
    body = big_body(15000)
    decision = await route(body, Router(FakeConfig(), sessions=sessions))
    assert decision.scenario == "default"
    assert decision.token_count is not None and decision.token_count < 20000


async def test_session_history_from_header() -> None:
    sessions = SessionUsage()
    sessions.record("header-session", 80000)
    body = big_body(25000)
    del body["metadata"]
    decision = await route(
        body, Router(FakeConfig(), sessions=sessions), {"x-claude-code-session-id": "header-session"}
    )
    assert (decision.scenario, decision.session_id) == ("longContext", "header-session")


async def test_small_body_skips_counting_entirely() -> None:
    sessions = SessionUsage()
    sessions.record(SID, 500000)
    counter = SpyCounter()
    body = make_body("claude-opus-4-8")
    assert size(body) <= 20000
    decision = await route(body, Router(FakeConfig(), sessions=sessions, counter=counter))
    assert decision.scenario == "default"
    assert decision.token_count is None
    assert counter.bodies == 0


async def test_body_size_below_threshold_skips_counting_without_session() -> None:
    counter = SpyCounter()
    body = big_body(30000)
    decision = await route(body, Router(FakeConfig(), counter=counter), body_size=59000)
    assert (decision.scenario, decision.token_count, counter.bodies) == ("default", None, 0)


async def test_body_just_over_a_small_threshold_is_counted() -> None:
    counter = SpyCounter()
    router = Router(FakeConfig(Slots(long_context_threshold=100)), counter=counter)
    decision = await route(make_body(), router)
    assert counter.bodies == 1
    assert decision.scenario == "default"
    assert decision.token_count == count_tokens(make_body())


# --- subagent -----------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1, 2])
async def test_subagent_tag_in_any_system_block_is_used_and_stripped(index: int) -> None:
    body = make_body()
    body["system"][index]["text"] = "Before. " + TAG + " After."
    decision = await route(body)
    assert (decision.provider, decision.model, decision.scenario) == (
        "openrouter",
        "google/gemini-2.5-pro",
        "subagent",
    )
    assert body["system"][index]["text"] == "Before.  After."
    assert all("CCR-SUBAGENT-MODEL" not in block["text"] for block in body["system"])


async def test_subagent_tag_in_string_system() -> None:
    body = make_body(system=TAG + "You are an Explore agent.")
    decision = await route(body)
    assert decision.scenario == "subagent"
    assert body["system"] == "You are an Explore agent."


async def test_subagent_tag_spanning_lines_is_found() -> None:
    body = make_body(system="<CCR-SUBAGENT-MODEL>\n  gemini,gemini-2.5-flash\n</CCR-SUBAGENT-MODEL>rest")
    decision = await route(body)
    assert (decision.provider, decision.model) == ("gemini", "gemini-2.5-flash")
    assert body["system"] == "rest"


async def test_subagent_tag_is_stripped_even_when_an_earlier_rule_wins() -> None:
    body = big_body(60000)
    body["system"][2]["text"] = TAG + "prompt"
    decision = await route(body)
    assert decision.scenario == "longContext"
    assert body["system"][2]["text"] == "prompt"


async def test_empty_or_unclosed_tag_is_ignored() -> None:
    body = make_body(system="<CCR-SUBAGENT-MODEL></CCR-SUBAGENT-MODEL> and <CCR-SUBAGENT-MODEL>x,y")
    decision = await route(body)
    assert decision.scenario == "default"


async def test_subagent_tag_with_unknown_provider_is_404() -> None:
    body = make_body(system="<CCR-SUBAGENT-MODEL>ghost,model</CCR-SUBAGENT-MODEL>")
    with pytest.raises(GatewayError) as info:
        await route(body)
    assert info.value.status == 404
    assert "CCR-SUBAGENT-MODEL" in info.value.message


# --- background ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "claude-haiku-4-5-20251001",
        "claude-3-5-haiku-latest",
        "claude-3-5-haiku-20241022",
        "claude-haiku-5-5",
        "claude-3-haiku-20240307",
        "Claude-Haiku-4-5",
        "anthropic/claude-3.5-haiku",
        "claude-haiku-4-5@20251001",
    ],
)
async def test_every_haiku_name_is_background(model: str) -> None:
    decision = await route(make_body(model))
    assert (decision.provider, decision.model, decision.scenario) == (
        "ollama",
        "qwen2.5-coder:latest",
        "background",
    )


@pytest.mark.parametrize("model", ["claude-sonnet-5", "claude-opus-5-5", "haiku-mini", "gpt-4o"])
async def test_non_haiku_names_are_not_background(model: str) -> None:
    assert (await route(make_body(model))).scenario == "default"


async def test_background_unset_falls_through() -> None:
    router = Router(FakeConfig(Slots(background=None)))
    assert (await route(make_body("claude-haiku-4-5-20251001"), router)).scenario == "default"


# --- webSearch ----------------------------------------------------------------------------------


async def test_web_search_tool_type() -> None:
    body = make_body(tools=[{"name": "Read", "input_schema": {"type": "object"}}, WEB_SEARCH_TOOL])
    assert (await route(body)).scenario == "webSearch"


async def test_tool_named_web_search_without_type_is_not_web_search() -> None:
    body = make_body(tools=[{"name": "web_search", "input_schema": {"type": "object"}}, "junk", {"type": 3}])
    assert (await route(body)).scenario == "default"


# --- image --------------------------------------------------------------------------------------


async def test_image_in_last_user_message() -> None:
    body = make_body()
    body["messages"][0]["content"].append(image_block())
    assert (await route(body)).scenario == "image"


async def test_image_inside_tool_result() -> None:
    body = make_body()
    body["messages"].append({"role": "assistant", "content": [{"type": "tool_use", "id": "t", "input": {}}]})
    body["messages"].append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t", "content": [image_block()]}],
        }
    )
    assert (await route(body)).scenario == "image"


async def test_image_in_an_earlier_user_message_does_not_count() -> None:
    body = make_body()
    body["messages"][0]["content"].append(image_block())
    body["messages"].append({"role": "assistant", "content": "I see a cat."})
    body["messages"].append({"role": "user", "content": "Thanks, now fix the bug."})
    assert (await route(body)).scenario == "default"


async def test_image_slot_unset_falls_through() -> None:
    body = make_body()
    body["messages"][0]["content"].append(image_block())
    assert (await route(body, Router(FakeConfig(Slots(image=None))))).scenario == "default"


async def test_image_beats_think() -> None:
    body = make_body(thinking={"type": "adaptive"})
    body["messages"][0]["content"].append(image_block())
    assert (await route(body)).scenario == "image"


# --- think --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "thinking",
    [
        {"type": "enabled", "budget_tokens": 31999},
        {"type": "adaptive"},
        {"type": "adaptive", "display": "omitted"},
    ],
)
async def test_thinking_on_routes_to_think(thinking: dict[str, Any]) -> None:
    decision = await route(make_body(thinking=thinking))
    assert (decision.provider, decision.model, decision.scenario) == (
        "deepseek",
        "deepseek-reasoner",
        "think",
    )


@pytest.mark.parametrize("thinking", [{"type": "disabled"}, None, "enabled", {}])
async def test_thinking_off_is_default(thinking: Any) -> None:
    assert (await route(make_body(thinking=thinking))).scenario == "default"


# --- default and misconfiguration ---------------------------------------------------------------


async def test_no_default_route_is_400() -> None:
    with pytest.raises(GatewayError) as info:
        await route(make_body(), Router(FakeConfig(Slots(default=None))))
    assert info.value.status == 400
    assert info.value.error_type == "invalid_request_error"
    assert "Router.default" in info.value.message


async def test_slot_naming_unknown_provider_is_404() -> None:
    with pytest.raises(GatewayError) as info:
        await route(make_body(), Router(FakeConfig(Slots(default="removed,model"))))
    assert info.value.status == 404
    assert "Router.default" in info.value.message


async def test_slot_without_model_is_400() -> None:
    with pytest.raises(GatewayError) as info:
        await route(make_body(), Router(FakeConfig(Slots(default="deepseek"))))
    assert info.value.status == 400
    assert "Router.default" in info.value.message


async def test_missing_model_still_routes_by_default() -> None:
    body = make_body()
    del body["model"]
    assert (await route(body)).scenario == "default"


# --- custom router ------------------------------------------------------------------------------


def custom(function: Any) -> CustomRouter:
    return CustomRouter(function, "test")


async def test_custom_router_runs_first() -> None:
    seen: list[tuple[str | None, dict[str, Any]]] = []

    def pick(request: RouterRequest, config: dict[str, Any]) -> str:
        seen.append((request.session_id, config))
        return "gemini,gemini-2.5-pro"

    config = FakeConfig()
    decision = await route(make_body("deepseek,deepseek-chat"), Router(config, custom=custom(pick)))
    assert (decision.provider, decision.model, decision.scenario) == ("gemini", "gemini-2.5-pro", "custom")
    assert seen == [(SID, config.raw)]


async def test_custom_router_returning_none_uses_builtin_rules() -> None:
    decision = await route(
        make_body(thinking={"type": "adaptive"}), Router(FakeConfig(), custom=custom(lambda r, c: None))
    )
    assert decision.scenario == "think"


async def test_async_custom_router() -> None:
    async def pick(request: RouterRequest, config: dict[str, Any]) -> str | None:
        return "ollama,qwen2.5-coder:latest" if request.body["model"] == "claude-opus-4-8" else None

    router = Router(FakeConfig(), custom=custom(pick))
    assert (await route(make_body("claude-opus-4-8"), router)).scenario == "custom"
    assert (await route(make_body("claude-sonnet-5"), router)).scenario == "default"


async def test_raising_custom_router_falls_back_and_logs_traceback(caplog: pytest.LogCaptureFixture) -> None:
    def pick(request: RouterRequest, config: dict[str, Any]) -> str:
        raise KeyError("Router")

    with caplog.at_level(logging.ERROR, logger="ccr_fast.routing"):
        decision = await route(
            make_body("claude-haiku-4-5-20251001"), Router(FakeConfig(), custom=custom(pick))
        )
    assert decision.scenario == "background"
    [record] = caplog.records
    assert "custom router test failed" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError


async def test_custom_router_with_wrong_return_type_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ccr_fast.routing"):
        decision = await route(make_body(), Router(FakeConfig(), custom=custom(lambda r, c: 42)))
    assert decision.scenario == "default"
    assert caplog.records[0].exc_info is not None


async def test_custom_route_with_unknown_provider_is_404() -> None:
    with pytest.raises(GatewayError) as info:
        await route(make_body(), Router(FakeConfig(), custom=custom(lambda r, c: "ghost,x")))
    assert info.value.status == 404
    assert "custom router" in info.value.message


async def test_custom_router_sees_the_tag_before_it_is_stripped() -> None:
    seen: list[str] = []

    def pick(request: RouterRequest, config: dict[str, Any]) -> str | None:
        seen.append(request.body["system"][1]["text"])
        return None

    body = make_body()
    body["system"][1]["text"] = TAG + "agent"
    decision = await route(body, Router(FakeConfig(), custom=custom(pick)))
    assert seen == [TAG + "agent"]
    assert decision.scenario == "subagent"
    assert body["system"][1]["text"] == "agent"


async def test_token_count_is_computed_once_for_custom_and_builtin_rules() -> None:
    counts: list[int] = []

    def peek(request: RouterRequest, config: dict[str, Any]) -> None:
        counts.extend([request.token_count, request.token_count])

    counter = SpyCounter()
    body = big_body(60000)
    decision = await route(body, Router(FakeConfig(), custom=custom(peek), counter=counter))
    assert decision.scenario == "longContext"
    assert counter.bodies == 1
    assert counts == [decision.token_count, decision.token_count]


async def test_custom_router_token_count_is_reported() -> None:
    counter = SpyCounter()
    decision = await route(
        make_body(),
        Router(
            FakeConfig(),
            custom=custom(lambda r, c: "deepseek,deepseek-chat" if r.token_count else None),
            counter=counter,
        ),
    )
    assert decision.scenario == "custom"
    assert decision.token_count == count_tokens(make_body())


async def test_custom_router_loaded_from_file(tmp_path: Path) -> None:
    path = tmp_path / "route_by_team.py"
    path.write_text(
        "def router(request, config):\n"
        "    if config.get('team') == 'core' and 'opus' in request.body['model']:\n"
        "        return 'openrouter,anthropic/claude-sonnet-4'\n"
        "    return None\n"
    )
    router = Router(FakeConfig(), custom=load_custom_router(str(path)))
    decision = await route(make_body("claude-opus-5-5"), router)
    assert (decision.provider, decision.model, decision.scenario) == (
        "openrouter",
        "anthropic/claude-sonnet-4",
        "custom",
    )
    assert (await route(make_body("claude-sonnet-5"), router)).scenario == "default"
