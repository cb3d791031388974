"""Schema checks: types, defaults, providers, transformer shapes, routes, fallback, and problem paths."""

from __future__ import annotations

from typing import Any

import pytest

from ccr_fast.config import Config, ConfigError, config_from_dict
from ccr_fast.config.errors import Problem
from ccr_fast.config.model import available_cpus
from ccr_fast.config.validate import check, child

URL = "https://api.example.test/v1/chat/completions"


def provider(name: str = "p", **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "api_base_url": URL, "api_key": "k", "models": ["m", "m2"]}
    entry.update(overrides)
    return entry


def with_providers(*providers: dict[str, Any], **top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"Providers": list(providers), "Router": {"default": f"{providers[0]['name']},m"}}
    data.update(top)
    return data


def errors_of(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, env=env or {})
    return [str(p) for p in caught.value.problems]


def load(data: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    return config_from_dict(data, env=env or {})


# --- defaults and simple keys ----------------------------------------------------------------------------


def test_empty_config_is_valid_and_has_ccrs_defaults() -> None:
    config = load({})
    assert (config.port, config.host, config.apikey, config.log, config.log_level) == (
        3456,
        "127.0.0.1",
        None,
        True,
        "info",
    )
    assert config.api_timeout_ms == 600000
    assert config.proxy_url is None
    assert config.non_interactive_mode is False and config.force_use_image_agent is False
    assert config.providers == () and config.transformers == () and dict(config.fallback) == {}
    assert config.router.default is None and config.router.long_context_threshold == 60000
    assert config.max_body_size == 32 * 1024 * 1024
    assert config.workers == available_cpus()
    assert config.shutdown_timeout_ms == 30000
    assert config.upstream_pool_size == 256
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("PORT", "abc", 'PORT: expected an integer 1-65535, got "abc"'),
        ("PORT", 70000, "PORT: expected an integer 1-65535, got 70000"),
        ("PORT", True, "PORT: expected an integer 1-65535, got true"),
        ("PORT", 80.5, "PORT: expected an integer 1-65535, got 80.5"),
        ("HOST", 5, "HOST: expected a string, got 5"),
        ("APIKEY", 123456, "APIKEY: expected a string, got a number"),
        ("LOG", "maybe", 'LOG: expected true or false, got "maybe"'),
        ("LOG_LEVEL", "loud", 'LOG_LEVEL: expected one of debug, info, warn, warning, error, got "loud"'),
        ("API_TIMEOUT_MS", 0, "API_TIMEOUT_MS: expected an integer >= 1, got 0"),
        (
            "PROXY_URL",
            "nonsense",
            "PROXY_URL: expected a proxy URL such as http://host:8080 (value not shown)",
        ),
        ("NON_INTERACTIVE_MODE", 1, "NON_INTERACTIVE_MODE: expected true or false, got 1"),
        ("CUSTOM_ROUTER_PATH", [], "CUSTOM_ROUTER_PATH: expected a string, got a list"),
        ("REWRITE_SYSTEM_PROMPT", {}, "REWRITE_SYSTEM_PROMPT: expected a string, got an object"),
        ("CLAUDE_PATH", False, "CLAUDE_PATH: expected a string, got false"),
        ("ANTHROPIC_SMALL_FAST_MODEL", 3, "ANTHROPIC_SMALL_FAST_MODEL: expected a string, got 3"),
        ("forceUseImageAgent", "yes", 'forceUseImageAgent: expected true or false, got "yes"'),
        ("StatusLine", [], "StatusLine: expected an object, got a list"),
        ("Providers", {}, "Providers: expected a list of providers, got an object"),
        ("Router", "deepseek", 'Router: expected an object, got "deepseek"'),
        ("transformers", {}, "transformers: expected a list of {path, options} objects, got an object"),
        ("fallback", [], "fallback: expected an object, got a list"),
        (
            "MAX_BODY_SIZE",
            "lots",
            'MAX_BODY_SIZE: expected a size in bytes (an integer > 0 or a string such as "32mb"), got "lots"',
        ),
        ("WORKERS", 0, "WORKERS: expected an integer >= 1, got 0"),
        ("SHUTDOWN_TIMEOUT_MS", -1, "SHUTDOWN_TIMEOUT_MS: expected an integer >= 0, got -1"),
        ("UPSTREAM_POOL_SIZE", "x", 'UPSTREAM_POOL_SIZE: expected an integer >= 1, got "x"'),
    ],
)
def test_wrong_type_names_path_and_expected_type(key: str, value: Any, expected: str) -> None:
    assert errors_of({key: value}) == [expected]


def test_numbers_and_booleans_are_accepted_as_strings() -> None:
    config = load(
        {"PORT": "8080", "LOG": "false", "API_TIMEOUT_MS": " 1000 ", "NON_INTERACTIVE_MODE": "TRUE"}
    )
    assert (config.port, config.log, config.api_timeout_ms, config.non_interactive_mode) == (
        8080,
        False,
        1000,
        True,
    )


def test_null_means_default() -> None:
    config = load({"PORT": None, "LOG": None, "HOST": None, "Router": None, "Providers": None})
    assert (config.port, config.log, config.host) == (3456, True, "127.0.0.1")


@pytest.mark.parametrize(
    ("given", "level"),
    [
        ("debug", "debug"),
        ("INFO", "info"),
        ("warn", "warning"),
        ("Warning", "warning"),
        ("error", "error"),
        ("trace", "debug"),
        ("fatal", "error"),
        ("", "info"),
    ],
)
def test_log_levels_are_normalised(given: str, level: str) -> None:
    assert load({"LOG_LEVEL": given}).log_level == level


@pytest.mark.parametrize(
    ("given", "size"),
    [
        (1048576, 1048576),
        ("1048576", 1048576),
        ("512kb", 512 * 1024),
        ("32mb", 32 * 1024 * 1024),
        ("32MB", 32 * 1024 * 1024),
        ("32 MiB", 32 * 1024 * 1024),
        ("1.5g", 3 * 512 * 1024 * 1024),
        ("100b", 100),
    ],
)
def test_max_body_size_accepts_integers_and_unit_strings(given: int | str, size: int) -> None:
    assert load({"MAX_BODY_SIZE": given}).max_body_size == size


@pytest.mark.parametrize("given", [0, -1, "0mb", "12 parsecs", True, 1.5])
def test_max_body_size_rejects_nonsense(given: Any) -> None:
    (problem,) = errors_of({"MAX_BODY_SIZE": given})
    assert problem.startswith("MAX_BODY_SIZE: expected a size in bytes")


def test_service_port_environment_overrides_port() -> None:
    assert load({"PORT": 4000}, env={"SERVICE_PORT": "5000"}).port == 5000
    assert load({}, env={"SERVICE_PORT": "5001"}).port == 5001
    assert load({"PORT": 4000}, env={"SERVICE_PORT": ""}).port == 4000


def test_invalid_service_port_is_reported() -> None:
    assert errors_of({}, env={"SERVICE_PORT": "http"}) == [
        'env SERVICE_PORT: expected an integer 1-65535, got "http"'
    ]


def test_proxy_url_falls_back_to_https_proxy_environment() -> None:
    assert load({}, env={"HTTPS_PROXY": "http://proxy:3128"}).proxy_url == "http://proxy:3128"
    assert load({}, env={"https_proxy": "http://lower:3128"}).proxy_url == "http://lower:3128"
    assert load({"PROXY_URL": ""}, env={"HTTPS_PROXY": "http://proxy:3128"}).proxy_url == "http://proxy:3128"
    assert (
        load({"PROXY_URL": "socks5://p:1080"}, env={"HTTPS_PROXY": "http://x:1"}).proxy_url
        == "socks5://p:1080"
    )
    assert load({}, env={"HTTP_PROXY": "http://not-this:1"}).proxy_url is None


def test_proxy_url_error_does_not_echo_credentials() -> None:
    (problem,) = errors_of({"PROXY_URL": "user:hunter2@proxy"})
    assert problem.startswith("PROXY_URL: ")
    assert "hunter2" not in problem


def test_secret_values_are_never_echoed_in_type_errors() -> None:
    problems = errors_of({"APIKEY": 98765432, **with_providers(provider(api_key=12345678))})
    assert all("98765432" not in p and "12345678" not in p for p in problems)
    assert "Providers[0].api_key: expected a string, got a number" in problems


def test_public_host_without_apikey_is_forced_to_loopback_with_a_warning() -> None:
    config = load({"HOST": "0.0.0.0"})
    assert config.host == "127.0.0.1"
    assert len(config.warnings) == 1 and config.warnings[0].startswith("HOST: ")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.2", "::1", "[::1]"])
def test_loopback_hosts_are_kept_without_apikey(host: str) -> None:
    config = load({"HOST": host})
    assert config.host == host
    assert config.warnings == ()


def test_public_host_is_kept_when_apikey_is_set() -> None:
    config = load({"HOST": "0.0.0.0", "APIKEY": "router-secret"})
    assert (config.host, config.apikey, config.warnings) == ("0.0.0.0", "router-secret", ())


def test_status_line_is_kept_as_written() -> None:
    status = {"enabled": True, "currentStyle": "default", "default": {"modules": [{"type": "model"}]}}
    assert load({"StatusLine": status}).status_line == status


def test_unknown_keys_are_warnings_not_errors() -> None:
    config = load({"OPENAI_API_KEY": "x", "Router": {"fast": "a,b"}, "weird key": 1})
    assert config.warnings == (
        "OPENAI_API_KEY: unknown key, ignored",
        "Router.fast: unknown key, ignored",
        '["weird key"]: unknown key, ignored',
    )


# --- providers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "api_base_url", "api_key"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_provider_missing_or_empty_required_field(field: str, value: Any) -> None:
    entry = provider()
    if value is None:
        del entry[field]
    else:
        entry[field] = value
    data = {"Providers": [provider("first"), entry], "Router": {"default": "first,m"}}
    assert f"Providers[1].{field}: missing or empty" in errors_of(data)


@pytest.mark.parametrize("url", ["ftp://host/v1", "api.deepseek.com/chat/completions", "https://", "http:/x"])
def test_provider_url_must_be_http(url: str) -> None:
    problems = errors_of(with_providers(provider(api_base_url=url)))
    assert problems == [f'Providers[0].api_base_url: expected an http(s) URL, got "{url}"']


def test_provider_url_is_kept_exactly_as_written() -> None:
    url = "https://generativelanguage.googleapis.com/v1beta/models/"
    assert load(with_providers(provider(api_base_url=url))).providers[0].api_base_url == url


def test_duplicate_provider_names_are_errors_and_the_first_one_wins() -> None:
    data = with_providers(provider("a"), provider("b"), provider("a", api_key="other"))
    assert errors_of(data) == ['Providers[2].name: duplicate provider name "a" (also Providers[0])']


def test_provider_names_differing_only_in_case_are_a_warning() -> None:
    config = load(with_providers(provider("Groq"), provider("groq")))
    assert config.warnings == (
        "Providers[1].name: differs only in case from Providers[0]; "
        "case-insensitive lookups pick Providers[0]",
    )


def test_provider_name_with_a_comma_cannot_be_routed() -> None:
    assert errors_of({"Providers": [provider("a,b")], "Router": {"default": "a,b,m"}}) == [
        'Providers[0].name: must not contain "," (routes are written "provider,model")',
        'Router.default: unknown provider "a"',
    ]


def test_provider_must_be_an_object() -> None:
    assert errors_of({"Providers": ["deepseek"]}) == [
        'Providers[0]: expected a provider object, got "deepseek"'
    ]


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        ("m", 'Providers[0].models: expected a list of model names, got "m"'),
        (["m", 3], "Providers[0].models[1]: expected a model name (a non-empty string), got 3"),
        (["m", ""], 'Providers[0].models[1]: expected a model name (a non-empty string), got ""'),
    ],
)
def test_models_must_be_a_list_of_strings(models: Any, expected: str) -> None:
    assert errors_of(with_providers(provider(models=models))) == [expected]


def test_models_may_be_omitted() -> None:
    entry = provider()
    del entry["models"]
    config = load(with_providers(entry))
    assert config.providers[0].models == ()


def test_lower_case_providers_key_is_accepted() -> None:
    config = load({"providers": [provider()], "Router": {"default": "p,m"}})
    assert [p.name for p in config.providers] == ["p"]


def test_when_both_spellings_exist_providers_wins_with_a_warning() -> None:
    config = load(
        {"Providers": [provider("upper")], "providers": [provider("lower")], "Router": {"default": "upper,m"}}
    )
    assert [p.name for p in config.providers] == ["upper"]
    assert config.warnings == ('providers: ignored: "Providers" is also present and takes precedence',)


def test_errors_in_lower_case_providers_use_that_spelling_in_paths() -> None:
    assert errors_of({"providers": [provider(api_key="")], "Router": {"default": "p,m"}}) == [
        "providers[0].api_key: missing or empty"
    ]


def test_unknown_provider_keys_are_warnings() -> None:
    config = load(with_providers(provider(headers={"x": "y"})))
    assert config.warnings == ("Providers[0].headers: unknown key, ignored",)


# --- transformer shape -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"use": []},
        {"use": ["openrouter"]},
        {"use": ["deepseek", ["maxtoken", {"max_tokens": 16384}]]},
        {"use": [["reasoning"]]},
        {"use": ["deepseek"], "m": {"use": ["tooluse"]}},
        {"m2": {"use": [["sampling", {"temperature": 0.2}]]}},
        {"use": ["no-such-transformer-the-registry-reports-it"]},
    ],
)
def test_valid_transformer_shapes(spec: dict[str, Any]) -> None:
    config = load(with_providers(provider(transformer=spec)))
    assert config.providers[0].transformer == spec
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            ["deepseek"],
            'Providers[0].transformer: expected an object such as {"use": ["openrouter"]}, got a list',
        ),
        (
            {"use": "deepseek"},
            'Providers[0].transformer.use: expected a list of transformers, got "deepseek"',
        ),
        (
            {"use": [5]},
            "Providers[0].transformer.use[0]: expected a transformer name or [name, {options}], got 5",
        ),
        (
            {"use": ["ok", ""]},
            'Providers[0].transformer.use[1]: expected a transformer name or [name, {options}], got ""',
        ),
        (
            {"use": [[]]},
            "Providers[0].transformer.use[0]: expected a transformer name or [name, {options}], got a list",
        ),
        (
            {"use": [["x", 5]]},
            "Providers[0].transformer.use[0]: expected a transformer name or [name, {options}], got a list",
        ),
        (
            {"use": [[1, {}]]},
            "Providers[0].transformer.use[0]: expected a transformer name or [name, {options}], got a list",
        ),
        (
            {"use": [["x", {}, {}]]},
            "Providers[0].transformer.use[0]: expected a transformer name or [name, {options}], got a list",
        ),
        (
            {"m": ["tooluse"]},
            'Providers[0].transformer.m: expected an object such as {"use": ["tooluse"]}, got a list',
        ),
        (
            {"m": {"use": "tooluse"}},
            'Providers[0].transformer.m.use: expected a list of transformers, got "tooluse"',
        ),
    ],
)
def test_transformer_shape_errors_name_the_path(spec: Any, expected: str) -> None:
    assert errors_of(with_providers(provider(transformer=spec))) == [expected]


def test_model_names_that_are_not_identifiers_are_quoted_in_paths() -> None:
    entry = provider(models=["deepseek-chat"], transformer={"deepseek-chat": {"use": [7]}})
    data = {"Providers": [entry], "Router": {"default": "p,deepseek-chat"}}
    (problem,) = errors_of(data)
    assert problem.startswith('Providers[0].transformer["deepseek-chat"].use[0]: expected a transformer name')


def test_per_model_chain_for_an_unlisted_model_is_a_warning() -> None:
    config = load(with_providers(provider(transformer={"other": {"use": ["tooluse"]}})))
    (warning,) = config.warnings
    assert warning.startswith(
        'Providers[0].transformer.other: model "other" is not in this provider\'s models'
    )


# --- tokenizer (CCR v2) ----------------------------------------------------------------------------------


def test_tokenizer_settings_are_kept_raw() -> None:
    tokenizer = {"default": {"type": "tiktoken", "encoding": "o200k_base"}, "models": {"m": {"type": "api"}}}
    config = load(with_providers(provider(tokenizer=tokenizer)))
    assert config.providers[0].tokenizer == tokenizer


@pytest.mark.parametrize(
    ("tokenizer", "expected"),
    [
        ("tiktoken", 'Providers[0].tokenizer: expected an object, got "tiktoken"'),
        ({"default": "x"}, 'Providers[0].tokenizer.default: expected an object, got "x"'),
        ({"models": {"m": 1}}, "Providers[0].tokenizer.models.m: expected an object, got 1"),
    ],
)
def test_tokenizer_shape_errors(tokenizer: Any, expected: str) -> None:
    assert errors_of(with_providers(provider(tokenizer=tokenizer))) == [expected]


# --- Router ----------------------------------------------------------------------------------------------


def test_router_slots_map_to_fields() -> None:
    data = {
        "Providers": [provider()],
        "Router": {
            "default": "p,m",
            "background": "p,m2",
            "think": "p,m",
            "longContext": "p,m2",
            "longContextThreshold": "32000",
            "webSearch": "p,m",
            "image": "p,m2",
        },
    }
    router = load(data).router
    assert (router.default, router.background, router.think) == ("p,m", "p,m2", "p,m")
    assert (router.long_context, router.web_search, router.image) == ("p,m2", "p,m", "p,m2")
    assert router.long_context_threshold == 32000
    assert router.raw == data["Router"]


def test_router_default_is_required_only_with_providers() -> None:
    assert load({"Router": {}}).router.default is None
    assert errors_of({"Providers": [provider()]}) == [
        "Router.default: missing; required when there are providers"
    ]
    assert errors_of({"Providers": [provider()], "Router": {"default": ""}}) == [
        "Router.default: missing; required when there are providers"
    ]


def test_route_to_an_unknown_provider_is_an_error() -> None:
    assert errors_of(with_providers(provider(), Router={"default": "p,m", "think": "nobody,m"})) == [
        'Router.think: unknown provider "nobody"'
    ]


@pytest.mark.parametrize("route", ["p", "p,", ",m", 5])
def test_route_must_be_provider_comma_model(route: Any) -> None:
    (problem,) = errors_of({"Providers": [provider()], "Router": {"default": "p,m", "background": route}})
    assert problem.startswith("Router.background: expected ")


def test_route_to_an_unlisted_model_is_a_warning() -> None:
    config = load({"Providers": [provider()], "Router": {"default": "p,unlisted"}})
    assert config.router.default == "p,unlisted"
    assert config.warnings == (
        'Router.default: model "unlisted" is not listed in the models of provider "p"',
    )


def test_provider_without_a_model_list_accepts_any_model() -> None:
    entry = provider()
    del entry["models"]
    assert load({"Providers": [entry], "Router": {"default": "p,anything/at-all"}}).warnings == ()


def test_model_part_may_contain_commas() -> None:
    config = load({"Providers": [provider(models=["a,b"])], "Router": {"default": "p,a,b"}})
    assert config.router.default == "p,a,b"
    assert config.warnings == ()


def test_route_provider_is_found_ignoring_case_with_a_warning() -> None:
    config = load({"Providers": [provider("DeepSeek")], "Router": {"default": "deepseek,m"}})
    assert config.warnings == ('Router.default: provider "deepseek" matches "DeepSeek" only ignoring case',)


def test_long_context_threshold_must_be_a_positive_integer() -> None:
    assert errors_of({"Router": {"longContextThreshold": "lots"}}) == [
        'Router.longContextThreshold: expected an integer >= 1, got "lots"'
    ]


# --- plugins and fallback --------------------------------------------------------------------------------


def test_transformer_plugins_are_kept_in_order() -> None:
    plugins = [{"path": "/p/a.py", "options": {"x": 1}}, {"path": "/p/b.py"}]
    assert [dict(p) for p in load({"transformers": plugins}).transformers] == plugins


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        ([{"options": {}}], "transformers[0].path: missing or empty"),
        ([{"path": "/a.py", "options": []}], "transformers[0].options: expected an object, got a list"),
        (
            ["/a.py"],
            'transformers[0]: expected an object such as {"path": "...", "options": {}}, got "/a.py"',
        ),
    ],
)
def test_transformer_plugin_shape_errors(plugins: Any, expected: str) -> None:
    assert errors_of({"transformers": plugins}) == [expected]


def test_fallback_chains_are_tuples_per_scenario() -> None:
    data = with_providers(provider("a"), provider("b"), fallback={"default": ["b,m", "a,m2"], "think": []})
    config = load(data)
    assert config.fallback == {"default": ("b,m", "a,m2"), "think": ()}


def test_fallback_routes_are_checked_like_router_routes() -> None:
    data = with_providers(provider("a"), fallback={"default": ["a,m", "ghost,m"], "think": "a,m"})
    assert errors_of(data) == [
        'fallback.default[1]: unknown provider "ghost"',
        'fallback.think: expected a list of "provider,model" routes, got "a,m"',
    ]


def test_fallback_unknown_scenario_is_a_warning() -> None:
    config = load(with_providers(provider(), fallback={"sometimes": ["p,m"]}))
    assert config.warnings == ("fallback.sometimes: unknown key, ignored",)


# --- collecting ------------------------------------------------------------------------------------------


def test_all_problems_are_collected_into_one_error() -> None:
    data = {
        "PORT": "x",
        "LOG": "x",
        "Providers": [provider(api_key=""), provider("q", api_base_url="nope", models="m")],
        "Router": {"default": "p,m", "think": "z,m"},
        "WORKERS": -2,
    }
    assert errors_of(data) == [
        'PORT: expected an integer 1-65535, got "x"',
        'LOG: expected true or false, got "x"',
        "Providers[0].api_key: missing or empty",
        'Providers[1].api_base_url: expected an http(s) URL, got "nope"',
        'Providers[1].models: expected a list of model names, got "m"',
        'Router.think: unknown provider "z"',
        "WORKERS: expected an integer >= 1, got -2",
    ]


def test_check_returns_errors_without_raising() -> None:
    config, errors = check({"PORT": "x"}, source="<api>", env={}, notes=[Problem("a", "b")])
    assert errors == [Problem("PORT", 'expected an integer 1-65535, got "x"')]
    assert config.port == 3456  # the default stands in for the rejected value
    assert config.warnings == ("a: b",)
    assert config.source == "<api>"


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        ("", "PORT", "PORT"),
        ("Router", "think", "Router.think"),
        ("Providers", 2, "Providers[2]"),
        ("t", "deepseek-chat", 't["deepseek-chat"]'),
        ("", "a b", '["a b"]'),
        ("t", 'q"x', 't["q\\"x"]'),
    ],
)
def test_child_paths_read_like_javascript(path: str, key: str | int, expected: str) -> None:
    assert child(path, key) == expected
