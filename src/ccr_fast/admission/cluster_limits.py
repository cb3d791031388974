"""Admission limits kept in Redis, so that every machine enforces one limit, with a shared-memory fast path.

``SharedLimits`` keeps each limit in this server's shared memory; with ``State.backend: "redis"`` the same
limits (the same ``Scope`` objects, compiled from the same config) are GCRA buckets in Redis instead, one
key per limit: ``<prefix>:rl:adm/s/<session>:m`` is a session's requests per minute, ``...:s`` per second,
``...:t`` its token budget.  What this module adds to ``RedisBackend``:

* **One round trip for all the limits of a request.**  ``admit`` sends every bucket the request must pass
  (the global, per-IP, per-key and per-session limits; or a provider's requests and token reservation)
  in one ``TAKE_MANY`` script, which takes from all of them or from none, atomically.  A request refused
  by one limit uses up none of the others, as in shared memory, without any giving back.
* **Refusals are answered locally.**  When Redis refuses a bucket, it says when the bucket will have room;
  that moment can only move later (others take units, usage is charged, nothing is given back to a
  request or budget bucket), so the machine remembers it in shared memory (``rl-memo/<thing>``, one word
  per limit) and every worker refuses locally until then, without asking Redis.  Exact.  Provider token
  buckets are the exception: unused reservations are given back, so their refusals are not remembered.
* **Leases (``leaseSize`` > 1).**  A worker that has to ask Redis for a request limit takes up to
  ``leaseSize`` units at once and leaves the spare ones in this machine's shared memory
  (``rl-pool/<thing>``), where every worker spends them without asking Redis; when every limit of a
  request is covered by the pool, admission makes no round trip at all.  The cost is the one
  ``LeasedLimiter`` documents: in any window the machines together may admit up to ``leaseSize - 1``
  more per limit per machine.  Token budgets and reservations are never leased.
* **Settlements off the request path.**  Token usage (budgets, a provider's tokens per minute) and the
  unused part of a reservation are booked by ``Settlements``, which coalesces whatever accumulates while
  one round trip is in flight into the next ``ADJUST``.

When Redis does not answer, ``admit`` follows ``failMode``: ``"open"`` admits without counting anything
(nothing goes into the pools, no reservation is recorded, so nothing is given back later), ``"closed"``
refuses with a retry after ``CLOSED_RETRY_AFTER_S`` (units taken from the local pools are put back).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

from ccr_fast.admission.limits import Pace, Refusal, Scope, reserved
from ccr_fast.state.liveness import pid_alive
from ccr_fast.state.redis_backend import CLOSED_RETRY_AFTER_S, Bucket, RedisBackend, Taken
from ccr_fast.state.table import KeyTable, TableFull

__all__ = [
    "COUNTED",
    "UNCOUNTED",
    "Admitted",
    "ClusterLimits",
    "Settlements",
    "Want",
    "bucket_key",
]

log = logging.getLogger(__name__)

_MEMO: Final = "rl-memo/"
_POOL: Final = "rl-pool/"
#: word of a pool slot holding the pid of the worker fetching the next lease (the pools use words 0, 8)
_REFILLER: Final = 16
#: the bucket key's suffix for the limit kept in each state word (``Pace.offset``)
_SUFFIXES: Final = {0: b":s", 8: b":m", 16: b":t"}
#: ids longer than this (session ids are the client's) are hashed in Redis keys
_LONGEST_ID: Final = 160
_CLOSED: Final = Refusal(
    round(CLOSED_RETRY_AFTER_S * 1e9),
    "limits are shared through Redis, which cannot be reached (State.redis.failMode is closed)",
)


class Want(NamedTuple):
    """One limited thing a request asks of: its limits, its name, the tokens to reserve (providers)."""

    scope: Scope
    #: the scope's prefix and the thing's id: ``adm/s/<session>``, ``adm/p/<provider>``, ``adm/g``
    thing: str
    tokens: int = 0


class Admitted(NamedTuple):
    """Admission granted; ``counted`` is False when Redis was unreachable and fail-open let it through."""

    counted: bool


COUNTED: Final = Admitted(True)
UNCOUNTED: Final = Admitted(False)


def _bucket(thing: str, pace: Pace, need: int, want: int) -> Bucket:
    return Bucket(bucket_key(thing, pace), pace.step_ns / 1000, pace.limit_ns / 1000, need, want)


def bucket_key(thing: str, pace: Pace) -> bytes:
    """The Redis key (under the backend's ``<prefix>:rl:``) of ``thing``'s limit ``pace``."""
    raw = thing.encode()
    if len(raw) > _LONGEST_ID:
        raw = raw[:16] + b"#" + hashlib.blake2b(raw, digest_size=16).hexdigest().encode()
    return raw + _SUFFIXES[pace.offset]


class _Ask(NamedTuple):
    """One bucket of a request's round trip, with what to do with the answer on this machine."""

    bucket: Bucket
    scope: Scope
    pace: Pace
    #: the word remembering when this limit has room again (-1: not remembered)
    memo: int
    #: the pool word spare units go to (-1: no lease)
    pool: int


class ClusterLimits:
    """GCRA checks in Redis for one worker, in front of which this machine's shared memory answers what it
    can (remembered refusals, leased units)."""

    __slots__ = ("_atomics", "_backend", "_lease_size", "_table")

    def __init__(self, backend: RedisBackend, table: KeyTable, lease_size: int = 1) -> None:
        if lease_size < 1:
            raise ValueError(f"lease_size must be at least 1 (1 is exact), not {lease_size}")
        if table.state_words < 3:
            raise ValueError(
                f"cluster limits need 3 state words per key slot, the table has {table.state_words}"
            )
        self._backend = backend
        self._table = table
        self._atomics = table.atomics
        self._lease_size = lease_size

    @property
    def backend(self) -> RedisBackend:
        return self._backend

    @property
    def lease_size(self) -> int:
        return self._lease_size

    async def admit(self, wants: Sequence[Want]) -> Refusal | Admitted:
        """Take one request (and reserve its tokens where the scope reserves) from every limit, or nothing.

        Each scope checks its token budget first (is it overdrawn?), then its request limits, then reserves
        tokens; the refusal returned is the limit that needs the longest wait.
        """
        now = time.monotonic_ns()
        spent: list[int] = []  # pool words a unit was taken from: given back unless admitted
        claimed: list[int] = []  # refiller words this worker holds for the round trip
        try:
            asks = self._plan(wants, now, spent, claimed)
            if isinstance(asks, Refusal):
                return asks
            found: Refusal | Admitted = COUNTED  # every limit covered by leased units: no round trip
            if asks:
                found = self._answer(asks, await self._backend.take_many([a.bucket for a in asks]), now)
            if isinstance(found, Admitted):
                spent.clear()
            return found
        finally:
            for word in spent:
                self._atomics.add(word, 1)
            if claimed:
                pid = os.getpid()
                for word in claimed:
                    self._atomics.cas(word, pid, 0)

    def _plan(
        self, wants: Sequence[Want], now: int, spent: list[int], claimed: list[int]
    ) -> Refusal | list[_Ask]:
        """What this machine answers itself (a remembered refusal; leased units, recorded in ``spent``),
        and the buckets left to ask Redis for."""
        load = self._atomics.load
        lease = self._lease_size
        asks: list[_Ask] = []
        for scope, thing, tokens in wants:
            memo = self._slot(_MEMO + thing)
            budget = scope.tokens
            if budget is not None and not scope.reserve_tokens:
                word = -1 if memo is None else memo + budget.offset
                blocked = load(word) if word >= 0 else 0
                if blocked and now < blocked:
                    return scope.refusal(budget, blocked - now)
                asks.append(_Ask(_bucket(thing, budget, 0, 0), scope, budget, word, -1))
            pool = self._slot(_POOL + thing) if lease > 1 and scope.requests else None
            refiller = False
            for pace in scope.requests:
                word = -1 if memo is None else memo + pace.offset
                blocked = load(word) if word >= 0 else 0
                if blocked and now < blocked + pace.step_ns:
                    return scope.refusal(pace, blocked + pace.step_ns - now)
                want, pool_word = 1, -1
                if pool is not None:
                    if self._spend(pool + pace.offset):
                        spent.append(pool + pace.offset)
                        continue
                    if not refiller and self._claim(pool + _REFILLER):
                        refiller = True
                        claimed.append(pool + _REFILLER)
                    if refiller:
                        want, pool_word = max(1, min(lease, pace.burst)), pool + pace.offset
                asks.append(_Ask(_bucket(thing, pace, 1, want), scope, pace, word, pool_word))
            if budget is not None and scope.reserve_tokens:
                units = reserved(budget, tokens)
                asks.append(_Ask(_bucket(thing, budget, units, units), scope, budget, -1, -1))
        return asks

    def _answer(self, asks: list[_Ask], taken: Taken | None, now: int) -> Refusal | Admitted:
        """Redis's answer (None: no answer) applied here: a refusal remembered, spare units pooled."""
        if taken is None:
            return UNCOUNTED if self._backend.fail_mode == "open" else _CLOSED
        if taken.refused >= 0:
            ask = asks[taken.refused]
            wait_ns = round(taken.retry_after * 1e9)
            if ask.memo >= 0:
                self._block(ask.memo, now + wait_ns - ask.bucket.need * ask.pace.step_ns)
            return ask.scope.refusal(ask.pace, wait_ns)
        add = self._atomics.add
        for ask, units in zip(asks, taken.granted, strict=True):
            if units > ask.bucket.need and ask.pool >= 0:
                add(ask.pool, units - ask.bucket.need)
        return COUNTED

    def _slot(self, key: str) -> int | None:
        try:
            return self._table.slot(key)
        except TableFull:
            return None  # counted and logged by the table: this thing is checked in Redis only

    def _spend(self, word: int) -> bool:
        load, cas = self._atomics.load, self._atomics.cas
        while True:
            have = load(word)
            if have < 1:
                return False
            if cas(word, have, have - 1):
                return True

    def _claim(self, word: int) -> bool:
        """Become the machine's one worker fetching a lease for this thing; a dead one is replaced."""
        owner = self._atomics.load(word)
        pid = os.getpid()
        if owner == 0 or (owner != pid and not pid_alive(owner)):
            return self._atomics.cas(word, owner, pid)
        return False

    def _block(self, word: int, until_ns: int) -> None:
        """Raise the remembered "no room before" time to ``until_ns`` (it only ever moves later)."""
        if until_ns <= 0:
            return
        load, cas = self._atomics.load, self._atomics.cas
        while True:
            current = load(word)
            if current >= until_ns or cas(word, current, until_ns):
                return


class Settlements:
    """Token usage and unused reservations, booked in Redis off the request path, many per round trip.

    ``add`` only records the change (a dict update) and makes sure a flush is on its way; the flush sends
    everything recorded so far in one ``ADJUST`` and, while that round trip is in flight, new changes
    collect for the next.  Changes to one bucket are summed.  When Redis does not answer they are dropped
    (the backend logs the outage), like ``RedisBackend.charge``.
    """

    __slots__ = ("_after", "_backend", "_pending", "_task")

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._pending: dict[bytes, list[float]] = {}
        self._after: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, key: bytes, pace: Pace, units: int, then: Callable[[], None] | None = None) -> None:
        """Book ``units`` on ``key`` (negative: give back); ``then`` runs once the change reached Redis."""
        if units:
            entry = self._pending.get(key)
            if entry is None:
                self._pending[key] = [pace.step_ns / 1000, units]
            else:
                entry[1] += units
        if then is not None:
            self._after.append(then)
        if self._task is None and (self._pending or self._after):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller outside the server): nothing can be sent
                log.debug("no running event loop: %d settlements dropped", len(self._pending))
                self._pending.clear()
                self._after.clear()
                return
            self._task = loop.create_task(self._flush())

    @property
    def pending(self) -> int:
        """Buckets with a change not sent yet."""
        return len(self._pending)

    async def drain(self) -> None:
        """Wait until everything recorded so far has been sent (or dropped)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _flush(self) -> None:
        try:
            while self._pending or self._after:
                batch, self._pending = self._pending, {}
                after, self._after = self._after, []
                await self._backend.adjust(
                    [(key, interval, round(units)) for key, (interval, units) in batch.items() if units]
                )
                for callback in after:
                    try:
                        callback()
                    except Exception:
                        log.exception("a settlement callback failed")
        finally:
            self._task = None
