"""Loading custom routers from files and modules, and calling them."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from ccr_fast.config.errors import ConfigError
from ccr_fast.routing.custom import CustomRouter, RouterRequest, load_custom_router


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def request(body: dict[str, object] | None = None, count: int = 0) -> RouterRequest:
    return RouterRequest(body or {"model": "claude-sonnet-5"}, {"x-app": "cli"}, "sid-1", lambda: count)


def problem_reason(error: ConfigError) -> str:
    assert [p.path for p in error.problems] == ["CUSTOM_ROUTER_PATH"]
    return error.problems[0].reason


@pytest.mark.parametrize("spec", [None, "", "   "])
def test_empty_setting_means_no_custom_router(spec: str | None) -> None:
    assert load_custom_router(spec) is None


async def test_python_file_with_router_function(tmp_path: Path) -> None:
    path = write(
        tmp_path / "my_router.py",
        """
        from dataclasses import dataclass

        @dataclass
        class Pick:
            route: str

        def router(request, config):
            if request.session_id == "sid-1" and config["flag"]:
                return Pick("deepseek,deepseek-chat").route
            return None
        """,
    )
    custom = load_custom_router(str(path))
    assert isinstance(custom, CustomRouter)
    assert custom.source == str(path.resolve())
    assert await custom(request(), {"flag": True}) == "deepseek,deepseek-chat"
    assert await custom(request(), {"flag": False}) is None


async def test_python_file_with_route_function(tmp_path: Path) -> None:
    path = write(tmp_path / "legacy.py", "def route(request, config):\n    return 'p,m'\n")
    custom = load_custom_router(str(path))
    assert custom is not None
    assert await custom(request(), {}) == "p,m"


async def test_router_is_preferred_over_route(tmp_path: Path) -> None:
    path = write(
        tmp_path / "both.py",
        "def router(request, config):\n    return 'a,1'\n\ndef route(request, config):\n    return 'b,2'\n",
    )
    custom = load_custom_router(str(path))
    assert custom is not None
    assert await custom(request(), {}) == "a,1"


async def test_async_router(tmp_path: Path) -> None:
    path = write(
        tmp_path / "async_router.py",
        """
        import asyncio

        async def router(request, config):
            await asyncio.sleep(0)
            if request.token_count > 1000:
                return "big,model"
            return None
        """,
    )
    custom = load_custom_router(str(path))
    assert custom is not None
    assert await custom(request(count=5000), {}) == "big,model"
    assert await custom(request(count=10), {}) is None


async def test_module_function_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "team_routing"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(
        package / "rules.py",
        """
        def pick(request, config):
            return request.body["model"].replace("claude-", "anthropic,claude-")
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        custom = load_custom_router("team_routing.rules:pick")
        assert custom is not None
        assert custom.source == "team_routing.rules:pick"
        assert await custom(request({"model": "claude-opus-5-5"}), {}) == "anthropic,claude-opus-5-5"
    finally:
        sys.modules.pop("team_routing.rules", None)
        sys.modules.pop("team_routing", None)


async def test_empty_string_result_means_no_route(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.py", "def router(request, config):\n    return ''\n")
    custom = load_custom_router(str(path))
    assert custom is not None
    assert await custom(request(), {}) is None


async def test_non_string_result_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.py", "def router(request, config):\n    return ['p', 'm']\n")
    custom = load_custom_router(str(path))
    assert custom is not None
    with pytest.raises(TypeError, match="expected a"):
        await custom(request(), {})


def test_token_count_is_lazy() -> None:
    calls: list[int] = []

    def count() -> int:
        calls.append(1)
        return 42

    req = RouterRequest({}, {}, None, count)
    assert calls == []
    assert req.token_count == 42
    assert calls == [1]


@pytest.mark.parametrize("name", ["custom-router.js", "router.mjs", "router.cjs", "ROUTER.JS", "router.ts"])
def test_javascript_router_is_rejected_with_porting_advice(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("module.exports = async function router(req, config) { return null; };")
    with pytest.raises(ConfigError) as info:
        load_custom_router(str(path))
    reason = problem_reason(info.value)
    assert "JavaScript" in reason
    assert "router(request, config)" in reason
    assert "Python" in reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_custom_router(str(tmp_path / "nope.py"))
    assert "file not found" in problem_reason(info.value)


def test_file_that_fails_to_import(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.py", "import definitely_not_a_module_ccr\n")
    with pytest.raises(ConfigError) as info:
        load_custom_router(str(path))
    assert "ModuleNotFoundError" in problem_reason(info.value)
    leftovers = [
        name
        for name, module in list(sys.modules.items())
        if name.startswith("ccr_fast_custom_router_") and getattr(module, "__file__", None) == str(path)
    ]
    assert leftovers == []


def test_file_with_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path / "syntax.py", "def router(:\n")
    with pytest.raises(ConfigError) as info:
        load_custom_router(str(path))
    assert "SyntaxError" in problem_reason(info.value)


def test_file_without_router_function(tmp_path: Path) -> None:
    path = write(tmp_path / "nofn.py", "router = 'not callable'\n")
    with pytest.raises(ConfigError) as info:
        load_custom_router(str(path))
    assert "no function named 'router' or 'route'" in problem_reason(info.value)


def test_unknown_module() -> None:
    with pytest.raises(ConfigError) as info:
        load_custom_router("no_such_package_for_ccr:router")
    assert "importing module 'no_such_package_for_ccr' failed" in problem_reason(info.value)


def test_module_without_the_function() -> None:
    with pytest.raises(ConfigError) as info:
        load_custom_router("json:no_such_function")
    assert "has no attribute 'no_such_function'" in problem_reason(info.value)


def test_module_attribute_not_callable() -> None:
    with pytest.raises(ConfigError) as info:
        load_custom_router("json.decoder:NaN")
    assert "not callable" in problem_reason(info.value)


def test_spec_that_is_neither_file_nor_module_function() -> None:
    with pytest.raises(ConfigError) as info:
        load_custom_router("just-a-name")
    assert "neither a .py file nor 'module:function'" in problem_reason(info.value)
