"""Fixtures for the admission tests: a clock moved by hand, shared state on both atomics twins, forking.

Every test that touches shared memory takes ``state`` (or ``new_state``, or ``impl`` directly), so it runs
against the pure twin and the compiled ``ccr_fast._ext.shm_atomic``; the compiled run is skipped, with the
reason shown, when it has not been built.  Multi-process tests fork real processes that attach the
segment by name, the way Granian's workers do.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from ccr_fast.state.shared import SharedState
from tests.state_fixtures import impl, make_states, prefix, procs, state

__all__ = ["START_NS", "FakeClock", "clock", "impl", "new_state", "prefix", "procs", "settle", "state"]

#: a fake CLOCK_MONOTONIC reading to start from, in nanoseconds
START_NS = 10**12


class FakeTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A ``Clock`` that only moves when told to; ``advance`` fires the timers due on the way, in order."""

    def __init__(self, start_ns: int = START_NS) -> None:
        self.now = start_ns
        self._timers: list[tuple[int, int, FakeTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now_ns(self) -> int:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer()
        heapq.heappush(self._timers, (self.now + round(delay * 1e9), next(self._seq), timer, callback))
        return timer

    @property
    def pending(self) -> int:
        return sum(1 for _, _, timer, _ in self._timers if not timer.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time forward, running each due timer at its own time and letting the loop react to it."""
        target = self.now + round(seconds * 1e9)
        await settle()
        while self._timers and self._timers[0][0] <= target:
            due, _, timer, callback = heapq.heappop(self._timers)
            if not timer.cancelled:
                self.now = max(self.now, due)
                callback()
                await settle()
        self.now = target
        await settle()


async def settle() -> None:
    """Let every task that can run, run (a woken waiter takes a few loop iterations to act)."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def new_state(impl: ModuleType, prefix: str) -> Iterator[Callable[..., SharedState]]:
    """``new_state(table_capacity=...)``: a fresh segment on ``impl`` with this process in a worker slot."""
    yield from make_states(impl, prefix, table_capacity=1024)
