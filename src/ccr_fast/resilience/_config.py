"""Reading the resilience sections of the config: typed values, every problem with its key path.

The sections are ccr-fast's own keys, so they follow the project's rules for config: a wrong value is an
error naming the key path, an unknown key is a warning (with the closest known key when it looks like a
typo), and every problem is reported at once rather than the first. Values may arrive as strings when they
came from environment interpolation (``"maxAttempts": "$RETRIES"``), so numbers and booleans written as
strings are accepted.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.config.validate import child, describe

_NUMBER = re.compile(r"\s*[0-9]+(?:\.[0-9]+)?\s*")
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
#: For settings that are shares of something: people often write percentages.
FRACTION_HINT = " (a fraction: 0.5 means 50%)"

T = TypeVar("T")


class Reader:
    """Collects errors and warnings while reading values; each reader returns a usable value regardless."""

    __slots__ = ("errors", "warnings")

    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, path: str, reason: str) -> None:
        self.errors.append(Problem(path, reason))

    def section(self, path: str, value: object, known: Iterable[str]) -> Mapping[str, Any] | None:
        """An object of known keys; None when absent, ``false`` or not an object (the latter is an error)."""
        if value is None or value is False:
            return None
        if not isinstance(value, Mapping):
            self.error(path, f"expected an object, got {describe(value)}")
            return None
        allowed = list(known)
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.warnings.append(Problem(child(path, str(key)), f"unknown key, ignored{hint}"))
        return value

    def table(self, path: str, value: object) -> Mapping[str, Any]:
        """An object whose keys are names the user chooses (routes, models, regions); empty when absent."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"expected an object, got {describe(value)}")
            return {}
        return value

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

    def integer(self, path: str, value: object, default: int, low: int, high: int | None = None) -> int:
        if value is None:
            return default
        found = _as_number(value)
        if found is None or found != int(found) or found < low or (high is not None and found > high):
            bounds = f"{low}-{high}" if high is not None else f">= {low}"
            self.error(path, f"expected an integer {bounds}, got {describe(value)}")
            return default
        return int(found)

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

    def choice(self, path: str, value: object, default: T, choices: Mapping[str, T]) -> T:
        """One of the names in ``choices``, mapped to its value."""
        if value is None:
            return default
        if isinstance(value, str) and value in choices:
            return choices[value]
        names = ", ".join(repr(c) for c in choices)
        self.error(path, f"expected one of {names}, got {describe(value)}")
        return default

    def text(self, path: str, value: object) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        self.error(path, f"expected a string, got {describe(value)}")
        return None

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


def _bounds(low: float, high: float) -> str:
    if high == math.inf:
        return f">= {low:g}"
    return f"between {low:g} and {high:g}"
