"""The state backend for several machines: rate limits, counters and gauges kept in one Redis.

One machine shares state between its workers through shared memory (``ccr_fast.state.gcra``); machines
behind one load balancer share it through Redis, with the same GCRA limiter moved into Lua
(``ccr_fast.state.redis_scripts``) so a decision is still one atomic step on one clock.  ``docs/redis.md``
is the user-facing guide; this module docstring records why it is built the way it is.

* **One round trip per decision.**  ``gcra_allow`` is a single ``EVALSHA``; redis-py's script object loads
  the script again when Redis answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``), so a Redis that
  comes back empty needs no action.  Counter increments go out as one pipeline.
* **Redis never takes the gateway down.**  Every call runs under ``timeout_ms``; a call that fails or times
  out is answered by ``fail_mode`` instead: ``"open"`` admits (availability first), ``"closed"`` refuses
  with a retry after ``CLOSED_RETRY_AFTER_S`` (for deployments where an upstream quota or bill must not be
  exceeded).  Counter and gauge updates made meanwhile are dropped, and reads answer None rather than a
  zero that a metrics system would take for a reset.  After a failure the backend does not wait on Redis
  again for ``retry_interval_ms``: when Redis hangs rather than refusing, only one call per interval pays
  the timeout, the rest are answered at once.  The next call after the interval probes Redis and, when it
  answers, everything resumes (the connection pool reconnects by itself).  The outage is logged once per
  ``log_interval_s`` with the number of calls it affected, and its end once.
* **The local fast path is optional and its cost is stated.**  ``LeasedLimiter`` takes units from the Redis
  bucket k at a time into this machine's shared memory and spends them there; see its docstring for the
  exactness trade-off.  Refusals are remembered locally as well, which is exact: the bucket cannot refill
  sooner than Redis said.

A backend belongs to one event loop (one per worker process): its connection pool is asyncio's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, NamedTuple, TypeVar
from urllib.parse import urlsplit

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.config.reader import child, describe
from ccr_fast.config.redact import redact_text
from ccr_fast.state.gcra import Decision
from ccr_fast.state.liveness import pid_alive
from ccr_fast.state.redis_scripts import ADJUST, CHARGE, TAKE, TAKE_MANY
from ccr_fast.state.shared import SharedState
from ccr_fast.state.table import Key, TableFull

__all__ = [
    "CLOSED_RETRY_AFTER_S",
    "FAIL_MODES",
    "Bucket",
    "FailMode",
    "Grant",
    "LeasedLimiter",
    "RedisBackend",
    "RedisSettings",
    "Taken",
    "from_config",
]

log = logging.getLogger(__name__)

FailMode = Literal["open", "closed"]
FAIL_MODES: Final[tuple[FailMode, ...]] = ("open", "closed")
#: what a fail-closed refusal tells the client to wait while Redis is unreachable
CLOSED_RETRY_AFTER_S: Final = 1.0

#: what counts as "Redis did not answer": connection and protocol errors, error replies such as LOADING
#: or READONLY, socket errors and our own timeout
_FAILURES: Final = (redis.exceptions.RedisError, OSError, TimeoutError)
_ALLOWED: Final = Decision(True, 0.0)

T = TypeVar("T")


class Grant(NamedTuple):
    """What ``gcra_take`` got: units taken from the bucket, or the wait before ``need`` units fit."""

    #: units taken (between ``need`` and ``want`` when granted, 0 when refused)
    granted: int
    #: seconds until ``need`` units would fit; 0.0 when granted
    retry_after: float


class Bucket(NamedTuple):
    """One limit a request must pass, for ``take_many``: a GCRA bucket and the units asked of it."""

    #: the limit's key (the backend puts its prefix in front)
    key: bytes
    #: microseconds per unit (1e6 / rate per second)
    interval_us: float
    #: room for ``burst`` units: ``burst * interval_us``
    limit_us: float
    #: units the request needs (0: only asks whether the bucket is overdrawn)
    need: int
    #: units to take if they fit (a lease), at least ``need``
    want: int


class Taken(NamedTuple):
    """What ``take_many`` got: units per bucket, or which bucket refused and how long it needs."""

    #: units taken from each bucket, in the order asked; empty when refused
    granted: tuple[int, ...]
    #: index of the refusing bucket (the one with the longest wait); -1 when granted
    refused: int = -1
    #: seconds until the refusing bucket has room; 0.0 when granted
    retry_after: float = 0.0


def _key_bytes(key: Key) -> bytes:
    return key.encode() if isinstance(key, str) else key


def _interval_us(rate_per_s: float) -> float:
    """Microseconds per unit at ``rate_per_s`` (the unit the Lua scripts count in)."""
    if not 0 < rate_per_s < math.inf:  # also false for NaN
        raise ValueError(f"rate must be a positive number per second, not {rate_per_s!r}")
    return 1e6 / rate_per_s


def _check_amounts(burst: int, need: int, want: int) -> None:
    if burst < 1 or not 0 <= need <= burst or want < need:
        raise ValueError(
            f"need 1 <= burst, 0 <= cost <= burst (else it could never pass) and want >= cost: "
            f"burst={burst}, cost={need}, want={want}"
        )


class RedisBackend:
    """Limits, counters and gauges in one Redis, shared by every machine configured with the same prefix."""

    __slots__ = (
        "_adjust",
        "_charge",
        "_counters_key",
        "_down_since",
        "_fail_mode",
        "_fallbacks",
        "_gauges_key",
        "_last_log",
        "_log_interval_s",
        "_prefix",
        "_probing",
        "_rate_prefix",
        "_redis",
        "_retry_at",
        "_retry_interval_s",
        "_take",
        "_take_many",
        "_timeout_s",
        "_unreported",
        "_url",
    )

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "ccr-fast",
        fail_mode: FailMode = "open",
        timeout_ms: int = 50,
        retry_interval_ms: int = 250,
        log_interval_s: float = 30.0,
        max_connections: int = 64,
    ) -> None:
        if fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be 'open' or 'closed', not {fail_mode!r}")
        if timeout_ms <= 0 or retry_interval_ms < 0 or max_connections < 1:
            raise ValueError("timeout_ms and max_connections must be positive, retry_interval_ms >= 0")
        timeout_s = timeout_ms / 1000
        # A connection that turns out to be stale (Redis restarted) is retried once on a fresh one; more
        # retries would only spend the time budget on a Redis that is down.  The pool waits for a free
        # connection without a limit of its own: the call's timeout bounds the wait.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=None,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        self._redis = redis.asyncio.Redis.from_pool(pool)
        self._take = self._redis.register_script(TAKE)
        self._take_many = self._redis.register_script(TAKE_MANY)
        self._charge = self._redis.register_script(CHARGE)
        self._adjust = self._redis.register_script(ADJUST)
        self._url = url
        self._prefix = prefix
        self._rate_prefix = f"{prefix}:rl:".encode()
        self._counters_key = f"{prefix}:counters"
        self._gauges_key = f"{prefix}:gauges"
        self._fail_mode: FailMode = fail_mode
        self._timeout_s = timeout_s
        self._retry_interval_s = retry_interval_ms / 1000
        self._log_interval_s = log_interval_s
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._probing = False
        self._last_log = -math.inf
        self._unreported = 0
        self._fallbacks = 0

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> RedisBackend:
        return cls(
            settings.url,
            prefix=settings.prefix,
            fail_mode=settings.fail_mode,
            timeout_ms=settings.timeout_ms,
        )

    @property
    def fail_mode(self) -> FailMode:
        return self._fail_mode

    @property
    def prefix(self) -> str:
        """The key prefix: every key this backend writes starts with it and a colon."""
        return self._prefix

    @property
    def client(self) -> redis.asyncio.Redis:
        """The redis-py client (its connection pool); run calls through ``run`` for the fail mode."""
        return self._redis

    @property
    def healthy(self) -> bool:
        """False from a failed call until a call succeeds again."""
        return self._down_since is None

    @property
    def fallbacks(self) -> int:
        """Calls Redis did not answer (failed, timed out, or skipped while it was down), since creation."""
        return self._fallbacks

    async def gcra_take(self, key: Key, rate_per_s: float, burst: int, *, need: int, want: int) -> Grant:
        """Take between ``need`` and ``want`` units from ``key``'s bucket, as many as fit, or none.

        The bucket refills at ``rate_per_s`` and holds ``burst``.  ``need = want = 0`` takes nothing and
        only asks whether the key is overdrawn.  Without Redis: fail-open grants exactly ``need`` (a lease
        must not hand out units nobody counted), fail-closed refuses.
        """
        grant = await self._take_units(key, rate_per_s, burst, need, want)
        return self._unanswered(need) if grant is None else grant

    async def gcra_allow(self, key: Key, rate_per_s: float, burst: int, cost: int = 1) -> Decision:
        """Admit ``cost`` units for ``key`` under ``rate_per_s`` with room for ``burst`` at once.

        Exact across every machine on this Redis; ``cost=0`` only asks whether the key is overdrawn (for
        budgets charged afterwards).  Without Redis the answer follows ``fail_mode``.
        """
        grant = await self.gcra_take(key, rate_per_s, burst, need=cost, want=cost)
        return _ALLOWED if grant.retry_after == 0.0 else Decision(False, grant.retry_after)

    async def charge(self, key: Key, units: int, rate_per_s: float) -> None:
        """Book ``units`` already consumed by ``key`` (tokens of a finished response), unconditionally.

        Dropped when Redis is unreachable: the usage happened, and there is nowhere to book it.
        """
        if units < 0:
            raise ValueError(f"cannot charge a negative amount ({units})")
        if units == 0:
            return
        keys = [self._rate_prefix + _key_bytes(key)]
        args = [_interval_us(rate_per_s), units]
        await self._run(lambda: self._charge(keys=keys, args=args))

    async def take_many(self, buckets: Sequence[Bucket]) -> Taken | None:
        """Take from every bucket or from none, atomically, in one round trip (``TAKE_MANY``).

        Each bucket gives between its ``need`` and ``want`` units when every bucket has room for its
        ``need``; otherwise nothing is taken and the answer names the bucket needing the longest wait.
        None when Redis did not answer: the caller applies the fail mode (it knows what it asked for).
        """
        if not buckets:
            return Taken(())
        keys: list[bytes] = []
        args: list[float | int] = []
        prefix = self._rate_prefix
        for bucket in buckets:
            if not 0 <= bucket.need <= bucket.want or bucket.interval_us <= 0:
                raise ValueError(f"bad bucket {bucket!r}: need 0 <= need <= want and a positive interval")
            keys.append(prefix + bucket.key)
            args.extend((bucket.interval_us, bucket.limit_us, bucket.need, bucket.want))
        reply = await self._run(lambda: self._take_many(keys=keys, args=args))
        if reply is None:
            return None
        if int(reply[0]) == 1:
            return Taken(tuple(int(units) for units in reply[1:]))
        return Taken((), int(reply[1]) - 1, int(reply[2]) / 1e6)

    async def adjust(self, changes: Sequence[tuple[bytes, float, int]]) -> bool:
        """Settle many buckets in one round trip (``ADJUST``): ``(key, interval_us, units)`` each, positive
        units booked as used (a charge), negative ones given back (an unused reservation).

        False when Redis did not answer: the settlements are dropped, as ``charge`` drops its charge.
        """
        if not changes:
            return True
        keys = [self._rate_prefix + key for key, _, _ in changes]
        args: list[float | int] = []
        for _, interval_us, units in changes:
            args.extend((interval_us, units))
        return await self._run(lambda: self._adjust(keys=keys, args=args)) is not None

    async def warm_up(self, *scripts: str, timeout_s: float = 5.0) -> bool:
        """Connect and load the scripts (this backend's and ``scripts``) before a request needs them.

        A cold first call pays for the connection and a script load, which can take longer than a tight
        ``timeout_ms`` and so be answered by the fail mode; a worker calls this as it starts.  Under its
        own, longer timeout; False when Redis did not answer (calls then handle the outage as usual).
        """
        try:
            async with asyncio.timeout(timeout_s):
                for text in (TAKE, TAKE_MANY, CHARGE, ADJUST, *scripts):
                    await self._redis.script_load(text)
        except _FAILURES:
            return False
        return True

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T | None:
        """Run one Redis operation under the timeout and the outage handling; None when not answered."""
        return await self._run(operation)

    async def incr_counters(self, counts: Mapping[str, int]) -> None:
        """Add to monotonic counters shared by every machine, in one pipelined round trip."""
        items = [(name, n) for name, n in counts.items() if n]
        if any(n < 0 for _, n in items):
            raise ValueError("counters only go up; cannot add a negative amount")
        if not items:
            return

        async def send() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, n in items:
                    pipe.hincrby(self._counters_key, name, n)
                return await pipe.execute()

        await self._run(send)

    async def read_counters(self, prefix: str = "") -> dict[str, int] | None:
        """Every counter whose name starts with ``prefix``; None when Redis is unreachable."""
        raw = await self._run(lambda: self._redis.hgetall(self._counters_key))
        if raw is None:
            return None
        out: dict[str, int] = {}
        for name, value in raw.items():
            text = name.decode() if isinstance(name, bytes) else name
            if text.startswith(prefix):
                out[text] = int(value)
        return out

    async def gauge_add(self, key: str, delta: int) -> int | None:
        """Add ``delta`` (may be negative; 0 reads) to a gauge shared by every machine; its new value.

        None when Redis is unreachable; the change is then lost, so gauges kept here are for display (queue
        depth across machines), not for decisions.
        """
        return await self._run(lambda: self._redis.hincrby(self._gauges_key, key, delta))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def __aenter__(self) -> RedisBackend:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _take_units(
        self, key: Key, rate_per_s: float, burst: int, need: int, want: int
    ) -> Grant | None:
        """``TAKE`` on ``key``; None when Redis did not answer."""
        interval = _interval_us(rate_per_s)
        _check_amounts(burst, need, want)
        keys = [self._rate_prefix + _key_bytes(key)]
        args = [interval, burst * interval, need, want]
        reply = await self._run(lambda: self._take(keys=keys, args=args))
        if reply is None:
            return None
        taken, wait_us = int(reply[0]), int(reply[1])
        return Grant(taken, 0.0) if wait_us == 0 else Grant(0, wait_us / 1e6)

    def _unanswered(self, need: int) -> Grant:
        """The ``fail_mode`` answer to a request for ``need`` units that Redis did not answer."""
        return Grant(need, 0.0) if self._fail_mode == "open" else Grant(0, CLOSED_RETRY_AFTER_S)

    async def _run(self, operation: Callable[[], Awaitable[T]]) -> T | None:
        """Run one Redis operation under the timeout; None when Redis did not answer (or is down)."""
        probe = False
        if self._down_since is not None:
            if self._probing or time.monotonic() < self._retry_at:
                self._fallbacks += 1
                self._unreported += 1
                return None
            probe = self._probing = True
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await operation()
        except _FAILURES as exc:
            self._failed(exc)
            return None
        finally:
            if probe:
                self._probing = False
        if self._down_since is not None:
            log.info(
                "Redis at %s is reachable again after %.1f s",
                redact_text(self._url),
                time.monotonic() - self._down_since,
            )
            self._down_since = None
        return result

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._fallbacks += 1
        self._unreported += 1
        if self._down_since is None:
            self._down_since = now
        self._retry_at = now + self._retry_interval_s
        if now - self._last_log < self._log_interval_s:
            return
        self._last_log = now
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else f"no answer within {self._timeout_s:g} s"
        log.warning(
            "Redis at %s is unreachable (%s); failing %s (rate limits %s, counter and gauge updates are "
            "dropped); calls answered without Redis since the last report: %d",
            redact_text(self._url),
            reason,
            self._fail_mode,
            "admit" if self._fail_mode == "open" else "refuse",
            self._unreported,
        )
        self._unreported = 0


_LEASE_PREFIX: Final = b"redis-lease:"
#: state words of a lease slot in the local key table (byte offsets from the first state word)
_POOL: Final = 0  # units leased from Redis and not spent yet
_REFILLER: Final = 8  # pid of the process fetching the next lease (0: nobody)
_BLOCKED_UNTIL: Final = 16  # CLOCK_MONOTONIC ns before which the bucket has no room for anything


class LeasedLimiter:
    """A Redis limit whose units are fetched k at a time into this machine's shared memory.

    Admission first spends a unit from the machine's local pool (a shared-memory word, so every worker on
    the machine draws from it); only when the pool is empty does a worker go to Redis, taking up to
    ``lease_size`` units at once: one for the request and the rest for the pool.  With k = ``lease_size``
    that cuts round trips to Redis by up to k times.

    The trade-off: leased units were counted by Redis when they were leased but are spent later, possibly
    in a later window, when the bucket has also refilled.  So in any window the machines together admit
    at most the limit plus the units sitting in their pools, at most ``k - 1`` per machine (one worker
    per machine refills at a time; others meanwhile ask Redis for exactly what they need), so at most
    ``k * machines`` over.  Units in the pool of a machine that stops are never spent (the limit errs on
    the safe side), and a machine holding units can admit while another is refused, so k trades fairness
    too.  k = 1 takes nothing extra and is exact.

    Refusals are exact and stay local: Redis answers how long until the bucket has room, that moment only
    moves later as others take units, so every worker on the machine refuses locally until then.  (If
    Redis loses the key, say a restart without persistence, that local memory outlives it by at most
    the one wait Redis announced.)

    ``cost=0`` (is a budget overdrawn?) skips the pool and asks Redis when no local refusal covers it;
    ``charge`` goes to Redis directly, so budgets stay exact.
    """

    __slots__ = ("_atomics", "_backend", "_lease_size", "_table")

    def __init__(self, backend: RedisBackend, local_state: SharedState, lease_size: int) -> None:
        if lease_size < 1:
            raise ValueError(f"lease_size must be at least 1 (1 is exact), not {lease_size}")
        table = local_state.table
        if table.state_words < 3:
            raise ValueError(
                f"a lease needs 3 state words per key-table slot, the table has {table.state_words}"
            )
        self._backend = backend
        self._table = table
        self._atomics = table.atomics
        self._lease_size = lease_size

    @property
    def lease_size(self) -> int:
        return self._lease_size

    async def allow(self, key: Key, rate_per_s: float, burst: int, *, cost: int = 1) -> Decision:
        """Admit ``cost`` units for ``key`` under ``rate_per_s`` with room for ``burst`` at once."""
        interval_ns = _interval_us(rate_per_s) * 1000
        _check_amounts(burst, cost, cost)
        try:
            words = self._table.slot(_LEASE_PREFIX + _key_bytes(key))
        except TableFull:
            return await self._backend.gcra_allow(key, rate_per_s, burst, cost)
        now = time.monotonic_ns()
        blocked = self._atomics.load(words + _BLOCKED_UNTIL)
        if blocked and now < blocked + cost * interval_ns:
            return Decision(False, (blocked + cost * interval_ns - now) / 1e9)
        if cost and self._spend(words, cost):
            return _ALLOWED
        want = max(cost, min(self._lease_size, burst)) if cost else 0
        refiller = want > cost and self._claim_refill(words + _REFILLER)
        backend = self._backend
        try:
            if refiller and self._spend(words, cost):
                return _ALLOWED  # another worker refilled the pool in the meantime
            grant = await backend._take_units(key, rate_per_s, burst, cost, want if refiller else cost)
            if grant is not None and grant.granted > cost:
                self._atomics.add(words + _POOL, grant.granted - cost)
        finally:
            if refiller:
                self._atomics.cas(words + _REFILLER, os.getpid(), 0)
        if grant is None:
            grant = backend._unanswered(cost)
        elif grant.retry_after:
            # Redis's own answer: the bucket has no room for anything before now + wait - cost
            self._block(words + _BLOCKED_UNTIL, now + grant.retry_after * 1e9 - cost * interval_ns)
        return _ALLOWED if grant.retry_after == 0.0 else Decision(False, grant.retry_after)

    async def charge(self, key: Key, units: int, rate_per_s: float) -> None:
        """Book consumed ``units`` in Redis (see ``RedisBackend.charge``)."""
        await self._backend.charge(key, units, rate_per_s)

    def _spend(self, words: int, cost: int) -> bool:
        load, cas = self._atomics.load, self._atomics.cas
        while True:
            have = load(words + _POOL)
            if have < cost:
                return False
            if cas(words + _POOL, have, have - cost):
                return True

    def _claim_refill(self, word: int) -> bool:
        """Become the machine's one refilling process; a refiller that died is replaced."""
        owner = self._atomics.load(word)
        pid = os.getpid()
        if owner == 0 or (owner != pid and not pid_alive(owner)):
            return self._atomics.cas(word, owner, pid)
        return False

    def _block(self, word: int, until_ns: float) -> None:
        """Raise the local "no room before" time to ``until_ns`` (it only ever moves later)."""
        until = int(until_ns)
        if until <= 0:
            return  # before the clock's origin: nothing to remember (0 means "no refusal known")
        load, cas = self._atomics.load, self._atomics.cas
        while True:
            current = load(word)
            if current >= until or cas(word, current, until):
                return


# -- config -------------------------------------------------------------------------------------------

_REDIS_KEYS: Final = frozenset({"url", "prefix", "failMode", "timeoutMs", "leaseSize", "metricsIntervalMs"})
_BACKENDS: Final = ("shm", "redis")
_SCHEMES: Final = ("redis", "rediss", "unix")
_PREFIX: Final = re.compile(r"[A-Za-z0-9_.:-]+")
_DIGITS: Final = re.compile(r"\s*[0-9]+\s*")


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """``State.redis`` of the config, checked."""

    url: str
    prefix: str = "ccr-fast"
    fail_mode: FailMode = "open"
    timeout_ms: int = 50
    #: units a machine takes from Redis at once (``LeasedLimiter``); 1 is exact
    lease_size: int = 1
    #: how often a machine adds its metrics to the cluster totals in Redis
    metrics_interval_ms: int = 1000


def from_config(
    raw: object, path: str = "State", warnings: list[Problem] | None = None
) -> RedisSettings | None:
    """Read the ``State`` section; the Redis settings when ``backend`` is ``"redis"``, else None.

    ``State.redis`` is checked whenever present, so a mistake shows before the switch to Redis.  Every
    error is raised at once in a ``ConfigError`` naming key paths; unknown keys under ``State.redis`` are
    warnings, appended to ``warnings``.  (Other ``State`` keys belong to the shared-memory backend.)
    """
    errors: list[Problem] = []
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError([Problem(path, f"expected an object, got {describe(raw)}")])
    backend = raw.get("backend", "shm")
    if backend not in _BACKENDS:
        errors.append(Problem(child(path, "backend"), f'expected "shm" or "redis", got {describe(backend)}'))
    redis_path = child(path, "redis")
    section = raw.get("redis")
    settings: RedisSettings | None = None
    if section is not None and not isinstance(section, Mapping):
        errors.append(Problem(redis_path, f"expected an object, got {describe(section)}"))
    elif section is not None or backend == "redis":
        settings = _read_redis(section or {}, redis_path, backend == "redis", errors, warnings)
    if errors:
        raise ConfigError(errors)
    return settings if backend == "redis" else None


def _read_redis(
    section: Mapping[str, Any],
    path: str,
    needed: bool,
    errors: list[Problem],
    warnings: list[Problem] | None,
) -> RedisSettings:
    if warnings is not None:
        warnings.extend(
            Problem(child(path, str(key)), "unknown key, ignored")
            for key in section
            if key not in _REDIS_KEYS
        )
    defaults = RedisSettings(url="")
    url = _read_url(section.get("url"), child(path, "url"), needed, errors)
    prefix = section.get("prefix", defaults.prefix)
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        errors.append(
            Problem(
                child(path, "prefix"),
                f"expected letters, digits, '_', '.', ':' or '-', got {describe(prefix)}",
            )
        )
        prefix = defaults.prefix
    fail_mode = section.get("failMode", defaults.fail_mode)
    if fail_mode not in FAIL_MODES:
        errors.append(
            Problem(child(path, "failMode"), f'expected "open" or "closed", got {describe(fail_mode)}')
        )
        fail_mode = defaults.fail_mode
    timeout_ms = _read_int(
        section.get("timeoutMs"), child(path, "timeoutMs"), defaults.timeout_ms, 60_000, errors
    )
    lease = _read_int(
        section.get("leaseSize"), child(path, "leaseSize"), defaults.lease_size, 1_000_000, errors
    )
    interval = _read_int(
        section.get("metricsIntervalMs"),
        child(path, "metricsIntervalMs"),
        defaults.metrics_interval_ms,
        60_000,
        errors,
        low=100,
    )
    return RedisSettings(
        url=url,
        prefix=prefix,
        fail_mode=fail_mode,
        timeout_ms=timeout_ms,
        lease_size=lease,
        metrics_interval_ms=interval,
    )


def _read_url(value: object, path: str, needed: bool, errors: list[Problem]) -> str:
    if value is None or value == "":
        if needed:
            errors.append(
                Problem(
                    path, 'missing; required when State.backend is "redis" (e.g. "redis://10.0.0.5:6379/0")'
                )
            )
        return ""
    if not isinstance(value, str):
        errors.append(Problem(path, f"expected a string, got {describe(value, secret=True)}"))
        return ""
    parts = urlsplit(value)
    if parts.scheme not in _SCHEMES:
        errors.append(Problem(path, f"expected a redis://, rediss:// or unix:// URL, got {describe(value)}"))
    elif parts.scheme != "unix" and not parts.hostname:
        errors.append(Problem(path, f"the URL names no host: {describe(value)}"))
    elif parts.scheme == "unix" and not parts.path:
        errors.append(Problem(path, f"the URL names no socket path: {describe(value)}"))
    return value


def _read_int(
    value: object, path: str, default: int, high: int, errors: list[Problem], *, low: int = 1
) -> int:
    """An integer in ``[low, high]``; digit strings count (environment interpolation yields strings)."""
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    if number is None or not low <= number <= high:
        errors.append(Problem(path, f"expected an integer {low}-{high}, got {describe(value)}"))
        return default
    return number
