"""Compiling a provider's `transformer` spec into a Plan: chain order, endpoint, headers, errors, caching."""

from __future__ import annotations

from typing import Any

import pytest

from ccr_fast.config import Config, ProviderConfig, config_from_dict
from ccr_fast.config.errors import Problem
from ccr_fast.transformers import Plan, PlanCache, build_plan, validate_transformers
from ccr_fast.transformers.plan import chain_for

URL = "https://upstream.example.test/v1/chat/completions"


def config(*providers: dict[str, Any], **top: Any) -> Config:
    data: dict[str, Any] = {"Providers": list(providers), "Router": {"default": f"{providers[0]['name']},m"}}
    data.update(top)
    return config_from_dict(data, env={})


def provider_entry(transformer: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "p", "api_base_url": URL, "api_key": "sk-secret", "models": ["m", "m2"]}
    if transformer is not None:
        entry["transformer"] = transformer
    entry.update(fields)
    return entry


def provider(transformer: dict[str, Any] | None = None, **fields: Any) -> ProviderConfig:
    return config(provider_entry(transformer, **fields)).providers[0]


def plan(transformer: dict[str, Any] | None = None, model: str = "m", **fields: Any) -> Plan:
    return build_plan(provider(transformer, **fields), model)


def body() -> dict[str, Any]:
    return {"model": "m", "max_tokens": 20000, "messages": [{"role": "user", "content": "hi"}]}


# --- chains ---------------------------------------------------------------------------------------------


def test_no_transformer_means_an_openai_plan_with_bearer_auth() -> None:
    p = plan()
    assert (p.provider, p.model, p.url) == ("p", "m", URL)
    assert p.endpoint == "openai"
    assert p.chain == ()
    assert dict(p.headers) == {"content-type": "application/json", "authorization": "Bearer sk-secret"}
    assert p.passthrough is False
    assert p.unavailable is None
    assert p.anthropic_hooks == () and p.upstream_hooks == ()


def test_provider_chain_runs_before_the_per_model_chain() -> None:
    spec = {"use": ["deepseek", ["maxtoken", {"max_tokens": 100}]], "m2": {"use": ["cleancache"]}}
    assert [(n, dict(o), path) for n, o, path in chain_for(provider(spec), "m2")] == [
        ("deepseek", {}, "transformer.use[0]"),
        ("maxtoken", {"max_tokens": 100}, "transformer.use[1]"),
        ("cleancache", {}, "transformer.m2.use[0]"),
    ]
    assert plan(spec, "m2").chain == ("deepseek", "maxtoken", "cleancache")
    assert plan(spec, "m").chain == ("deepseek", "maxtoken")


def test_chain_records_canonical_names_for_case_folded_entries() -> None:
    assert plan({"use": ["anthropic", "CleanCache"]}).chain == ("Anthropic", "cleancache")


def test_name_option_pairs_pass_their_options() -> None:
    p = plan({"use": [["maxtoken", {"max_tokens": 512}], ["streamoptions", {"include_usage": False}]]})
    assert p.dialect.max_tokens_cap == 512
    assert p.dialect.include_usage is False


def test_a_one_element_pair_has_no_options() -> None:
    assert plan({"use": [["cleancache"]]}).chain == ("cleancache",)


def test_per_model_chain_can_lower_a_provider_wide_cap() -> None:
    spec = {"use": ["deepseek"], "m2": {"use": [["maxtoken", {"max_tokens": 1000}]]}}
    assert plan(spec, "m").dialect.max_tokens_cap == 8192
    assert plan(spec, "m2").dialect.max_tokens_cap == 1000


# --- endpoints and headers ------------------------------------------------------------------------------


def test_anthropic_alone_is_a_passthrough_plan_with_x_api_key() -> None:
    p = plan({"use": ["Anthropic"]})
    assert p.endpoint == "anthropic"
    assert p.passthrough is True
    assert dict(p.headers) == {"content-type": "application/json", "x-api-key": "sk-secret"}


def test_anthropic_with_use_bearer_sends_authorization_instead() -> None:
    p = plan({"use": [["Anthropic", {"useBearer": True, "userAgent": "ua/2"}]]})
    assert dict(p.headers) == {
        "content-type": "application/json",
        "authorization": "Bearer sk-secret",
        "user-agent": "ua/2",
    }


@pytest.mark.parametrize(
    "use",
    [
        ["Anthropic", "cleancache"],
        ["Anthropic", ["maxtoken", {"max_tokens": 10}]],
        ["Anthropic", ["customparams", {"x": 1}]],
    ],
)
def test_anthropic_request_hooks_keep_response_passthrough(use: list[Any]) -> None:
    """Request-side hooks change what is sent; the response bytes still pass through untouched."""
    p = plan({"use": use})
    assert p.endpoint == "anthropic"
    assert p.anthropic_hooks
    assert p.passthrough is True


def test_response_filters_end_passthrough() -> None:
    from ccr_fast.transformers.base import PlanBuilder, Transformer
    from ccr_fast.transformers.registry import REGISTRY

    class Upper(Transformer):
        """test filter"""

        name = "test-upper"

        def configure(self, plan: PlanBuilder) -> None:
            plan.message_hooks.append(lambda m: None)

    REGISTRY["test-upper"] = Upper
    try:
        p = plan({"use": ["Anthropic", "test-upper"]})
        assert p.passthrough is False
        assert len(p.message_hooks) == 1
    finally:
        del REGISTRY["test-upper"]


def test_anthropic_with_only_dialect_tweaks_stays_passthrough() -> None:
    p = plan({"use": ["Anthropic", "streamoptions", "groq"]})
    assert p.passthrough is True


def test_per_model_anthropic_switches_only_that_model() -> None:
    spec = {"m2": {"use": ["Anthropic"]}}
    assert plan(spec, "m").endpoint == "openai"
    assert plan(spec, "m2").endpoint == "anthropic"


def test_explicit_openai_endpoint_uses_bearer() -> None:
    p = plan({"use": ["OpenAI"]})
    assert p.endpoint == "openai"
    assert p.headers["authorization"] == "Bearer sk-secret"
    assert "x-api-key" not in p.headers


def test_customparams_reaches_the_anthropic_body_whatever_its_position() -> None:
    for spec in (
        {"use": [["customparams", {"top_k": 3}], "Anthropic"]},
        {"use": [["customparams", {"top_k": 3}]], "m": {"use": ["Anthropic"]}},
        {"use": ["Anthropic", ["customparams", {"top_k": 3}]]},
    ):
        p = plan(spec)
        assert p.endpoint == "anthropic"
        b = body()
        for hook in p.anthropic_hooks:
            hook(b)
        assert b["top_k"] == 3, spec


def test_plan_is_immutable() -> None:
    p = plan()
    with pytest.raises(AttributeError):
        p.endpoint = "anthropic"  # type: ignore[misc]


# --- errors and warnings --------------------------------------------------------------------------------


def test_unknown_transformer_raises_with_its_key_path() -> None:
    with pytest.raises(ValueError, match=r"^transformer\.use\[1\]: unknown transformer 'bogus'") as caught:
        plan({"use": ["deepseek", "bogus"]})
    assert "known: " in str(caught.value) and "deepseek" in str(caught.value)


def test_bad_options_raise_with_the_per_model_key_path() -> None:
    with pytest.raises(ValueError, match=r"^transformer\.m2\.use\[0\]: transformer 'maxtoken': "):
        plan({"m2": {"use": [["maxtoken", {"max_tokens": -1}]]}}, "m2")


def test_validate_reports_unknown_names_with_the_provider_path() -> None:
    cfg = config(
        provider_entry({"use": ["deepseek"]}, name="ok"),
        provider_entry({"use": ["cleancache", "nosuch"]}, name="bad"),
    )
    problems, warnings = validate_transformers(cfg)
    assert warnings == []
    assert len(problems) == 1
    assert problems[0].path == "Providers[1].transformer.use[1]"
    assert problems[0].reason.startswith("unknown transformer 'nosuch'")


def test_validate_reports_per_model_problems_once_each() -> None:
    spec = {"use": ["bogus"], "m2": {"use": [["maxtoken", {"max_tokens": "lots"}]]}}
    problems, _ = validate_transformers(config(provider_entry(spec)))
    assert [p.path for p in problems] == ["Providers[0].transformer.use[0]"]

    spec = {"m2": {"use": [["maxtoken", {"max_tokens": "lots"}]]}}
    problems, _ = validate_transformers(config(provider_entry(spec)))
    assert problems == [
        Problem(
            "Providers[0].transformer.m2.use[0]",
            "transformer 'maxtoken': option max_tokens must be a positive integer",
        )
    ]


def test_validate_checks_chains_of_models_not_in_the_models_list() -> None:
    spec = {"other": {"use": ["nope"]}}
    problems, _ = validate_transformers(config(provider_entry(spec)))
    assert [p.path for p in problems] == ["Providers[0].transformer.other.use[0]"]


def test_validate_checks_a_provider_without_models() -> None:
    problems, _ = validate_transformers(
        config(provider_entry({"use": ["nope"]}, models=[]), Router={"default": "p,x"})
    )
    assert [p.path for p in problems] == ["Providers[0].transformer.use[0]"]


def test_valid_config_has_no_problems() -> None:
    spec = {"use": ["Anthropic", ["customparams", {"a": 1}]], "m": {"use": ["cleancache"]}}
    assert validate_transformers(config(provider_entry(spec))) == ([], [])


@pytest.mark.parametrize("name", ["future-endpoint", "Future-Endpoint"])
def test_not_yet_available_names_warn_and_mark_the_plan_unavailable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every CCR name is implemented today; the mechanism stays for the next one CCR adds
    monkeypatch.setattr("ccr_fast.transformers.plan.NOT_YET_AVAILABLE", frozenset({"future-endpoint"}))
    cfg = config(provider_entry({"use": [name]}))
    problems, warnings = validate_transformers(cfg)
    assert problems == []
    assert len(warnings) == 1
    assert f"'{name}'" in warnings[0] and "'p'" in warnings[0]
    p = build_plan(cfg.providers[0], "m")
    assert p.unavailable == warnings[0]
    assert name in p.chain


def test_a_javascript_plugin_is_a_config_error_with_its_path() -> None:
    """CCR plugins are JavaScript; ccr-fast loads Python ones and says how to port a .js plugin."""
    cfg = config(
        provider_entry({"use": ["my-plugin"]}),
        transformers=[{"path": "/opt/my-plugin.js", "name": "my-plugin"}],
    )
    problems, _ = validate_transformers(cfg)
    assert any(p.path == "transformers[0].path" and "Python" in p.reason for p in problems), problems
    with pytest.raises(ValueError, match="unknown transformer 'my-plugin'"):
        build_plan(cfg.providers[0], "m")


# --- PlanCache ------------------------------------------------------------------------------------------


def test_plan_cache_builds_once_per_provider_and_model() -> None:
    cfg = config(
        provider_entry({"use": ["deepseek"], "m2": {"use": ["cleancache"]}}),
        provider_entry(None, name="q"),
    )
    cache = PlanCache(cfg)
    p, q = cfg.providers
    first = cache.get(p, "m")
    assert cache.get(p, "m") is first
    other_model = cache.get(p, "m2")
    assert other_model is not first and other_model.chain == ("deepseek", "cleancache")
    other_provider = cache.get(q, "m")
    assert other_provider is not first and other_provider.provider == "q"
    assert cache.get(q, "m") is other_provider


def test_plan_cache_does_not_cache_failures() -> None:
    cfg = config(provider_entry({"m2": {"use": ["nope"]}}))
    cache = PlanCache(cfg)
    for _ in range(2):
        with pytest.raises(ValueError, match="unknown transformer 'nope'"):
            cache.get(cfg.providers[0], "m2")
    assert cache.get(cfg.providers[0], "m").endpoint == "openai"
