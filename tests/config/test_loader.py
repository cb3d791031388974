"""Reading, JSON5 parsing, environment interpolation and the sample CCR configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccr_fast.config import (
    ConfigError,
    config_dir,
    config_from_dict,
    default_config_path,
    interpolate,
    load_config,
    parse_config,
)
from ccr_fast.config.errors import Problem
from ccr_fast.config.loader import parse_json5

VECTORS = Path(__file__).parent.parent / "vectors" / "config"

REALWORLD_ENV = {
    "HOME": "/home/dev",
    "CCR_APIKEY": "ccr-local-secret",
    "DEEPSEEK_API_KEY": "sk-deepseek-0123456789abcdef",
    "OPENROUTER_API_KEY": "sk-or-v1-0123456789abcdef",
    "GEMINI_API_KEY": "AIzaSy0123456789abcdef",
    "SILICONFLOW_API_KEY": "sk-silicon-0123456789",
}


# --- paths -----------------------------------------------------------------------------------------------


def test_config_dir_is_under_home_from_the_given_environment() -> None:
    assert config_dir({"HOME": "/home/someone"}) == Path("/home/someone/.claude-code-router")
    assert default_config_path({"HOME": "/home/someone"}) == Path(
        "/home/someone/.claude-code-router/config.json"
    )


def test_config_dir_reads_home_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/srv/ccr")
    assert default_config_path() == Path("/srv/ccr/.claude-code-router/config.json")


# --- JSON5 -----------------------------------------------------------------------------------------------


def test_json5_comments_trailing_commas_unquoted_keys_and_single_quotes() -> None:
    text = """
    // line comment
    {
      /* block
         comment */
      PORT: 4000,
      HOST: '127.0.0.1',
      Providers: [],
      Router: {},
    }
    """
    config = parse_config(text, env={})
    assert config.port == 4000
    assert config.host == "127.0.0.1"
    assert config.providers == ()


def test_plain_json_parses_the_same_as_json5() -> None:
    assert parse_json5('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}


def test_syntax_error_names_line_and_column() -> None:
    text = '{\n  "PORT": 3456\n  "HOST": "x"\n}'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="/tmp/config.json", env={})
    (problem,) = caught.value.problems
    assert problem.path == ""
    assert "line 3, column 3" in problem.reason
    assert caught.value.source == "/tmp/config.json"
    assert "/tmp/config.json" in str(caught.value)


def test_syntax_error_control_characters_are_escaped() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("{\n a: 'unterminated\n}", env={})
    reason = caught.value.problems[0].reason
    assert "line 2" in reason
    assert "\n" not in reason
    assert "\\n" in reason


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_an_error(text: str) -> None:
    with pytest.raises(ConfigError, match="empty"):
        parse_config(text, env={})


@pytest.mark.parametrize("text", ["[]", "3", '"x"', "null"])
def test_top_level_must_be_an_object(text: str) -> None:
    with pytest.raises(ConfigError, match="top level"):
        parse_config(text, env={})


# --- interpolation ---------------------------------------------------------------------------------------


def test_dollar_name_and_braced_name_are_replaced() -> None:
    value, warnings = interpolate({"a": "$KEY", "b": "${KEY}", "c": "x-$KEY-${KEY}-y"}, {"KEY": "v"})
    assert value == {"a": "v", "b": "v", "c": "x-v-v-y"}
    assert warnings == []


def test_braces_take_any_name_but_bare_names_must_be_upper_case() -> None:
    env = {"lower_case": "L", "lower": "no"}
    value, warnings = interpolate(
        {"a": "${lower_case}", "b": "$lower", "c": "${with space}"}, {**env, "with space": "S"}
    )
    assert value == {"a": "L", "b": "$lower", "c": "S"}
    assert warnings == []  # "$lower" is not a reference at all, so nothing to warn about


def test_bare_name_is_the_longest_upper_case_run_as_in_ccr() -> None:
    value, _ = interpolate("$HOME/.ccr $HOMEx $Mixed", {"HOME": "/h", "M": "m", "HOMEx": "no", "Mixed": "no"})
    assert value == "/h/.ccr /hx mixed"


def test_unset_variable_is_kept_literally_with_a_warning_naming_the_path() -> None:
    data = {"Providers": [{"api_key": "$MISSING_KEY"}], "x": {"y": "${also missing}"}}
    value, warnings = interpolate(data, {})
    assert value == data
    assert [w.path for w in warnings] == ["Providers[0].api_key", "x.y"]
    assert "MISSING_KEY" in warnings[0].reason
    assert "also missing" in warnings[1].reason


def test_empty_variable_counts_as_unset_like_ccr() -> None:
    value, warnings = interpolate("$EMPTY", {"EMPTY": ""})
    assert value == "$EMPTY"
    assert len(warnings) == 1


def test_interpolation_reaches_nested_lists_and_objects_but_not_keys() -> None:
    data = {"$K": [{"deep": ["$K", {"$K": "${K}"}]}], "n": 1, "b": True, "z": None}
    value, _ = interpolate(data, {"K": "v"})
    assert value == {"$K": [{"deep": ["v", {"$K": "v"}]}], "n": 1, "b": True, "z": None}


def test_interpolation_does_not_change_its_input() -> None:
    data = {"a": ["$K"]}
    interpolate(data, {"K": "v"})
    assert data == {"a": ["$K"]}


def test_parse_config_interpolates_and_keeps_warnings_on_the_snapshot() -> None:
    text = """{
      Providers: [{name: "p", api_base_url: "https://x.test/v1/chat/completions", api_key: "$P_KEY",
                   models: ["m"]}],
      Router: {default: "p,m"},
      APIKEY: "$UNSET_ROUTER_KEY",
    }"""
    config = parse_config(text, env={"P_KEY": "secret-value"})
    assert config.providers[0].api_key == "secret-value"
    assert config.raw["Providers"][0]["api_key"] == "secret-value"
    assert config.apikey == "$UNSET_ROUTER_KEY"
    assert len(config.warnings) == 1
    assert config.warnings[0].startswith("APIKEY: ")


def test_config_from_dict_uses_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCR_TEST_HOST", "::1")
    assert config_from_dict({"HOST": "$CCR_TEST_HOST"}).host == "::1"


# --- files -----------------------------------------------------------------------------------------------


def test_missing_file_gives_the_default_config_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "config.json"
    config = load_config(path, env={})
    assert config.providers == ()
    assert config.port == 3456
    assert config.source == str(path)
    assert any("not found" in w for w in config.warnings)


def test_default_path_comes_from_home(tmp_path: Path) -> None:
    target = tmp_path / ".claude-code-router" / "config.json"
    target.parent.mkdir()
    target.write_text('{"PORT": 4567}')
    config = load_config(env={"HOME": str(tmp_path)})
    assert config.port == 4567
    assert config.source == str(target)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"PORT": 4000}')
    assert load_config(path, env={}).port == 4000


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path, env={})  # a directory


def test_invalid_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"HOST": "\xff"}')
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path, env={})


def test_file_errors_carry_the_file_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"PORT": "abc"}')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.source == str(path)
    assert caught.value.problems == [Problem("PORT", 'expected an integer 1-65535, got "abc"')]


# --- sample CCR configs ----------------------------------------------------------------------------------


def test_realworld_ccr_config_loads_unchanged() -> None:
    config = load_config(VECTORS / "ccr-realworld.json5", env=REALWORLD_ENV)
    assert config.warnings == ()
    assert [p.name for p in config.providers] == ["deepseek", "openrouter", "gemini", "ollama", "siliconflow"]
    deepseek = config.provider("deepseek")
    assert deepseek is not None
    assert deepseek.api_key == REALWORLD_ENV["DEEPSEEK_API_KEY"]
    assert deepseek.api_base_url == "https://api.deepseek.com/chat/completions"
    assert deepseek.transformer == {"use": ["deepseek"], "deepseek-chat": {"use": ["tooluse"]}}
    openrouter = config.provider("openrouter")
    assert openrouter is not None
    assert openrouter.api_key == REALWORLD_ENV["OPENROUTER_API_KEY"]
    assert openrouter.transformer["use"] == [["openrouter", {"provider": {"only": ["anthropic"]}}]]
    assert config.apikey == "ccr-local-secret"
    assert config.proxy_url == "http://127.0.0.1:7890"
    assert config.log_level == "debug"
    assert config.custom_router_path is None and config.claude_path is None
    assert config.transformers[0]["path"] == "/home/dev/.claude-code-router/plugins/gemini-cli.js"
    assert config.status_line["enabled"] is True
    assert config.router.default == "deepseek,deepseek-chat"
    assert config.router.background == "ollama,qwen2.5-coder:latest"
    assert config.router.long_context == "openrouter,google/gemini-2.5-pro-preview"
    assert config.router.web_search == "gemini,gemini-2.5-flash"
    assert config.router.image is None


def test_config_written_by_ccrs_ui_loads() -> None:
    config = load_config(VECTORS / "ccr-ui-written.json", env={})
    assert config.warnings == ()
    assert config.apikey is None
    assert config.proxy_url is None
    assert config.log is False
    assert config.api_timeout_ms == 600000  # the UI writes it as a string
    assert config.router.default == "groq,moonshotai/kimi-k2-instruct"
    assert (config.router.background, config.router.think, config.router.image) == (None, None, None)


def test_broken_config_reports_every_problem_in_file_order() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(VECTORS / "broken.json5", env={})
    assert [str(p) for p in caught.value.problems] == [
        'PORT: expected an integer 1-65535, got "abc"',
        'LOG_LEVEL: expected one of debug, info, warn, warning, error, got "loud"',
        "API_TIMEOUT_MS: expected an integer >= 1, got -5",
        "Providers[0].models[1]: expected a model name (a non-empty string), got 42",
        'Providers[0].transformer.use: expected a list of transformers, got "deepseek"',
        'Providers[1].api_base_url: expected an http(s) URL, got "ftp://localhost/v1"',
        "Providers[1].api_key: missing or empty",
        'Providers[2].name: duplicate provider name "deepseek" (also Providers[0])',
        'Router.default: unknown provider "nowhere"',
        'Router.think: expected "provider,model", got "deepseek"',
    ]
