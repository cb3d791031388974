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
import multiprocessing
import secrets
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from types import ModuleType
from typing import Any

import pytest

from ccr_fast import _speedups
from ccr_fast.state import atomic
from ccr_fast.state.segment import SHM_DIR, Layout, Segment
from ccr_fast.state.shared import SLOT_WORDS, SharedState

COMPILED = _speedups.compiled("shm_atomic")
IMPLS = [
    pytest.param(atomic, id="pure"),
    pytest.param(
        COMPILED,
        id="compiled",
        marks=pytest.mark.skipif(COMPILED is None, reason="ccr_fast._ext.shm_atomic is not built"),
    ),
]
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


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


@pytest.fixture
def new_state(impl: ModuleType) -> Iterator[Callable[..., SharedState]]:
    """``new_state(table_capacity=...)``: a fresh segment on ``impl`` with this process in a worker slot."""
    prefix = f"ccr-test-adm-{secrets.token_hex(4)}"
    made: list[SharedState] = []

    def make(table_capacity: int = 1024) -> SharedState:
        layout = Layout(table_capacity=table_capacity, slot_words=SLOT_WORDS)
        state = SharedState(Segment.create(layout, prefix=f"{prefix}{len(made)}", impl=impl))
        state.claim_worker_slot()
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()
        state.unlink()
    for path in SHM_DIR.glob(f"{prefix}*"):
        path.unlink(missing_ok=True)


@pytest.fixture
def state(new_state: Callable[..., SharedState]) -> SharedState:
    return new_state()


def attach(name: str, impl: ModuleType) -> SharedState:
    """In a forked child: the segment attached by name, as a worker does, and a worker slot of its own."""
    state = SharedState(Segment.attach(name, impl=impl))
    state.claim_worker_slot()
    return state


class Procs:
    """Processes forked by one test; any still running at the end are killed."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("fork")
        self._started: list[BaseProcess] = []

    def start(self, target: Callable[..., None], *args: Any) -> BaseProcess:
        process = self.ctx.Process(target=target, args=args, daemon=True)
        process.start()
        self._started.append(process)
        return process

    def run(self, target: Callable[..., None], arg_lists: list[tuple[Any, ...]]) -> None:
        """Start one process per argument tuple, all at once, and require each to exit cleanly."""
        processes = [self.start(target, *args) for args in arg_lists]
        for process in processes:
            process.join(timeout=60)
        assert [p.exitcode for p in processes] == [0] * len(processes)

    def kill_all(self) -> None:
        for process in self._started:
            if process.is_alive():
                process.kill()
            process.join()


@pytest.fixture
def procs() -> Iterator[Procs]:
    runner = Procs()
    yield runner
    runner.kill_all()
