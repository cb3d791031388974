"""The rate-limit checks: GCRA on the shared key table, and the tickets that book tokens after the fact.

Every limited thing (the whole gateway, one session, one client IP, one API key, one provider) owns one slot
of the key table (``KeyTable``), under ``adm/<kind>/<id>``, and keeps its limits in the slot's three state
words: requests per second in the first, requests per minute in the second, tokens in the third.  Each word
is a GCRA theoretical arrival time, exactly as in ``ccr_fast.state.gcra``, so every worker sees the same
buckets.  One slot per thing rather than one per limit matters because slots are never freed: a server
holds three times as many sessions before its table fills.  A thing whose slot cannot be had (table full,
already counted and logged by the table) is let through untracked, like ``RateLimiter`` does.

The limits are compiled once from the config into nanosecond steps (``Pace``), so a check is a dict lookup
for the slot and one ``gcra`` call per limit.  A request is admitted only when every limit on it has room,
all or nothing: a limit that took a unit gives it back when a later one refuses (``atomics.add`` of minus
the step the take added, which leaves the bucket as full as it was), so a refused request never eats into
another limit.

Tokens come two ways.  A session's or key's ``tokenBudget`` is charged from real usage after the response
and only asked about before it (is the budget overdrawn?), because a request's cost is unknown until then.
A provider's ``tokensPerMinute`` is reserved from the request's estimate before sending, so requests wait
instead of running into the upstream's 429, and the ticket settles the difference to the real usage:
more is charged, what was not used is given back when the ticket is released.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, NamedTuple

from ccr_fast.admission.config import Limits, Rate
from ccr_fast.state.segment import AtomicWords
from ccr_fast.state.table import KeyTable, TableFull

__all__ = [
    "MAX_CHARGE_NS",
    "NOOP_TICKET",
    "Pace",
    "Refusal",
    "Scope",
    "SharedLimits",
    "Ticket",
    "retry_after",
]

#: a charge never pushes a budget more than a day into debt, however large the response was
MAX_CHARGE_NS: Final = 86_400 * 10**9
_NO_LIMIT: Final = (1 << 64) - 1
_PER_SECOND_WORD: Final = 0
_PER_MINUTE_WORD: Final = 8
_TOKENS_WORD: Final = 16
_STATE_WORDS: Final = 3


class Pace(NamedTuple):
    """One rate as GCRA steps: each unit moves the arrival time ``step_ns``; room for ``burst`` units."""

    #: byte offset of the rate's word in its slot
    offset: int
    step_ns: int
    burst: int
    limit_ns: int
    rate: Rate

    @classmethod
    def of(cls, offset: int, rate: Rate) -> Pace:
        step = max(1, round(1e9 / rate.per_second))
        return cls(offset, step, rate.burst, rate.burst * step, rate)


class Refusal(NamedTuple):
    """Why a request may not go yet."""

    wait_ns: int
    #: "this session allows 60 requests per minute", for the error message
    reason: str


class Scope:
    """The limits on one kind of thing, compiled; ``kind`` names the thing in error messages."""

    __slots__ = ("kind", "prefix", "requests", "reserve_tokens", "tokens")

    def __init__(self, kind: str, prefix: str, limits: Limits, *, reserve_tokens: bool = False) -> None:
        self.kind = kind
        self.prefix = prefix
        offsets = ((_PER_SECOND_WORD, limits.per_second), (_PER_MINUTE_WORD, limits.per_minute))
        self.requests = tuple(Pace.of(offset, rate) for offset, rate in offsets if rate is not None)
        self.tokens = None if limits.tokens is None else Pace.of(_TOKENS_WORD, limits.tokens)
        #: True: tokens are reserved before sending (a provider); False: charged afterwards (a budget)
        self.reserve_tokens = reserve_tokens

    def __bool__(self) -> bool:
        return bool(self.requests) or self.tokens is not None

    def refusal(self, pace: Pace, wait_ns: int) -> Refusal:
        return Refusal(wait_ns, f"{self.kind} allows {pace.rate}")


class SharedLimits:
    """GCRA checks and charges on the slots of one shared key table."""

    __slots__ = ("_add", "_gcra", "_table")

    def __init__(self, table: KeyTable) -> None:
        if table.state_words < _STATE_WORDS:
            raise ValueError(
                f"admission needs {_STATE_WORDS} state words per key slot, the table has {table.state_words}"
            )
        atomics: AtomicWords = table.atomics
        self._table = table
        self._gcra = atomics.gcra
        self._add = atomics.add

    def slot(self, key: str) -> int | None:
        """The offset of ``key``'s state words; None when the table is full (the key goes untracked)."""
        try:
            return self._table.slot(key)
        except TableFull:
            return None

    def admit(self, scope: Scope, base: int, now_ns: int, tokens: int = 0) -> Refusal | None:
        """Take one request (and reserve ``tokens`` when the scope reserves) from every limit, or nothing."""
        gcra = self._gcra
        budget = scope.tokens
        if budget is not None and not scope.reserve_tokens:
            wait = gcra(base + budget.offset, now_ns, 0, budget.limit_ns)
            if wait:
                return scope.refusal(budget, wait)
        taken = 0
        for pace in scope.requests:
            wait = gcra(base + pace.offset, now_ns, pace.step_ns, pace.limit_ns)
            if wait:
                self._give_back(scope, base, taken)
                return scope.refusal(pace, wait)
            taken += 1
        if budget is not None and scope.reserve_tokens:
            wait = gcra(
                base + budget.offset, now_ns, reserved(budget, tokens) * budget.step_ns, budget.limit_ns
            )
            if wait:
                self._give_back(scope, base, taken)
                return scope.refusal(budget, wait)
        return None

    def give_back(self, scope: Scope, base: int, tokens: int = 0) -> None:
        """Undo an ``admit`` that succeeded (with the ``tokens`` it reserved)."""
        self._give_back(scope, base, len(scope.requests))
        if scope.tokens is not None and scope.reserve_tokens:
            self.refund(base, scope.tokens, reserved(scope.tokens, tokens))

    def _give_back(self, scope: Scope, base: int, count: int) -> None:
        for pace in scope.requests[:count]:
            self._add(base + pace.offset, -pace.step_ns)

    def charge(self, base: int, pace: Pace, units: int, now_ns: int) -> None:
        """Book ``units`` already used, past the limit if need be (capped at ``MAX_CHARGE_NS`` of debt)."""
        if units > 0:
            self._gcra(base + pace.offset, now_ns, min(units * pace.step_ns, MAX_CHARGE_NS), _NO_LIMIT)

    def refund(self, base: int, pace: Pace, units: int) -> None:
        """Give back ``units`` that were reserved with ``admit`` and not used."""
        if units > 0:
            self._add(base + pace.offset, -units * pace.step_ns)


def reserved(pace: Pace, tokens: int) -> int:
    """Tokens a reservation takes: the estimate, capped at the bucket's size (else it could never pass)."""
    return min(max(tokens, 0), pace.burst)


def retry_after(wait_ns: int) -> str:
    """A ``retry-after`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_ns / 1e9)))


class Ticket:
    """What an admitted request holds until it ends: where to send it, and how to book its tokens.

    Call ``charge_tokens`` with the real usage once it is known (it may be called several times, each with
    the tokens not yet charged) and ``release`` when the request is over, whatever happened; ``release``
    gives back the part of the provider's token reservation that was not used.  Both are cheap, never
    raise, and ``release`` is idempotent.
    """

    __slots__ = ("_budgets", "_credit", "_limits", "_now", "_on_refund", "_provider", "route", "waited")

    def __init__(
        self,
        limits: SharedLimits | None,
        now_ns: Callable[[], int],
        *,
        budgets: tuple[tuple[int, Pace], ...] = (),
        provider: tuple[int, Pace] | None = None,
        reserved_tokens: int = 0,
        on_refund: Callable[[], None] | None = None,
        route: str | None = None,
        waited: float = 0.0,
    ) -> None:
        self._limits = limits
        self._now = now_ns
        self._budgets = budgets
        self._provider = provider
        self._credit = reserved_tokens if provider is not None else 0
        #: called after ``release`` gave tokens back, so requests waiting for them can try again at once
        self._on_refund = on_refund
        #: "provider,model" to send the request to instead of its own route (spillover or redirect)
        self.route = route
        #: seconds the request spent waiting for its provider
        self.waited = waited

    def charge_tokens(self, n: int) -> None:
        """Book ``n`` tokens of real usage against the budgets and the provider's token limit."""
        limits = self._limits
        if limits is None or n <= 0:
            return
        now = self._now()
        for base, pace in self._budgets:
            limits.charge(base, pace, n, now)
        if self._provider is not None:
            covered = min(n, self._credit)
            self._credit -= covered
            base, pace = self._provider
            limits.charge(base, pace, n - covered, now)

    def release(self) -> None:
        """The request is over: give back the provider tokens reserved and not charged."""
        if self._limits is not None and self._provider is not None and self._credit:
            base, pace = self._provider
            self._limits.refund(base, pace, self._credit)
            self._credit = 0
            if self._on_refund is not None:
                self._on_refund()


def _no_clock() -> int:
    return 0


#: the ticket of a request nothing applies to: charging and releasing it do nothing
NOOP_TICKET: Final = Ticket(None, _no_clock)
