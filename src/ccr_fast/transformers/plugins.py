"""Transformer plugins: the top-level ``transformers: [{path, options}]`` of a config, in Python.

CCR loads a JavaScript class from each ``path``; ccr-fast loads a subclass of
:class:`~ccr_fast.transformers.base.Transformer` from a Python file or an importable module, with the same
hooks the built-ins use, and registers it under its ``name`` for that config, so
``Providers[].transformer.use`` can name it like a built-in.

``path`` is one of:

* ``/path/to/file.py``: every Transformer subclass *defined* in the file that has a ``name`` (classes it
  imports, and helper base classes without a name, are not registered);
* ``/path/to/file.py:ClassName`` or ``package.module:ClassName``: that one class.

The entry's ``options`` become the plugin's default options; options given where a chain uses it
(``["name", {...}]``) are laid over them.  Every problem (a JavaScript file, a failed import, a missing or
wrong class, a name taken twice) is reported at startup as a config error on ``transformers[i].path``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import xxhash

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.config.model import thaw
from ccr_fast.transformers.base import Transformer
from ccr_fast.transformers.registry import lookup

__all__ = ["JS_HELP", "Plugin", "collect_plugins", "load_plugins"]

_JS_SUFFIXES: Final = (".js", ".mjs", ".cjs", ".ts")
JS_HELP: Final = """\
ccr-fast loads transformer plugins written in Python, not JavaScript. Port the plugin to a .py file \
defining a subclass of ccr_fast.transformers.base.Transformer and point "path" at that file (or at \
"module:ClassName"). The subclass has the hooks of the built-in transformers, for example:

    from typing import Any
    from ccr_fast.transformers.base import PlanBuilder, Transformer

    class AddUser(Transformer):
        name = "add-user"  # the name Providers[].transformer.use refers to

        def configure(self, plan: PlanBuilder) -> None:
            def hook(body: dict[str, Any]) -> None:  # the OpenAI request, after translation
                body["user"] = self.options.get("user", "ccr")
            plan.upstream_hooks.append(hook)
"""

#: modules executed from plugin files, by (resolved path, modification time): a config that is checked
#: and then served, or reloaded unchanged, does not run a plugin's top-level code twice
_FILE_MODULES: dict[tuple[str, int], ModuleType] = {}


@dataclass(frozen=True, slots=True)
class Plugin:
    """A loaded plugin transformer and the options its config entry gives it."""

    cls: type[Transformer]
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def create(self, options: Mapping[str, Any]) -> Transformer:
        """An instance with the entry's options overlaid by the chain's."""
        return self.cls({**self.options, **options})


class _Failed(Exception):
    """One plugin entry could not be loaded; the message is the reason shown to the user."""


def load_plugins(entries: Sequence[Mapping[str, Any]]) -> dict[str, Plugin]:
    """Every plugin of the config by name; raises ConfigError listing every entry that failed."""
    plugins, problems = collect_plugins(entries)
    if problems:
        raise ConfigError(problems)
    return plugins


def collect_plugins(entries: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Plugin], list[Problem]]:
    """The plugins that loaded and a problem for each entry that did not (so validation can go on)."""
    plugins: dict[str, Plugin] = {}
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        key = f"transformers[{i}].path"
        spec = entry.get("path") if isinstance(entry, Mapping) else None
        options = entry.get("options") if isinstance(entry, Mapping) else None
        try:
            if not isinstance(spec, str) or not spec.strip():
                raise _Failed("must name a Python file or 'module:ClassName'")
            classes = _classes(spec.strip())
            defaults = thaw(options) if isinstance(options, Mapping) else {}
            for cls in classes:
                _check_name(cls, plugins)
                plugins[cls.name] = Plugin(cls, defaults, spec)
        except _Failed as exc:
            problems.append(Problem(key, str(exc)))
    return plugins, problems


def _classes(spec: str) -> list[type[Transformer]]:
    if spec.lower().endswith(_JS_SUFFIXES):
        raise _Failed(f"{spec!r} is a JavaScript file. {JS_HELP}")
    target, colon, attr = spec.rpartition(":")
    if colon and target and attr.isidentifier():
        if target.endswith(".py"):
            return [_named_class(_file_module(target), attr, spec)]
        if Path(target).expanduser().is_file():
            raise _Failed(f"{target!r} is not a .py file")
        return [_named_class(_import(target), attr, spec)]
    if spec.endswith(".py"):
        module = _file_module(spec)
        return _defined_classes(module, spec)
    raise _Failed(f"{spec!r} is neither a .py file nor 'module:ClassName'")


def _file_module(spec: str) -> ModuleType:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise _Failed(f"file not found: {path}")
    resolved = path.resolve()
    key = (str(resolved), resolved.stat().st_mtime_ns)
    module = _FILE_MODULES.get(key)
    if module is not None:
        return module
    # A unique module name per file, so two plugins with the same file name never share a module.
    name = "ccr_fast_plugin_" + xxhash.xxh3_64_hexdigest(str(resolved).encode())
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise _Failed(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before running, so dataclasses and pickling inside the plugin can find the module.
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _Failed(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    _FILE_MODULES[key] = module
    return module


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise _Failed(f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}") from exc


def _named_class(module: ModuleType, attr: str, spec: str) -> type[Transformer]:
    cls = getattr(module, attr, None)
    if cls is None:
        raise _Failed(f"{spec!r}: the module has no attribute {attr!r}")
    if not inspect.isclass(cls) or not issubclass(cls, Transformer) or cls is Transformer:
        raise _Failed(f"{spec!r} is not a subclass of ccr_fast.transformers.base.Transformer")
    if not _has_name(cls):
        raise _Failed(f"{spec!r} has no `name` (the name Providers[].transformer.use refers to)")
    return cls


def _defined_classes(module: ModuleType, spec: str) -> list[type[Transformer]]:
    found = [
        cls
        for cls in vars(module).values()
        if inspect.isclass(cls)
        and issubclass(cls, Transformer)
        and cls.__module__ == module.__name__
        and _has_name(cls)
    ]
    if not found:
        raise _Failed(f"{spec!r} defines no subclass of ccr_fast.transformers.base.Transformer with a `name`")
    return found


def _has_name(cls: type[Transformer]) -> bool:
    name = getattr(cls, "name", None)
    return isinstance(name, str) and bool(name.strip())


def _check_name(cls: type[Transformer], plugins: Mapping[str, Plugin]) -> None:
    name = cls.name
    if lookup(name) is not None:
        raise _Failed(f"plugin transformer name {name!r} is taken by a built-in transformer; rename it")
    taken = plugins.get(name)
    if taken is not None:
        raise _Failed(f"plugin transformer name {name!r} is already used by {taken.source!r}")
