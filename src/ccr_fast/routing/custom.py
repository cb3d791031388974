"""User-written routers (``CUSTOM_ROUTER_PATH``), the Python counterpart of CCR's JS routers.

``CUSTOM_ROUTER_PATH`` names either a Python file that defines a function ``router`` (a function
named ``route`` is accepted too, mirroring a JS module whose default export is ``route``) or an
importable ``module:function``. The contract matches CCR's::

    def router(request, config) -> str | None      # may also be ``async def``

``request`` is a ``RouterRequest`` (``.body``, ``.headers``, ``.session_id``, ``.token_count``) and
``config`` is the raw config dict. Returning ``"provider,model"`` picks the route; returning None
hands the request to the built-in rules. ``request.body`` is the live request body, so a router
may also edit it, as CCR routers do.

Loading happens at startup and fails with a ``ConfigError`` naming ``CUSTOM_ROUTER_PATH``, so a
typo in the path is reported once instead of silently falling back on every request.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from ccr_fast.config.errors import ConfigError, Problem

CONFIG_KEY = "CUSTOM_ROUTER_PATH"
#: Function names looked up in a router file, in order of preference.
FUNCTION_NAMES = ("router", "route")
_JS_SUFFIXES = (".js", ".mjs", ".cjs", ".ts")
_JS_HELP = (
    "ccr-fast runs Python routers, not JavaScript: port your JS router to a Python function "
    "`router(request, config)` in a .py file (or point at `module:function`). It receives the "
    "same request (request.body, request.headers, request.session_id, request.token_count) and the "
    'config dict, may be async, and returns "provider,model" or None to use the built-in rules.'
)


class RouterRequest:
    """What a custom router sees of a request.

    ``token_count`` is counted on first access only, so routers that never look at it cost nothing;
    the count is shared with the built-in rules, which then do not count again.
    """

    __slots__ = ("_count", "body", "headers", "session_id")

    def __init__(
        self,
        body: dict[str, Any],
        headers: Mapping[str, str],
        session_id: str | None,
        count: Callable[[], int],
    ) -> None:
        self.body = body
        self.headers = headers
        self.session_id = session_id
        self._count = count

    @property
    def token_count(self) -> int:
        return self._count()


RouterFunction = Callable[[RouterRequest, dict[str, Any]], str | Awaitable[str | None] | None]


@dataclass(frozen=True, slots=True)
class CustomRouter:
    """A loaded custom router; ``source`` says where it came from, for logs."""

    function: RouterFunction
    source: str

    async def __call__(self, request: RouterRequest, config: dict[str, Any]) -> str | None:
        """The route the user function picked, or None; raises whatever the function raised."""
        result = self.function(request, config)
        if inspect.isawaitable(result):
            result = await result
        if result is None or result == "":
            return None
        if not isinstance(result, str):
            raise TypeError(
                f'custom router returned {type(result).__name__}, expected a "provider,model" string or None'
            )
        return result


def load_custom_router(spec: str | None) -> CustomRouter | None:
    """Load the router named by ``CUSTOM_ROUTER_PATH``; None when the setting is empty."""
    if spec is None or not spec.strip():
        return None
    spec = spec.strip()
    if spec.lower().endswith(_JS_SUFFIXES):
        raise _problem(f"{spec!r} is a JavaScript file. {_JS_HELP}")
    path = Path(spec).expanduser()
    if spec.endswith(".py") or path.is_file():
        return _load_file(spec, path)
    module_name, colon, attr = spec.rpartition(":")
    if colon and module_name and attr:
        return _load_module_function(spec, module_name, attr)
    raise _problem(f"{spec!r} is neither a .py file nor 'module:function'")


def _load_file(spec: str, path: Path) -> CustomRouter:
    if not path.is_file():
        raise _problem(f"file not found: {path}")
    resolved = path.resolve()
    # A unique module name per file, so two configs' routers never share module state.
    name = "ccr_fast_custom_router_" + xxhash.xxh3_64_hexdigest(str(resolved).encode())
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise _problem(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before running so dataclasses and pickling inside the router can find the module.
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _problem(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    for attr in FUNCTION_NAMES:
        function = getattr(module, attr, None)
        if callable(function):
            return CustomRouter(function, str(resolved))
    raise _problem(f"{path} defines no function named {' or '.join(repr(n) for n in FUNCTION_NAMES)}")


def _load_module_function(spec: str, module_name: str, attr: str) -> CustomRouter:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _problem(f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    function = getattr(module, attr, None)
    if function is None:
        raise _problem(f"module {module_name!r} has no attribute {attr!r}")
    if not callable(function):
        raise _problem(f"{spec!r} is not callable")
    return CustomRouter(function, spec)


def _problem(reason: str) -> ConfigError:
    return ConfigError([Problem(CONFIG_KEY, reason)])
