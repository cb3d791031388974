"""The state-store seam: the few numbers resilience shares across worker processes.

Breaker states, in-flight counts, latency averages and rolling counters must agree across the Granian
workers, or each worker would open its own breaker after its own share of the failures and balance on its
own partial view of the load. Everything that must be shared goes through :class:`StateStore`, four
operations on small numbers keyed by strings, so the in-process implementation used by one worker and by
the tests can be replaced by a shared-memory one (atomic 8-byte slots) without touching the policies.

The contract, which a shared-memory store must keep:

* values are floats (an 8-byte slot); integers are exact up to 2**53, which no counter here approaches;
* a key never written reads as ``0.0``, so every policy is written for "absent means zero";
* ``add`` and ``cas`` are atomic; ``get`` and ``set`` are single-slot reads and writes. Multi-key updates are
  not atomic, and the policies are written so that a race costs at most a few extra or missing requests in
  a transition, never a stuck state;
* the key space is bounded: keys are built from configured names (deployments, breakers, providers) and a
  fixed set of suffixes, so a fixed-size table can hold them;
* times stored as values are ``time.monotonic()`` seconds, which on Linux is one clock for every process on
  the machine (CLOCK_MONOTONIC), so a time written by one worker means the same in another.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

#: A CAS loop gives up after this many lost races; with a handful of workers it never gets close.
_CAS_ROUNDS = 64


class StateStore(Protocol):
    """Small shared numbers keyed by strings."""

    def get(self, key: str) -> float:
        """The value of ``key``; ``0.0`` when it was never written."""
        ...

    def set(self, key: str, value: float) -> None:
        """Overwrite ``key``."""
        ...

    def add(self, key: str, delta: float) -> float:
        """Atomically add ``delta`` to ``key`` and return the new value."""
        ...

    def cas(self, key: str, expected: float, new: float) -> bool:
        """Atomically set ``key`` to ``new`` if it still holds ``expected``; whether it did."""
        ...


class InProcessStore:
    """A :class:`StateStore` for one process: a dict.

    Worker processes run one event loop on one thread, and none of these operations awaits, so each is
    atomic with respect to the others without a lock.
    """

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[str, float] = {}

    def get(self, key: str) -> float:
        return self._values.get(key, 0.0)

    def set(self, key: str, value: float) -> None:
        self._values[key] = value

    def add(self, key: str, delta: float) -> float:
        value = self._values.get(key, 0.0) + delta
        self._values[key] = value
        return value

    def cas(self, key: str, expected: float, new: float) -> bool:
        if self._values.get(key, 0.0) != expected:
            return False
        self._values[key] = new
        return True


def update(store: StateStore, key: str, change: Callable[[float], float]) -> float:
    """Apply ``change`` to ``key`` atomically (a CAS loop) and return the value written.

    Used for read-modify-write updates ``add`` cannot express, such as moving an average. If the loop keeps
    losing (it never does with a few workers), the last computed value is written plainly: a slightly stale
    average is better than an unbounded loop on the request path.
    """
    new = 0.0
    for _ in range(_CAS_ROUNDS):
        old = store.get(key)
        new = change(old)
        if store.cas(key, old, new):
            return new
    store.set(key, new)
    return new


class RollingCounts:
    """Counts of a few named events over a sliding time window, kept in a :class:`StateStore`.

    The window is a ring of ``buckets`` time slices. Each slice stores its epoch (the slice number since
    time zero, plus one so that zero means "never used") and one counter per event. Writing into a slice
    that still holds an older epoch first claims it with a CAS on the epoch and zeroes its counters, so the
    ring needs no timer. Totals add up the slices whose epoch is among the last ``buckets``: the sum covers
    between ``window - window / buckets`` and ``window`` seconds.
    """

    __slots__ = ("_buckets", "_counter_keys", "_epoch_keys", "_fields", "_store", "_width")

    def __init__(
        self, store: StateStore, prefix: str, fields: Sequence[str], window: float, buckets: int = 10
    ) -> None:
        if window <= 0 or buckets < 1 or not fields:
            raise ValueError("a rolling window needs a positive length, one bucket and one field")
        self._store = store
        self._fields = tuple(fields)
        self._buckets = buckets
        self._width = window / buckets
        self._epoch_keys = tuple(f"{prefix}:{slot}:epoch" for slot in range(buckets))
        self._counter_keys = tuple(
            tuple(f"{prefix}:{slot}:{name}" for name in self._fields) for slot in range(buckets)
        )

    def add(self, field: int, now: float, n: float = 1.0) -> None:
        """Count ``n`` events of the ``field``-th kind at time ``now``."""
        epoch = math.floor(now / self._width)
        slot = epoch % self._buckets
        stamp = float(epoch + 1)
        epoch_key = self._epoch_keys[slot]
        held = self._store.get(epoch_key)
        if held < stamp and self._store.cas(epoch_key, held, stamp):
            for key in self._counter_keys[slot]:
                self._store.set(key, 0.0)
        self._store.add(self._counter_keys[slot][field], n)

    def totals(self, now: float) -> list[float]:
        """The count of each field over the window ending at ``now``, in field order."""
        newest = float(math.floor(now / self._width) + 1)
        sums = [0.0] * len(self._fields)
        for slot in range(self._buckets):
            stamp = self._store.get(self._epoch_keys[slot])
            if stamp <= 0 or newest - stamp >= self._buckets:
                continue
            for i, key in enumerate(self._counter_keys[slot]):
                sums[i] += self._store.get(key)
        return sums

    def clear(self) -> None:
        """Forget every count."""
        for slot in range(self._buckets):
            self._store.set(self._epoch_keys[slot], 0.0)
            for key in self._counter_keys[slot]:
                self._store.set(key, 0.0)
