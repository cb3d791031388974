"""Rate limiting with GCRA on the shared key table: one word per key, exact across every worker.

GCRA (the generic cell rate algorithm) is a token bucket kept as one number, the key's *theoretical arrival
time* (TAT): when the bucket would be full again if nothing else arrived.  For a limit of ``rate`` per second
with room for ``burst`` at once, each unit of cost moves the TAT by ``T = 1/rate`` and a request is admitted
when the new TAT lies at most ``burst * T`` ahead of now.  Being a single word it is updated by one
compare-and-swap (``Atomics.gcra``), so N workers admitting from the same key behave exactly like one
process: at a fixed instant exactly ``burst`` requests pass, and over a span ``S`` at most
``burst + S * rate``.  A worker killed mid-request leaves the TAT either moved or not, never half-moved.

Units and clock: TATs are ``CLOCK_MONOTONIC`` nanoseconds (``time.monotonic_ns``), which on Linux is one
clock for every process on the machine, and never jumps with wall-clock changes.  A TAT of 0 (a slot fresh
from the table) means "full bucket", so new keys need no initialisation.  The limit is passed on every
call rather than stored, so a config reload that changes a limit takes effect on the next request and the
stored TAT stays meaningful; a key must always be used with one ``rate`` though, so give each kind of limit
its own key (``b"rpm:" + key``, ``b"tpm:" + key``).

Token budgets use the same word: ``allow(key, tpm / 60, budget, cost=0)`` asks whether the budget is
overdrawn without taking anything, and ``charge(key, tokens, tpm / 60)`` books the real usage after the
response, even past the budget (the tokens were spent); the key then stays blocked until the debt has
drained at the budgeted rate.

Table full: a key that gets no slot is admitted and not tracked.  A limiter must not take the gateway down,
and ``ccr_fast.state.table`` has already counted and logged the condition.
"""

from __future__ import annotations

import math
import time
from typing import Final, NamedTuple

from ccr_fast.state.table import Key, KeyTable, TableFull

__all__ = ["Decision", "RateLimiter"]

#: per-call amounts stay below this so a TAT (now + debt) can never overflow its 64 bits
_MAX_SPAN_NS: Final = 1 << 62
_NO_LIMIT: Final = (1 << 64) - 1


class Decision(NamedTuple):
    """What ``allow`` decided; unpacks as ``(allowed, retry_after)``."""

    allowed: bool
    #: seconds until the same request would be admitted (0.0 when allowed); round up for ``retry-after``
    retry_after: float


_ALLOWED: Final = Decision(True, 0.0)
_monotonic_ns: Final = time.monotonic_ns


def _interval_ns(rate_per_s: float) -> int:
    """Nanoseconds per unit at ``rate_per_s`` (rounded, at least 1)."""
    if not 0 < rate_per_s < math.inf:  # also false for NaN
        raise ValueError(f"rate must be a positive number per second, not {rate_per_s!r}")
    return int(1e9 / rate_per_s + 0.5) or 1


def _span_ns(units: int, interval: int, what: str) -> int:
    span = units * interval
    if span >= _MAX_SPAN_NS:
        raise ValueError(f"{what} of {units} at this rate spans more than 2**62 ns")
    return span


class RateLimiter:
    """GCRA limits for any number of keys, shared by every process attached to the segment."""

    __slots__ = ("_gcra", "_table")

    def __init__(self, table: KeyTable) -> None:
        self._table = table
        self._gcra = table.atomics.gcra

    def allow(
        self, key: Key, rate_per_s: float, burst: int, *, cost: int = 1, now_ns: int | None = None
    ) -> Decision:
        """Admit ``cost`` units for ``key`` under ``rate_per_s`` with room for ``burst`` at once.

        ``cost=0`` takes nothing and only asks whether the key is overdrawn (for budgets charged afterwards).
        The rate is applied as a whole number of nanoseconds per unit.
        """
        interval = _interval_ns(rate_per_s)
        if not 0 <= cost <= burst or burst < 1:
            raise ValueError(
                f"need 1 <= burst and 0 <= cost <= burst (else it could never pass): {burst}, {cost}"
            )
        limit = _span_ns(burst, interval, "a burst")
        try:
            word = self._table.slot(key)
        except TableFull:
            return _ALLOWED
        wait = self._gcra(word, _monotonic_ns() if now_ns is None else now_ns, cost * interval, limit)
        return _ALLOWED if wait == 0 else Decision(False, wait / 1e9)

    def charge(self, key: Key, units: int, rate_per_s: float, *, now_ns: int | None = None) -> None:
        """Book ``units`` already consumed by ``key`` (tokens of a finished response), unconditionally."""
        if units < 0:
            raise ValueError(f"cannot charge a negative amount ({units})")
        increment = _span_ns(units, _interval_ns(rate_per_s), "a charge")
        try:
            word = self._table.slot(key)
        except TableFull:
            return
        self._gcra(word, _monotonic_ns() if now_ns is None else now_ns, increment, _NO_LIMIT)
