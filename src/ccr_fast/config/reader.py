"""Reading config values: typed values out, every problem with its key path collected on the way.

The main config check (``config.validate``) and the sections with their own modules (resilience,
admission) follow the same rules, so they read values through one ``Reader``: a wrong value is an error
naming its key path and is replaced by its default, so one run reports everything wrong with a file instead
of one mistake per restart; an unknown key is a warning; errors are raised together at the end.

Values may arrive as strings when they came from environment interpolation (``"PORT": "$PORT"``), and
CCR's UI writes some numbers as strings, so numbers and booleans written as strings are accepted.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.config.redact import redact_text

__all__ = ["FRACTION_HINT", "Reader", "child", "describe"]

#: For settings that are shares of something: people often write percentages.
FRACTION_HINT = " (a fraction: 0.5 means 50%)"

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_DIGITS = re.compile(r"\s*[0-9]+\s*")
_NUMBER = re.compile(r"\s*[0-9]+(?:\.[0-9]+)?\s*")
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b)?\s*", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_MAX_SHOWN = 60

T = TypeVar("T")


def child(path: str, key: str | int) -> str:
    """The path of `key` under `path`, written as in JavaScript: `Providers[1].transformer["gpt-4o"].use`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{orjson.dumps(key).decode()}]"


def describe(value: Any, *, secret: bool = False) -> str:
    """A short rendering of a rejected value for messages; secrets only by their type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if secret:
        return "a string" if isinstance(value, str) else "a number"
    if isinstance(value, str):
        shown = orjson.dumps(redact_text(value)).decode()
        return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 4] + '..."'
    return repr(value)


class Reader:
    """Collects errors and warnings while reading values; each reader returns a usable value regardless."""

    __slots__ = ("errors", "warnings")

    def __init__(self, notes: Iterable[Problem] = ()) -> None:
        """``notes`` are earlier warnings (such as unresolved environment variables) to report along."""
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = list(notes)

    def error(self, path: str, reason: str) -> None:
        self.errors.append(Problem(path, reason))

    def warn(self, path: str, reason: str) -> None:
        self.warnings.append(Problem(path, reason))

    def unknown_keys(
        self, path: str, value: Mapping[str, Any], known: Iterable[str], *, suggest: bool = False
    ) -> None:
        """A warning for each key of ``value`` not in ``known``; with ``suggest``, naming the closest
        known key when the unknown one looks like a typo of it."""
        allowed = list(known)
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1) if suggest else []
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.warn(child(path, str(key)), f"unknown key, ignored{hint}")

    def section(self, path: str, value: object, known: Iterable[str]) -> Mapping[str, Any] | None:
        """An object of known keys; None when absent, ``false`` or not an object (the latter is an error)."""
        if value is None or value is False:
            return None
        if not isinstance(value, Mapping):
            self.error(path, f"expected an object, got {describe(value)}")
            return None
        self.unknown_keys(path, value, known, suggest=True)
        return value

    def table(self, path: str, value: object) -> Mapping[str, Any]:
        """An object whose keys are names the user chooses (routes, models, regions); empty when absent."""
        found = self.mapping(path, value)
        return found if found is not None else {}

    def mapping(self, path: str, value: object, what: str = "an object") -> Mapping[str, Any] | None:
        if value is None:
            return None
        if isinstance(value, Mapping):
            return value
        self.error(path, f"expected {what}, got {describe(value)}")
        return None

    def boolean(self, path: str, value: object, default: bool) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self.error(path, f"expected true or false, got {describe(value)}")
        return default

    def number(
        self, path: str, value: object, default: float, low: float, high: float = math.inf, hint: str = ""
    ) -> float:
        """A finite number in ``[low, high]``; ``hint`` is added to the error message."""
        if value is None:
            return default
        found = _as_number(value)
        if found is None or not low <= found <= high:
            self.error(path, f"expected a number {_bounds(low, high)}{hint}, got {describe(value)}")
            return default
        return found

    def integer(
        self,
        path: str,
        value: object,
        default: int,
        low: int,
        high: int | None = None,
        *,
        digits_only: bool = False,
    ) -> int:
        """An integer in ``[low, high]``: any number without a fractional part (``5.0`` counts), or with
        ``digits_only`` just an integer or a string of digits, as the main config has always taken them."""
        if value is None:
            return default
        found = _as_digits(value) if digits_only else _as_whole(value)
        if found is None or found < low or (high is not None and found > high):
            bounds = f"{low}-{high}" if high is not None else f">= {low}"
            self.error(path, f"expected an integer {bounds}, got {describe(value)}")
            return default
        return found

    def duration(self, path: str, value: object, default: float, low: float = 0.0) -> float:
        """Seconds: a number, or a string with a unit (``"250ms"``, ``"30s"``, ``"5m"``, ``"1h"``)."""
        if value is None:
            return default
        seconds = _as_number(value)
        if seconds is None and isinstance(value, str):
            found = _DURATION.fullmatch(value)
            if found is not None:
                seconds = float(found.group(1)) * _UNIT_SECONDS[(found.group(2) or "s").lower()]
        if seconds is None or seconds < low or not math.isfinite(seconds):
            self.error(
                path,
                f'expected a duration >= {low:g}s (seconds, or a string such as "250ms", "30s", "5m"), '
                f"got {describe(value)}",
            )
            return default
        return seconds

    def size(self, path: str, value: object, default: int) -> int:
        """Bytes, as an integer or a string with a binary unit: 1048576, "512kb", "32mb", "1.5 GiB"."""
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        found = _SIZE.fullmatch(value) if isinstance(value, str) else None
        if found is not None:
            number, unit, _ = found.groups()
            size = int(float(number) * 1024 ** _SIZE_POWERS[unit.lower()])
            if size > 0:
                return size
        self.error(
            path,
            f'expected a size in bytes (an integer > 0 or a string such as "32mb"), got {describe(value)}',
        )
        return default

    def choice(self, path: str, value: object, default: T, choices: Mapping[str, T]) -> T:
        """One of the names in ``choices``, mapped to its value."""
        if value is None:
            return default
        if isinstance(value, str) and value in choices:
            return choices[value]
        names = ", ".join(repr(c) for c in choices)
        self.error(path, f"expected one of {names}, got {describe(value)}")
        return default

    def text(self, path: str, value: object, *, secret: bool = False) -> str | None:
        """An optional string; CCR's UI writes unset ones as "", which counts as unset."""
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        self.error(path, f"expected a string, got {describe(value, secret=secret)}")
        return None

    def required_text(self, path: str, value: object, *, secret: bool = False) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            self.error(path, "missing or empty")
            return None
        return self.text(path, value, secret=secret)

    def sequence(self, path: str, value: object, what: str) -> Sequence[Any]:
        if value is None:
            return ()
        if isinstance(value, list | tuple):
            return value
        self.error(path, f"expected {what}, got {describe(value)}")
        return ()

    def route(self, path: str, value: object) -> str | None:
        """A ``"provider,model"`` string (whether the provider exists is the main config check's job)."""
        text = self.text(path, value)
        if text is None:
            return None
        provider, comma, model = text.partition(",")
        if not comma or not provider.strip() or not model.strip():
            self.error(path, f'expected "provider,model", got {describe(text)}')
            return None
        return text

    def finish(self, warnings: list[Problem] | None) -> None:
        """Hand the warnings to ``warnings`` (when given) and raise every error at once."""
        if warnings is not None:
            warnings.extend(self.warnings)
        if self.errors:
            raise ConfigError(self.errors)


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return None


def _as_whole(value: object) -> int | None:
    number = _as_number(value)
    return int(number) if number is not None and number == int(number) else None


def _as_digits(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def _bounds(low: float, high: float) -> str:
    if high == math.inf:
        return f">= {low:g}"
    return f"between {low:g} and {high:g}"
