"""Load for the memory phases: many streams held open at once, and a long steady mixed load (a soak).

Both take a ``sample`` callable that reads the memory of the systems under test (RSS and PSS of each
process tree, see :func:`bench.peers.memory`); it is called from inside the event loop between steps, so
it must be quick (reading ``/proc`` is).

**Open streams.** Streams are opened at ``ramp_rate`` per second, each on a connection of its own, in
steps (for instance 200, 400, ..., 1,000 open); after each step, once every stream of it has delivered its
first content event (or failed), memory is sampled. The upstream sends one chunk a second for ~100 s, so
every stream is still open when it is counted. The points (open streams, MB) give memory per open stream
as a fitted slope (:func:`bench.trend.per_thousand`). Then every stream is closed by the client, and memory
is sampled once more after the system had a few seconds to let go of them.

**Soak.** Requests at a fixed rate (open loop, as in :func:`bench.loadgen.open_loop`) cycling through a list
of requests (non-stream and stream), to several systems at once, for a given time; memory is sampled every
``interval`` seconds together with each interval's request count, errors and latency percentiles. Only
counts and per-interval latencies are kept, so a 30-minute soak needs little memory in the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import Connection, Exchange, HttpRequest, Pool, percentile, send

Sample = Callable[[], dict[str, Any]]


def step_counts(total: int, steps: int) -> list[int]:
    """Cumulative stream counts for ``steps`` equal steps up to ``total`` (fewer when ``total`` is small)."""
    if total <= 0:
        return []
    steps = max(1, min(steps, total))
    return sorted({round(total * (i + 1) / steps) for i in range(steps)})


async def _held_stream(request: HttpRequest, payload: bytes, record: Exchange) -> None:
    """One stream on its own connection, read until it ends or the task is cancelled."""
    try:
        conn = await Connection.open(request.host, request.port)
    except OSError as exc:
        record.error = f"connect: {type(exc).__name__}"
        return
    try:
        await conn.exchange(payload, record, stream=True)
        if record.status != 200:
            record.error = f"HTTP {record.status}"
    except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
        record.error = type(exc).__name__
    finally:
        conn.close()


@dataclass
class _Streams:
    request: HttpRequest
    payload: bytes
    records: list[Exchange] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def open(self) -> None:
        record = Exchange(due=time.perf_counter())
        self.records.append(record)
        self.tasks.append(asyncio.create_task(_held_stream(self.request, self.payload, record)))

    def settled(self) -> bool:
        """Every stream delivered content, failed or ended."""
        return all(
            r.content or r.error is not None or t.done()
            for r, t in zip(self.records, self.tasks, strict=True)
        )

    def live(self) -> int:
        """Streams that delivered content and are still open."""
        return sum(1 for r, t in zip(self.records, self.tasks, strict=True) if r.content and not t.done())

    def error_kinds(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for record, task in zip(self.records, self.tasks, strict=True):
            kind = record.error
            if kind is None and task.done() and not record.content:
                kind = "ended without content"
            if kind is not None:
                kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def hold_streams(
    request: HttpRequest,
    *,
    steps: Sequence[int],
    sample: Sample,
    ramp_rate: float = 200.0,
    open_timeout: float = 60.0,
    settle: float = 1.0,
    after: float = 3.0,
) -> dict[str, Any]:
    """Open streams up to each count in ``steps`` and sample memory at each; see the module docstring.

    A step whose streams have not all delivered content within ``open_timeout`` seconds is sampled as it
    is (its open count says how many made it) and ends the ramp.
    """
    streams = _Streams(request, request.encode())
    before = sample()
    points: list[dict[str, Any]] = [{"open": 0, "requested": 0, **before}]
    started = time.perf_counter()
    timed_out = False
    for target in steps:
        step_start = time.perf_counter()
        for index in range(target - len(streams.records)):
            delay = step_start + index / ramp_rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            streams.open()
        deadline = time.perf_counter() + open_timeout
        while not streams.settled():
            if time.perf_counter() > deadline:
                timed_out = True
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle)
        points.append({"open": streams.live(), "requested": target, **sample()})
        if timed_out:
            break
    open_seconds = time.perf_counter() - started
    ended_early = sum(1 for t in streams.tasks if t.done())
    await streams.close()
    await asyncio.sleep(after)
    return {
        "requested": len(streams.records),
        "opened": max(p["open"] for p in points),
        "ended_early": ended_early,
        "errors": sum(streams.error_kinds().values()),
        "error_kinds": streams.error_kinds(),
        "timed_out": timed_out,
        "open_seconds": open_seconds,
        "ramp_rate": ramp_rate,
        "before": before,
        "points": points,
        "after": sample(),
    }


# --------------------------------------------------------------------------- soak


@dataclass
class _Interval:
    """What one target did since the last sample."""

    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)

    def add(self, exchange: Exchange) -> None:
        self.requests += 1
        if exchange.error is not None:
            self.errors += 1
            self.error_kinds[exchange.error] = self.error_kinds.get(exchange.error, 0) + 1
        else:
            self.latencies_ms.append(exchange.latency * 1e3)

    def row(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
        }


async def _drive(
    pool: Pool,
    requests: Sequence[tuple[bytes, bool]],
    rate: float,
    duration: float,
    start: float,
    sink: Callable[[], _Interval],
    totals: _Interval,
) -> None:
    pending: set[asyncio.Task[Exchange]] = set()

    def done(task: asyncio.Task[Exchange]) -> None:
        pending.discard(task)
        if task.cancelled():
            return
        exchange = task.result()
        sink().add(exchange)
        totals.requests += 1
        if exchange.error is not None:
            totals.errors += 1
            totals.error_kinds[exchange.error] = totals.error_kinds.get(exchange.error, 0) + 1

    total = max(1, round(rate * duration))
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        payload, stream = requests[index % len(requests)]
        task = asyncio.create_task(send(pool, payload, stream=stream, due=due))
        pending.add(task)
        task.add_done_callback(done)
    if pending:
        await asyncio.wait(pending, timeout=60)
    for task in pending:
        task.cancel()
    pool.close()


async def soak(
    loads: Mapping[str, Sequence[tuple[HttpRequest, bool]]],
    *,
    rate: float,
    duration: float,
    interval: float,
    sample: Callable[[], dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    """``rate`` requests per second to each system in ``loads`` (its requests in turn, ``(request,
    stream)``) for ``duration`` seconds, all systems at once; memory sampled every ``interval`` seconds."""
    intervals = {key: _Interval() for key in loads}
    totals = {key: _Interval() for key in loads}
    start = time.perf_counter() + 0.05
    drivers = []
    for key, requests in loads.items():
        first = requests[0][0]
        pool = Pool(first.host, first.port)
        encoded = [(request.encode(), stream) for request, stream in requests]
        drivers.append(
            asyncio.create_task(
                _drive(
                    pool,
                    encoded,
                    rate,
                    duration,
                    start,
                    functools.partial(intervals.__getitem__, key),
                    totals[key],
                )
            )
        )
    rows: list[dict[str, Any]] = [{"t": 0.0, "memory": sample(), "load": {}}]
    next_at = start + interval
    while not all(d.done() for d in drivers):
        wait = max(0.0, next_at - time.perf_counter())
        await asyncio.wait(drivers, timeout=wait)
        now = time.perf_counter()
        if now >= next_at or all(d.done() for d in drivers):
            memory = sample()
            load = {key: intervals[key].row() for key in loads}
            for key in loads:
                intervals[key] = _Interval()
            rows.append({"t": now - start, "memory": memory, "load": load})
            next_at += interval
    for driver in drivers:
        with contextlib.suppress(asyncio.CancelledError):
            await driver
    return {
        "rate": rate,
        "duration": duration,
        "interval": interval,
        "samples": rows,
        "totals": {
            key: {"requests": t.requests, "errors": t.errors, "error_kinds": t.error_kinds}
            for key, t in totals.items()
        },
    }
