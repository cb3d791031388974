"""Plugin transformers from the top-level `transformers` list: loading, registration and every failure."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from ccr_fast.config import Config, config_from_dict
from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.transformers import PlanCache, validate_transformers
from ccr_fast.transformers.plugins import JS_HELP, collect_plugins, load_plugins

URL = "https://upstream.example.test/v1/chat/completions"

PLUGIN = '''
from typing import Any

from ccr_fast.transformers.base import PlanBuilder, Transformer
from ccr_fast.transformers.builtin import GroqTransformer  # imported, so not registered


class Helper(Transformer):
    """A base without a name: not registered."""


class AddUser(Helper):
    name = "add-user"

    def configure(self, plan: PlanBuilder) -> None:
        user, tag = self.options.get("user"), self.options.get("tag")

        def hook(body: dict[str, Any]) -> None:
            body["user"] = f"{user}/{tag}"

        plan.upstream_hooks.append(hook)


class Strict(Transformer):
    name = "strict"

    def configure(self, plan: PlanBuilder) -> None:
        if "level" not in self.options:
            raise ValueError("option level is required")
        plan.tune(drop_keys=("stop",))
'''

NAMED = (
    'from ccr_fast.transformers.base import Transformer\n\n\nclass Named(Transformer):\n    name = "{name}"\n'
)


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def config(plugins: list[dict[str, Any]], use: list[Any]) -> Config:
    provider = {
        "name": "p",
        "api_base_url": URL,
        "api_key": "k",
        "models": ["m"],
        "transformer": {"use": use},
    }
    data = {"Providers": [provider], "Router": {"default": "p,m"}, "transformers": plugins}
    return config_from_dict(data, env={})


def problems_for(plugins: list[dict[str, Any]]) -> list[Problem]:
    return collect_plugins(config(plugins, []).transformers)[1]


def test_a_python_file_registers_each_named_transformer_it_defines(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.py", PLUGIN)
    plugins = load_plugins([{"path": str(path), "options": {"user": "u"}}])
    assert sorted(plugins) == ["add-user", "strict"]
    assert plugins["add-user"].options == {"user": "u"}


def test_a_chain_uses_a_plugin_with_its_options_over_the_entry_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.py", PLUGIN)
    cfg = config(
        [{"path": str(path), "options": {"user": "u", "tag": "default"}}],
        [["add-user", {"tag": "chain"}], ["Strict", {"level": 1}]],
    )
    assert validate_transformers(cfg) == ([], [])
    plan = PlanCache(cfg).get(cfg.providers[0], "m")
    assert plan.chain == ("add-user", "strict")
    body: dict[str, Any] = {}
    for hook in plan.upstream_hooks:
        hook(body)
    assert body == {"user": "u/chain"}
    assert plan.dialect.drop_keys == ("stop",)
    assert plan.unavailable is None


def test_file_and_module_specs_name_one_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "mine.py", PLUGIN)
    assert list(load_plugins([{"path": f"{path}:Strict"}])) == ["strict"]
    package = tmp_path / "pkgplugins"
    package.mkdir()
    write(package, "__init__.py", "")
    write(package, "steps.py", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(load_plugins([{"path": "pkgplugins.steps:AddUser"}])) == ["add-user"]


def test_a_plugin_may_provide_a_name_this_version_does_not_implement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ccr_fast.transformers.plan.NOT_YET_AVAILABLE", frozenset({"future-endpoint"}))
    path = write(tmp_path, "future.py", NAMED.format(name="future-endpoint"))
    cfg = config([{"path": str(path)}], ["future-endpoint"])
    assert validate_transformers(cfg) == ([], [])
    assert PlanCache(cfg).get(cfg.providers[0], "m").unavailable is None


def test_a_file_is_executed_once_while_it_is_unchanged(tmp_path: Path) -> None:
    counter = tmp_path / "runs.txt"
    source = f"""
        from pathlib import Path
        from ccr_fast.transformers.base import Transformer
        runs = Path({str(counter)!r})
        runs.write_text(runs.read_text() + "x" if runs.exists() else "x")

        class Once(Transformer):
            name = "once"
    """
    path = write(tmp_path, "once.py", source)
    first = load_plugins([{"path": str(path)}])
    second = load_plugins([{"path": str(path)}])
    assert first["once"].cls is second["once"].cls
    assert counter.read_text() == "x"


@pytest.mark.parametrize("suffix", [".js", ".ts", ".mjs", ".cjs", ".JS"])
def test_javascript_plugins_are_refused_with_a_python_example(suffix: str) -> None:
    (problem,) = problems_for([{"path": f"/home/me/.claude-code-router/plugins/mine{suffix}"}])
    assert problem.path == "transformers[0].path"
    assert "JavaScript" in problem.reason and JS_HELP in problem.reason
    assert "class AddUser(Transformer):" in problem.reason and "upstream_hooks" in problem.reason


def test_the_javascript_example_is_a_working_plugin(tmp_path: Path) -> None:
    example = textwrap.dedent(JS_HELP.split("for example:\n", 1)[1])
    plugins = load_plugins([{"path": str(write(tmp_path, "example.py", example)), "options": {"user": "me"}}])
    plan_body: dict[str, Any] = {}
    cfg = config([{"path": str(tmp_path / "example.py"), "options": {"user": "me"}}], ["add-user"])
    for hook in PlanCache(cfg).get(cfg.providers[0], "m").upstream_hooks:
        hook(plan_body)
    assert list(plugins) == ["add-user"]
    assert plan_body == {"user": "me"}


@pytest.mark.parametrize(
    ("files", "spec", "reason"),
    [
        ({}, "{tmp}/missing.py", "file not found"),
        ({"bad.py": "def broken(:\n"}, "{tmp}/bad.py", "importing {tmp}/bad.py failed: SyntaxError"),
        ({"boom.py": "raise RuntimeError('no')\n"}, "{tmp}/boom.py", "failed: RuntimeError: no"),
        (
            {"empty.py": "X = 1\n"},
            "{tmp}/empty.py",
            "defines no subclass of ccr_fast.transformers.base.Transformer",
        ),
        ({"m.py": PLUGIN}, "{tmp}/m.py:Nope", "has no attribute 'Nope'"),
        ({"m.py": PLUGIN}, "{tmp}/m.py:Any", "is not a subclass of ccr_fast.transformers.base.Transformer"),
        ({"m.py": PLUGIN}, "{tmp}/m.py:Helper", "has no `name`"),
        ({"m.py": PLUGIN}, "{tmp}/m.py:Transformer", "is not a subclass"),
        ({"m.txt": PLUGIN}, "{tmp}/m.txt:AddUser", "is not a .py file"),
        (
            {},
            "no_such_module_here:Thing",
            "importing module 'no_such_module_here' failed: ModuleNotFoundError",
        ),
        ({}, "just words", "is neither a .py file nor 'module:ClassName'"),
        (
            {"g.py": NAMED.format(name="Groq")},
            "{tmp}/g.py",
            "'Groq' is taken by a built-in transformer",
        ),
    ],
)
def test_every_loading_failure_is_a_config_problem_on_the_entry(
    tmp_path: Path, files: dict[str, str], spec: str, reason: str
) -> None:
    for name, source in files.items():
        write(tmp_path, name, source)
    (problem,) = problems_for([{"path": spec.format(tmp=tmp_path)}])
    assert problem.path == "transformers[0].path"
    assert reason.format(tmp=tmp_path) in problem.reason


def test_two_plugins_with_one_name_are_refused(tmp_path: Path) -> None:
    first = write(tmp_path, "a.py", PLUGIN)
    second = write(tmp_path, "b.py", PLUGIN)
    problems = problems_for([{"path": str(first)}, {"path": f"{second}:Strict"}])
    assert problems == [
        Problem("transformers[1].path", f"plugin transformer name 'strict' is already used by '{first}'")
    ]


def test_validation_reports_plugin_and_chain_problems_together(tmp_path: Path) -> None:
    good = write(tmp_path, "good.py", PLUGIN)
    cfg = config([{"path": "/x/old.js"}, {"path": str(good)}], ["add-user", "strict"])
    problems, warnings = validate_transformers(cfg)
    assert warnings == []
    assert [p.path for p in problems] == ["transformers[0].path", "Providers[0].transformer.use[1]"]
    assert problems[1].reason == "transformer 'strict': option level is required"


def test_an_unknown_name_lists_the_plugins_among_the_known_ones(tmp_path: Path) -> None:
    good = write(tmp_path, "good.py", PLUGIN)
    (problem,) = validate_transformers(config([{"path": str(good)}], ["old-plugin"]))[0]
    assert problem.path == "Providers[0].transformer.use[0]"
    assert problem.reason.startswith("unknown transformer 'old-plugin' (known: ")
    assert "add-user" in problem.reason and "deepseek" in problem.reason


def test_the_plan_cache_refuses_a_config_whose_plugins_do_not_load() -> None:
    cfg = config([{"path": "/x/old.js"}, {"path": "/x/missing.py"}], ["deepseek"])
    with pytest.raises(ConfigError) as caught:
        PlanCache(cfg)
    assert [p.path for p in caught.value.problems] == ["transformers[0].path", "transformers[1].path"]
