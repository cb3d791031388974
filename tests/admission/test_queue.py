"""The wait queue: priority order, timeouts, cancellation, and a depth bounded across processes."""

from __future__ import annotations

import asyncio
import os
from types import ModuleType
from typing import Any

import pytest

from ccr_fast.admission.queue import QueueDepth, QueueFull, QueueTimeout, WaitQueue
from ccr_fast.state.shared import SharedState
from tests.state_fixtures import Procs, attach

from .conftest import START_NS, FakeClock, settle

SECOND = 10**9


class Gate:
    """A provider that frees one slot every ``interval`` seconds, first at ``START_NS + first``."""

    def __init__(self, clock: FakeClock, interval: float = 1.0, first: float = 1.0) -> None:
        self.clock = clock
        self.interval = round(interval * SECOND)
        self.next_free = START_NS + round(first * SECOND)
        self.attempts: list[int] = []

    def attempt(self, now: int) -> int:
        self.attempts.append(now)
        if now < self.next_free:
            return self.next_free - now
        self.next_free = now + self.interval
        return 0


@pytest.fixture
def queue(state: SharedState, clock: FakeClock) -> WaitQueue:
    return WaitQueue(QueueDepth(state.table, state.worker_slot), clock, max_size=100)


def _spawn(queue: WaitQueue, gate: Gate, rank: int, done: list[str], name: str, timeout: float = 60.0) -> Any:
    async def run() -> float:
        waited = await queue.wait("p", rank, timeout, gate.attempt)
        done.append(name)
        return waited

    return asyncio.ensure_future(run())


async def test_the_head_gets_the_slot_the_moment_it_frees(queue: WaitQueue, clock: FakeClock) -> None:
    gate = Gate(clock, first=1.5)
    task = _spawn(queue, gate, 1, [], "a")
    await settle()
    assert len(queue) == 1 and queue.depth == 1 and queue.waiting("p") == 1
    await clock.advance(1.4)
    assert not task.done()
    await clock.advance(0.1)
    assert task.done() and task.result() == 1.5
    assert gate.attempts == [START_NS, START_NS + 3 * SECOND // 2]  # no polling in between
    assert len(queue) == 0 and queue.depth == 0 and queue.waiting("p") == 0


async def test_priority_then_arrival_order(queue: WaitQueue, clock: FakeClock) -> None:
    gate = Gate(clock)
    done: list[str] = []
    for name, rank in [("low1", 2), ("normal1", 1), ("high", 0), ("normal2", 1), ("low2", 2)]:
        _spawn(queue, gate, rank, done, name)
    await settle()
    for served in range(1, 6):
        await clock.advance(1.0)
        assert len(done) == served
    assert done == ["high", "normal1", "normal2", "low1", "low2"]


async def test_a_higher_priority_newcomer_overtakes_a_sleeping_head(
    queue: WaitQueue, clock: FakeClock
) -> None:
    gate = Gate(clock, first=10.0)
    done: list[str] = []
    _spawn(queue, gate, 2, done, "low")
    await clock.advance(5.0)
    _spawn(queue, gate, 0, done, "high")
    await clock.advance(5.0)
    assert done == ["high"]
    await clock.advance(1.0)
    assert done == ["high", "low"]


async def test_lanes_do_not_block_each_other(queue: WaitQueue, clock: FakeClock) -> None:
    busy, free = Gate(clock, first=100.0), Gate(clock, first=0.0)
    stuck = asyncio.ensure_future(queue.wait("busy", 0, 60.0, busy.attempt))
    assert await queue.wait("free", 2, 60.0, free.attempt) == 0.0
    assert not stuck.done()
    stuck.cancel()
    await settle()


async def test_a_waiter_times_out_and_leaves(queue: WaitQueue, clock: FakeClock) -> None:
    gate = Gate(clock, first=100.0)
    head = _spawn(queue, gate, 0, [], "head", timeout=3.0)
    behind = _spawn(queue, gate, 1, [], "behind", timeout=2.0)
    await clock.advance(2.0)
    with pytest.raises(QueueTimeout) as caught:
        await behind
    assert caught.value.wait_ns == 0  # it never reached the head: the wait is unknown
    assert len(queue) == 1 and queue.depth == 1
    await clock.advance(1.0)
    with pytest.raises(QueueTimeout) as caught:
        await head
    assert caught.value.wait_ns == 97 * SECOND
    assert len(queue) == 0 and queue.depth == 0


async def test_cancelling_a_waiter_removes_it_at_once(queue: WaitQueue, clock: FakeClock) -> None:
    gate = Gate(clock, first=100.0)
    head = _spawn(queue, gate, 0, [], "head")
    behind = _spawn(queue, gate, 1, [], "behind")
    await settle()
    assert queue.depth == 2
    behind.cancel()
    await asyncio.sleep(0)  # the cancellation is delivered; the fake clock has not moved
    assert behind.cancelled()
    assert len(queue) == 1 and queue.depth == 1 and queue.waiting("p") == 1
    head.cancel()
    await asyncio.sleep(0)
    assert len(queue) == 0 and queue.depth == 0 and queue.waiting("p") == 0
    assert clock.pending == 0  # no timer left behind


async def test_cancelling_the_head_hands_over_at_once(queue: WaitQueue, clock: FakeClock) -> None:
    gate = Gate(clock, first=5.0)
    done: list[str] = []
    head = _spawn(queue, gate, 0, done, "head")
    _spawn(queue, gate, 1, done, "next")
    await clock.advance(5.0 - 1e-9)
    attempts = len(gate.attempts)
    head.cancel()
    await settle()
    assert len(gate.attempts) == attempts + 1  # the new head asked straight away, without waiting
    await clock.advance(1e-9)
    assert done == ["next"]


async def test_a_full_queue_refuses_without_waiting(state: SharedState, clock: FakeClock) -> None:
    queue = WaitQueue(QueueDepth(state.table, state.worker_slot), clock, max_size=2)
    gate = Gate(clock, first=100.0)
    waiting = [_spawn(queue, gate, 1, [], str(n)) for n in range(2)]
    await settle()
    with pytest.raises(QueueFull):
        await queue.wait("p", 0, 60.0, gate.attempt)
    assert queue.depth == 2
    for task in waiting:
        task.cancel()
    await settle()
    assert queue.depth == 0


async def test_cancelled_waiters_do_not_pile_up(queue: WaitQueue, clock: FakeClock) -> None:
    gate = Gate(clock, first=100.0)
    _spawn(queue, gate, 0, [], "head")
    for _ in range(10):
        batch = [_spawn(queue, gate, 1, [], "x") for _ in range(20)]
        await settle()
        for task in batch:
            task.cancel()
        await settle()
    assert len(queue._lanes["p"].heap) <= 2 * 1 + 16 + 20


async def test_pause_sleeps_on_the_clock(queue: WaitQueue, clock: FakeClock) -> None:
    task = asyncio.ensure_future(queue.pause(0.25))
    await clock.advance(0.2)
    assert not task.done()
    await clock.advance(0.05)
    assert task.done()
    cancelled = asyncio.ensure_future(queue.pause(10.0))
    await settle()
    cancelled.cancel()
    await settle()
    assert cancelled.cancelled() and clock.pending == 0


def test_depth_counts_and_bounds(state: SharedState) -> None:
    depth = QueueDepth(state.table, state.worker_slot)
    assert [depth.enter(3) for _ in range(4)] == [True, True, True, False]
    assert depth.value == 3
    depth.leave()
    assert depth.enter(3) and depth.value == 3


def test_a_second_depth_in_the_same_worker_keeps_the_count(state: SharedState) -> None:
    """A config reload builds a new controller while requests still wait in the old one."""
    first = QueueDepth(state.table, state.worker_slot)
    assert first.enter(10) and first.enter(10)
    second = QueueDepth(state.table, state.worker_slot)
    assert second.value == 2


def _enter_many(name: str, impl: ModuleType, attempts: int, all_in: Any, results: Any) -> None:
    state = attach(name, impl)
    all_in.wait()  # every worker is alive before any counts: a dead worker's waiters would not count
    depth = QueueDepth(state.table, state.worker_slot)
    results.put(sum(depth.enter(25) for _ in range(attempts)))
    all_in.wait()


@pytest.mark.parametrize("workers", [2, 4])
def test_max_size_holds_across_processes(
    state: SharedState, impl: ModuleType, procs: Procs, workers: int
) -> None:
    results = procs.ctx.SimpleQueue()
    all_in = procs.ctx.Barrier(workers)
    procs.run(_enter_many, [(state.segment.name, impl, 20, all_in, results)] * workers)
    assert sum(results.get() for _ in range(workers)) == 25
    assert QueueDepth(state.table, state.worker_slot).value == 25


def _wait_and_die(name: str, impl: ModuleType, results: Any) -> None:
    state = attach(name, impl)
    depth = QueueDepth(state.table, state.worker_slot)
    for _ in range(3):
        depth.enter(100)
    results.put((state.worker_slot, os.getpid()))
    os.kill(os.getpid(), 9)


def _take_over(name: str, impl: ModuleType, results: Any) -> None:
    state = attach(name, impl)
    QueueDepth(state.table, state.worker_slot)
    results.put(state.worker_slot)


def test_the_worker_taking_a_dead_workers_slot_drops_its_waiters(
    state: SharedState, impl: ModuleType, procs: Procs
) -> None:
    mine = QueueDepth(state.table, state.worker_slot)
    assert mine.enter(100)
    results = procs.ctx.SimpleQueue()
    victim = procs.start(_wait_and_die, state.segment.name, impl, results)
    victim.join()
    dead_slot, _ = results.get()
    assert mine.value == 4  # three waiters of a worker killed with SIGKILL, and ours
    procs.run(_take_over, [(state.segment.name, impl, results)])
    assert results.get() == dead_slot
    assert mine.value == 1


async def test_an_attempt_may_be_a_coroutine_and_every_entry_is_counted(
    queue: WaitQueue, clock: FakeClock
) -> None:
    """Limits in Redis answer asynchronously: the head awaits its attempt, then sleeps as told."""
    gate = Gate(clock, first=2.0)
    asked: list[int] = []

    async def remote(now: int) -> int:
        asked.append(now)
        await asyncio.sleep(0)  # a round trip
        return gate.attempt(clock.now_ns())

    tasks = [asyncio.ensure_future(queue.wait("p", 1, 60.0, remote)) for _ in range(2)]
    await settle()
    assert queue.depth == 2 and queue.entered == 2
    await clock.advance(2.0)
    assert tasks[0].done() and tasks[0].result() == 2.0 and not tasks[1].done()
    await clock.advance(1.0)
    assert tasks[1].done() and tasks[1].result() == 3.0
    assert asked == [START_NS, START_NS + 2 * SECOND, START_NS + 2 * SECOND, START_NS + 3 * SECOND]
    assert queue.depth == 0 and queue.entered == 2
