"""Pick the compiled hot paths when present, the pure-Python twins otherwise.

Set ``CCR_FAST_PURE=1`` to force the pure-Python twins (tests run both).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: module name in ccr_fast._ext -> pure twin in the package
TWINS: dict[str, str] = {
    "sse_framer": "ccr_fast.protocol.sse",
    "openai_fast": "ccr_fast.protocol.openai_fast",
    "shm_atomic": "ccr_fast.state.atomic",
}


def force_pure() -> bool:
    return os.environ.get("CCR_FAST_PURE", "") not in ("", "0")


def compiled(name: str) -> ModuleType | None:
    """The compiled module ``ccr_fast._ext.<name>``, or None when not built."""
    try:
        return importlib.import_module(f"ccr_fast._ext.{name}")
    except ImportError:
        return None


def load(name: str) -> ModuleType:
    """The module to use for ``name``: compiled unless missing or CCR_FAST_PURE is set."""
    if not force_pure():
        mod = compiled(name)
        if mod is not None:
            return mod
    return importlib.import_module(TWINS[name])


def status() -> dict[str, str]:
    """For ``ccr-fast version``: which implementation each hot path uses."""
    out: dict[str, str] = {}
    for name in TWINS:
        mod = None if force_pure() else compiled(name)
        out[name] = "compiled (Cython)" if mod is not None else "pure Python"
    return out
