"""Counting with a Hugging Face ``tokenizer.json`` the user provides (``{type: "huggingface", path: ...}``).

Any model's tokenizer can be counted with exactly, offline, from its ``tokenizer.json`` (the file in the
model's Hugging Face repository).  Reading one needs the ``tokenizers`` package, which is not part of the
default install: ``pip install 'ccr-fast[huggingface]'``.  The file is read from disk only, never fetched.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["available", "encoder", "loader", "problem", "resolve"]

_loaded: dict[Path, Any] = {}
#: files that could not be read, and why (not retried on every request)
_failed: dict[Path, str] = {}
_lock = threading.Lock()


@functools.cache
def available() -> bool:
    """Whether the ``tokenizers`` package is installed (checked once, without importing it)."""
    return importlib.util.find_spec("tokenizers") is not None


def resolve(path: str) -> Path:
    """``path`` with ``~`` expanded, made absolute against the current directory."""
    return Path(path).expanduser().resolve()


def problem(path: Path) -> str | None:
    """Why ``path`` cannot be counted with, or None when it can."""
    if not available():
        return "reading a tokenizer.json needs the 'tokenizers' package: pip install 'ccr-fast[huggingface]'"
    if not path.is_file():
        return f"tokenizer file {str(path)!r} does not exist"
    return None


def _load(path: Path) -> Any:
    found = _loaded.get(path)
    if found is None:
        with _lock:
            found = _loaded.get(path)
            if found is None:
                if path in _failed:
                    raise ValueError(_failed[path])
                from tokenizers import Tokenizer

                try:
                    found = Tokenizer.from_file(str(path))
                except Exception as exc:
                    _failed[path] = f"tokenizer file {str(path)!r} cannot be read: {exc}"
                    raise ValueError(_failed[path]) from exc
                _loaded[path] = found
    return found


def loader(path: Path) -> Callable[[], object]:
    """Loads the file (once per process); ``TokenCounter`` calls it off the event loop."""
    return lambda: _load(path)


def encoder(path: Path) -> Callable[[str], list[int]]:
    """Token ids as the tokenizer produces them for a prompt's text: special-token text is matched, no
    beginning-of-sequence token is added.  The file is loaded on the first call."""

    def encode(text: str) -> list[int]:
        # encode_batch releases the GIL while it works (encode holds it), so a count on a worker thread
        # does not stall the event loop.
        ids: list[int] = _load(path).encode_batch([text], add_special_tokens=False)[0].ids
        return ids

    return encode
