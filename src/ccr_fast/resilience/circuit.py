"""Circuit breakers: stop sending traffic to a deployment that keeps failing, and probe for its return.

States and transitions (one breaker per deployment; a plain route's deployment is named
``"provider,model"``, so that is one breaker per provider and model):

==========  ======================================================  ==========
from        when                                                    to
==========  ======================================================  ==========
closed      ``failure_threshold`` consecutive failures, or an        open
            error rate of ``error_rate_threshold`` or more over
            ``rolling_window`` with at least ``volume_threshold``
            requests in it
open        ``timeout`` seconds have passed                          half-open
half-open   ``success_threshold`` consecutive probe successes        closed
half-open   a probe fails                                            open
any         ``force_open()``                                         open (until ``reset()``)
any         ``reset()``                                              closed
==========  ======================================================  ==========

Half-open is not stored: it is "open for at least ``timeout`` seconds", so no timer is needed. In
half-open at most ``half_open_max_requests`` probes are in flight at once; a probe whose outcome is never
recorded is presumed lost after another ``timeout``, so a lost probe cannot wedge the breaker.

Only outcomes of requests admitted in the current state move a breaker: the result of a request let in
while closed that finishes after the breaker opened says nothing about the deployment's recovery. All the
state lives in the :class:`~ccr_fast.resilience.store.StateStore`, so every worker sees the same breaker;
the transitions are CAS-guarded where a race matters and approximate (a probe more or less) where not.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ccr_fast.config.errors import Problem
from ccr_fast.config.reader import child
from ccr_fast.resilience._config import FRACTION_HINT, Reader
from ccr_fast.resilience.outcome import Outcome
from ccr_fast.resilience.store import RollingCounts, StateStore

_KEYS = frozenset(
    {
        "enabled",
        "failureThreshold",
        "successThreshold",
        "timeout",
        "halfOpenMaxRequests",
        "errorRateThreshold",
        "rollingWindow",
        "volumeThreshold",
    }
)
# Stored state codes (the `state` key); half-open is derived from OPEN and the time it opened.
_CLOSED, _OPEN, _FORCED = 0.0, 1.0, 2.0
_REQUESTS, _FAILURES = 0, 1


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def code(self) -> int:
        """The value exported as a metric gauge: 0 closed, 1 open, 2 half-open."""
        return _STATE_CODES[self]


_STATE_CODES = {CircuitState.CLOSED: 0, CircuitState.OPEN: 1, CircuitState.HALF_OPEN: 2}


class Admission(enum.IntEnum):
    """What ``allow`` decided; falsy when the request must not be sent. Hand it back to ``record``."""

    REJECTED = 0
    ALLOWED = 1
    #: admitted as one of the half-open probes
    PROBE = 2


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    enabled: bool = True
    failure_threshold: int = 5
    success_threshold: int = 2
    #: seconds a breaker stays open before it lets probes through
    timeout: float = 30.0
    half_open_max_requests: int = 1
    #: a fraction: 0.5 opens the breaker when half the requests in the window failed
    error_rate_threshold: float = 0.5
    rolling_window: float = 60.0
    #: the error rate is only judged over at least this many requests
    volume_threshold: int = 20

    @classmethod
    def from_config(
        cls, value: object, path: str = "circuitBreaker", warnings: list[Problem] | None = None
    ) -> BreakerConfig:
        """Read the ``circuitBreaker`` section (``false`` turns breakers off); raises ``ConfigError``."""
        reader = Reader()
        config = cls.read(reader, value, path)
        reader.finish(warnings)
        return config

    @classmethod
    def read(cls, reader: Reader, value: object, path: str) -> BreakerConfig:
        defaults = cls()
        if value is False:
            return cls(enabled=False)
        found = reader.section(path, value, _KEYS)
        if found is None:
            return defaults

        def count(key: str, default: int) -> int:
            return reader.integer(child(path, key), found.get(key), default, 1)

        return cls(
            enabled=reader.boolean(child(path, "enabled"), found.get("enabled"), defaults.enabled),
            failure_threshold=count("failureThreshold", defaults.failure_threshold),
            success_threshold=count("successThreshold", defaults.success_threshold),
            timeout=reader.duration(child(path, "timeout"), found.get("timeout"), defaults.timeout, 0.001),
            half_open_max_requests=count("halfOpenMaxRequests", defaults.half_open_max_requests),
            error_rate_threshold=reader.number(
                child(path, "errorRateThreshold"),
                found.get("errorRateThreshold"),
                defaults.error_rate_threshold,
                0.01,
                1.0,
                FRACTION_HINT,
            ),
            rolling_window=reader.duration(
                child(path, "rollingWindow"), found.get("rollingWindow"), defaults.rolling_window, 0.001
            ),
            volume_threshold=count("volumeThreshold", defaults.volume_threshold),
        )


class CircuitBreaker:
    """One breaker, its numbers kept in a state store under ``cb:<name>:*``."""

    __slots__ = (
        "_fails",
        "_opened_at",
        "_probe_at",
        "_probe_ok",
        "_probes",
        "_state",
        "_store",
        "_trips",
        "_window",
        "config",
        "name",
    )

    def __init__(self, name: str, config: BreakerConfig, store: StateStore) -> None:
        self.name = name
        self.config = config
        self._store = store
        prefix = f"cb:{name}"
        self._state = f"{prefix}:state"
        self._opened_at = f"{prefix}:opened_at"
        self._fails = f"{prefix}:fails"
        self._probes = f"{prefix}:probes"
        self._probe_at = f"{prefix}:probe_at"
        self._probe_ok = f"{prefix}:probe_ok"
        self._trips = f"{prefix}:trips"
        self._window = RollingCounts(
            store, f"{prefix}:window", ("requests", "failures"), config.rolling_window
        )

    def state(self, now: float) -> CircuitState:
        code = self._store.get(self._state)
        if code == _CLOSED:
            return CircuitState.CLOSED
        if code == _OPEN and now >= self._store.get(self._opened_at) + self.config.timeout:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def allow(self, now: float) -> Admission:
        """Whether a request may go to this deployment now."""
        state = self.state(now)
        if state is CircuitState.CLOSED:
            return Admission.ALLOWED
        if state is CircuitState.OPEN:
            return Admission.REJECTED
        store, limit = self._store, self.config.half_open_max_requests
        if store.get(self._probes) >= limit:
            if now - store.get(self._probe_at) < self.config.timeout:
                return Admission.REJECTED
            store.set(self._probes, 0.0)  # the probes in flight are long overdue: presumed lost
        if store.add(self._probes, 1.0) > limit:
            store.add(self._probes, -1.0)  # another worker took the last slot first
            return Admission.REJECTED
        store.set(self._probe_at, now)
        return Admission.PROBE

    def record(self, outcome: Outcome, now: float, admission: Admission = Admission.ALLOWED) -> None:
        """Count the outcome of a request this breaker admitted with ``admission``."""
        if admission is Admission.PROBE:
            self._record_probe(outcome, now)
            return
        if (
            not self.config.enabled
            or outcome is Outcome.IGNORED
            or admission is Admission.REJECTED
            or self.state(now) is not CircuitState.CLOSED
        ):
            return
        self._window.add(_REQUESTS, now)
        if outcome is Outcome.SUCCESS:
            if self._store.get(self._fails) != 0.0:
                self._store.set(self._fails, 0.0)
            return
        self._window.add(_FAILURES, now)
        consecutive = self._store.add(self._fails, 1.0)
        if consecutive >= self.config.failure_threshold or self._rate_exceeded(now):
            self._open(now, from_code=_CLOSED)

    def _record_probe(self, outcome: Outcome, now: float) -> None:
        store = self._store
        if store.add(self._probes, -1.0) < 0.0:
            store.set(self._probes, 0.0)
        if outcome is Outcome.IGNORED or self.state(now) is not CircuitState.HALF_OPEN:
            return
        if outcome is Outcome.FAILURE:
            self._open(now, from_code=_OPEN)
        elif store.add(self._probe_ok, 1.0) >= self.config.success_threshold:
            self._close()

    def _rate_exceeded(self, now: float) -> bool:
        requests, failures = self._window.totals(now)
        return (
            requests >= self.config.volume_threshold
            and failures >= self.config.error_rate_threshold * requests
        )

    def _open(self, now: float, from_code: float) -> None:
        """Open (or re-open, from half-open): half-open bookkeeping is cleared before the state flips."""
        store = self._store
        store.set(self._probes, 0.0)
        store.set(self._probe_ok, 0.0)
        store.set(self._fails, 0.0)
        store.set(self._opened_at, now)
        if from_code == _OPEN or store.cas(self._state, _CLOSED, _OPEN):
            store.add(self._trips, 1.0)

    def _close(self) -> None:
        self._clear_counts()
        self._store.cas(self._state, _OPEN, _CLOSED)

    def _clear_counts(self) -> None:
        store = self._store
        store.set(self._fails, 0.0)
        store.set(self._probes, 0.0)
        store.set(self._probe_ok, 0.0)
        self._window.clear()

    def force_open(self) -> None:
        """Open until :meth:`reset`, whatever the traffic does (an admin action)."""
        self._store.set(self._state, _FORCED)

    def reset(self) -> None:
        """Close and forget every count (an admin action)."""
        self._clear_counts()
        self._store.set(self._state, _CLOSED)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The breaker as the admin endpoint and the metrics show it."""
        store = self._store
        state = self.state(now)
        requests, failures = self._window.totals(now)
        out: dict[str, Any] = {
            "name": self.name,
            "state": state.value,
            "forced": store.get(self._state) == _FORCED,
            "consecutive_failures": int(store.get(self._fails)),
            "window": {
                "requests": int(requests),
                "failures": int(failures),
                "error_rate": failures / requests if requests else 0.0,
            },
            "trips": int(store.get(self._trips)),
        }
        if state is CircuitState.OPEN and not out["forced"]:
            opened = store.get(self._opened_at)
            out["half_open_in"] = max(0.0, opened + self.config.timeout - now)
        if state is CircuitState.HALF_OPEN:
            out["probes_in_flight"] = int(store.get(self._probes))
            out["probe_successes"] = int(store.get(self._probe_ok))
        return out


class CircuitBreakers:
    """The breakers of every deployment, created on first use and kept in the shared store.

    Breakers are cheap views over store keys, so a config reload builds a new registry without losing any
    state: a breaker with the same name reads the same keys.
    """

    __slots__ = ("_breakers", "_store", "config")

    def __init__(self, config: BreakerConfig, store: StateStore) -> None:
        self.config = config
        self._store = store
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = CircuitBreaker(name, self.config, self._store)
        return breaker

    def state(self, name: str, now: float) -> CircuitState:
        return self.get(name).state(now)

    def allow(self, name: str, now: float) -> Admission:
        return self.get(name).allow(now)

    def record(
        self, name: str, outcome: Outcome, now: float, admission: Admission = Admission.ALLOWED
    ) -> None:
        self.get(name).record(outcome, now, admission)

    def snapshot(self, names: Iterable[str], now: float) -> list[dict[str, Any]]:
        return [self.get(name).snapshot(now) for name in names]
