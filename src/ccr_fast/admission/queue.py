"""Requests waiting for a provider slot: a priority queue in each worker, bounded across all of them.

Each worker keeps its waiters in asyncio, one lane per provider, ordered by priority level and then by
arrival.  Only the head of a lane asks for a slot: it tries, and when the provider is still at its limit it
sleeps exactly as long as the limiter says the slot needs to free up, then tries again; the others sleep
until they become the head or reach their deadline.  So a lane costs nothing while it waits, there is no
background task to start or stop, and every waiter is a coroutine of its own request: when the gateway
cancels that request (the client went away), the waiter leaves the lane and the count at once, and the next
one takes over the head if it was the head.  Across workers, lanes for the same provider compete for the
same shared limit; priority order holds within a worker, and a worker's head asks for the next slot the
moment the limiter says it is free, so the provider's capacity is spread over the workers' waiters.

The depth that ``maxSize`` bounds is shared through the key table: a total that every worker checks and
moves with one atomic add, and each worker's own share of it.  A worker that dies with requests waiting
(SIGKILL, OOM) would leave the total too high for good, so the worker that takes over its worker slot
subtracts the dead worker's share, recognising it by the pid stored beside it.  The total is always moved
first on the way in and last on the way out, so a worker killed between the two moves leaves the total too
high by one (a slot lost until restart), never too low.

Time comes from a ``Clock``: the real one is ``CLOCK_MONOTONIC`` (the clock the shared GCRA words use, the
same in every process) with the running loop's timers; tests pass one they move by hand.

A head's attempt is a plain function for limits in shared memory, or a coroutine function for limits kept
in Redis (``ccr_fast.admission.cluster``), where the lane waits on the bucket every machine shares.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from ccr_fast.state.table import KeyTable

__all__ = [
    "Attempt",
    "Clock",
    "MonotonicClock",
    "QueueDepth",
    "QueueFull",
    "QueueTimeout",
    "Timer",
    "WaitQueue",
]

_TOTAL_KEY: Final = "adm/queue"
#: word of the total's slot counting every request that ever entered the queue (after the depth word)
_ENTERED: Final = 8

#: ``attempt(now_ns)``: 0 when a slot was taken, else nanoseconds until one frees up (or an awaitable of it)
Attempt = Callable[[int], int | Awaitable[int]]
_SIGN: Final = 1 << 63
_WRAP: Final = 1 << 64


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic nanoseconds shared by every process, and timers on the running event loop."""

    def now_ns(self) -> int: ...
    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class MonotonicClock:
    """``CLOCK_MONOTONIC`` and the running loop's ``call_later`` (whose clock is also monotonic)."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


class QueueFull(Exception):
    """The queue already holds ``maxSize`` requests across the workers."""


class QueueTimeout(Exception):
    """A request waited its whole timeout without getting a slot."""

    def __init__(self, wait_ns: int) -> None:
        super().__init__("timed out waiting for a provider slot")
        #: how long the provider's limit still needed when the request gave up (0: unknown)
        self.wait_ns = wait_ns


def _signed(word: int) -> int:
    return word - _WRAP if word >= _SIGN else word


class QueueDepth:
    """Requests waiting in every worker: a shared total, and this worker's share in its worker slot.

    Beside the total sits a counter of every request that ever entered the queue (``entered``), for
    metrics: it only goes up, so it survives workers dying.
    """

    __slots__ = ("_atomics", "_mine", "_total")

    def __init__(self, table: KeyTable, worker_slot: int) -> None:
        atomics = table.atomics
        self._atomics = atomics
        self._total = table.slot(_TOTAL_KEY)
        self._mine = table.slot(f"{_TOTAL_KEY}/{worker_slot}")
        pid = os.getpid()
        owner = self._mine + 8
        if atomics.load(owner) != pid:
            # the slot's last owner is dead (or it was never used): its waiters are gone with it
            stale = _signed(atomics.load(self._mine))
            atomics.store(self._mine, 0)
            if stale:
                atomics.add(self._total, -stale)
            atomics.store(owner, pid)

    @property
    def value(self) -> int:
        return max(0, _signed(self._atomics.load(self._total)))

    @property
    def entered(self) -> int:
        """Requests that entered the queue in any worker since the server started."""
        return self._atomics.load(self._total + _ENTERED)

    def enter(self, max_size: int) -> bool:
        """Count one more waiter if fewer than ``max_size`` wait; False when the queue is full."""
        add = self._atomics.add
        if _signed(add(self._total, 1)) >= max_size:
            add(self._total, -1)
            return False
        add(self._mine, 1)
        add(self._total + _ENTERED, 1)
        return True

    def leave(self) -> None:
        add = self._atomics.add
        add(self._mine, -1)
        add(self._total, -1)


class _Waiter:
    __slots__ = ("alive", "deadline_ns", "rank", "seq", "wake")

    def __init__(self, rank: int, seq: int, deadline_ns: int) -> None:
        self.rank = rank
        self.seq = seq
        self.deadline_ns = deadline_ns
        self.alive = True
        self.wake: asyncio.Future[None] | None = None

    def __lt__(self, other: _Waiter) -> bool:
        return (self.rank, self.seq) < (other.rank, other.seq)


class _Lane:
    """The waiters for one provider in this worker.  Leavers are marked dead and dropped lazily."""

    __slots__ = ("heap", "live")

    def __init__(self) -> None:
        self.heap: list[_Waiter] = []
        self.live = 0

    def head(self) -> _Waiter | None:
        heap = self.heap
        while heap and not heap[0].alive:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def compact(self) -> None:
        if len(self.heap) > 2 * self.live + 16:
            self.heap = [w for w in self.heap if w.alive]
            heapq.heapify(self.heap)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class WaitQueue:
    """This worker's waiters, by provider lane; ``depth`` bounds them across workers."""

    __slots__ = ("_clock", "_depth", "_lanes", "_live", "_seq", "max_size")

    def __init__(self, depth: QueueDepth, clock: Clock, max_size: int) -> None:
        self._depth = depth
        self._clock = clock
        self.max_size = max_size
        self._lanes: dict[str, _Lane] = {}
        self._live = 0
        self._seq = itertools.count()

    def __len__(self) -> int:
        """Requests waiting in this worker."""
        return self._live

    @property
    def depth(self) -> int:
        """Requests waiting in every worker."""
        return self._depth.value

    @property
    def entered(self) -> int:
        """Requests that entered the queue in any worker since the server started."""
        return self._depth.entered

    def waiting(self, lane: str) -> int:
        """Requests waiting in this worker for ``lane``."""
        found = self._lanes.get(lane)
        return 0 if found is None else found.live

    def nudge(self, lane: str) -> None:
        """Capacity came back early (a token reservation was returned): the head of ``lane`` tries now."""
        found = self._lanes.get(lane)
        head = None if found is None else found.head()
        if head is not None and head.wake is not None:
            _resolve(head.wake)

    async def wait(self, lane: str, rank: int, timeout: float, attempt: Attempt) -> float:
        """Wait in ``lane`` at priority ``rank`` (0 = highest) until ``attempt`` gets a slot; return seconds.

        ``attempt(now_ns)`` tries to take a slot and returns 0 when it did, else the nanoseconds until one
        frees up (directly, or as an awaitable when the limit is in Redis).  Raises ``QueueFull`` without
        waiting when the queue is full, and ``QueueTimeout`` after ``timeout`` seconds.  Cancelling the
        caller removes the waiter at once.
        """
        if not self._depth.enter(self.max_size):
            raise QueueFull
        found = self._lanes.get(lane)
        if found is None:
            found = self._lanes[lane] = _Lane()
        start = self._clock.now_ns()
        waiter = _Waiter(rank, next(self._seq), start + round(timeout * 1e9))
        heapq.heappush(found.heap, waiter)
        found.live += 1
        self._live += 1
        try:
            await self._serve(found, waiter, attempt)
        finally:
            self._leave(lane, found, waiter)
        return (self._clock.now_ns() - start) / 1e9

    async def pause(self, seconds: float) -> None:
        """Sleep on the queue's clock (cancellable like any await)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self._clock.call_later(seconds, lambda: _resolve(future))
        try:
            await future
        finally:
            timer.cancel()

    async def _serve(self, lane: _Lane, waiter: _Waiter, attempt: Attempt) -> None:
        last_wait = 0
        while True:
            now = self._clock.now_ns()
            if lane.head() is waiter:
                found = attempt(now)
                if isinstance(found, int):
                    wait = found
                else:
                    wait = await found
                    now = self._clock.now_ns()
                if wait == 0:
                    return
                last_wait = wait
                sleep = min(wait, waiter.deadline_ns - now)
            else:
                sleep = waiter.deadline_ns - now
            if sleep <= 0:
                raise QueueTimeout(last_wait)
            await self._sleep(waiter, sleep)

    async def _sleep(self, waiter: _Waiter, ns: int) -> None:
        """Sleep ``ns``, or until woken because the waiter became the head of its lane."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter.wake = future
        timer = self._clock.call_later(ns / 1e9, lambda: _resolve(future))
        try:
            await future
        finally:
            timer.cancel()
            waiter.wake = None

    def _leave(self, name: str, lane: _Lane, waiter: _Waiter) -> None:
        was_head = lane.head() is waiter
        waiter.alive = False
        lane.live -= 1
        self._live -= 1
        self._depth.leave()
        if lane.live == 0:
            if self._lanes.get(name) is lane:
                del self._lanes[name]
            return
        lane.compact()
        if was_head:
            head = lane.head()
            if head is not None and head.wake is not None:
                _resolve(head.wake)
