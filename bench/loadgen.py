"""Our own asyncio HTTP/1.1 client for open-loop latency, time to first token and per-chunk timing.

wrk measures maximum throughput well but knows nothing about server-sent events, so latency at light load,
TTFT and the gaps between streamed chunks are measured here. The same client, with the same parsing work,
measures direct-to-mock and proxied traffic, so its own cost cancels out of every "proxy minus direct"
number.

Arrivals are open loop: request ``i`` is due at ``t0 + i / rate`` whatever happened to earlier ones, and a
request that finds no idle keep-alive connection opens a new one rather than waiting for one. Latency is
measured from the moment the request is written (uvloop's timers have millisecond resolution, so the due time
is up to a millisecond early); how late each send was against its due time is reported separately as
``send_lag``, which shows whether the client kept up.

Streamed responses are scanned as SSE: an event counts as content when it is an Anthropic
``content_block_delta`` or an OpenAI chunk whose delta carries text, reasoning or tool calls. Each event is
stamped with the arrival time of the network read that completed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

_ANTHROPIC_DELTA = b'"content_block_delta"'
_OPENAI_CONTENT_KEYS = ("content", "reasoning_content", "reasoning", "tool_calls")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One POST to send repeatedly: where it goes, its headers and its body."""

    host: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def encode(self) -> bytes:
        head = [
            f"POST {self.path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            f"content-length: {len(self.body)}",
        ]
        head += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


@dataclass(slots=True)
class Exchange:
    """The timing of one request/response, in ``time.perf_counter()`` seconds."""

    due: float
    sent: float = 0.0
    status: int = 0
    first_byte: float = 0.0
    end: float = 0.0
    #: arrival time of every content event of a streamed response, in order
    content: list[float] = field(default_factory=list)
    body_bytes: int = 0
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.end - self.sent

    @property
    def ttft(self) -> float | None:
        return self.content[0] - self.sent if self.content else None

    def gaps(self) -> list[float]:
        """Time between consecutive content events of this response."""
        return [later - earlier for earlier, later in zip(self.content, self.content[1:], strict=False)]


class ResponseError(Exception):
    """The server answered with something this client cannot use (bad framing, closed mid-response)."""


def is_content_event(event: bytes) -> bool:
    """Whether one SSE event carries generated content (Anthropic or OpenAI dialect)."""
    if _ANTHROPIC_DELTA in event:
        return True
    for line in event.splitlines():
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if not data.startswith(b"{"):
            return False
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices or not isinstance(choices[0], dict):
            return False
        delta = choices[0].get("delta") or {}
        return any(delta.get(key) for key in _OPENAI_CONTENT_KEYS)
    return False


class EventScanner:
    """Splits a streamed body into SSE events and stamps each content event with its arrival time."""

    def __init__(self, stamps: list[float]) -> None:
        self._stamps = stamps
        self._buffer = b""

    def feed(self, data: bytes, now: float) -> None:
        buffer = self._buffer + data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        *events, self._buffer = buffer.split(b"\n\n")
        for event in events:
            if is_content_event(event):
                self._stamps.append(now)


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it are sequential."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.reusable = True

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    def close(self) -> None:
        self.reusable = False
        self._writer.close()

    async def exchange(self, payload: bytes, record: Exchange, *, stream: bool) -> None:
        """Send ``payload`` (a whole encoded request) and read the response into ``record``."""
        record.sent = time.perf_counter()
        self._writer.write(payload)
        head = await self._reader.readuntil(b"\r\n\r\n")
        record.first_byte = time.perf_counter()
        status, headers = _parse_head(head)
        record.status = status
        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        scanner = EventScanner(record.content) if stream else None
        async for data in self._body(headers):
            record.body_bytes += len(data)
            if scanner is not None:
                scanner.feed(data, time.perf_counter())
        record.end = time.perf_counter()

    async def _body(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        reader = self._reader
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    return
                yield await reader.readexactly(size + 2)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length:
                yield await reader.readexactly(length)
        else:
            self.reusable = False
            while data := await reader.read(1 << 16):
                yield data


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ResponseError(f"bad status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class Pool:
    """Idle keep-alive connections to one server; a request that finds none opens a new one."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[Connection] = []
        self.opened = 0

    async def fill(self, count: int) -> None:
        for _ in range(count):
            self._idle.append(await Connection.open(self.host, self.port))
            self.opened += 1

    async def acquire(self) -> Connection:
        if self._idle:
            return self._idle.pop()
        self.opened += 1
        return await Connection.open(self.host, self.port)

    def release(self, conn: Connection) -> None:
        if conn.reusable:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


async def send(pool: Pool, payload: bytes, *, stream: bool, due: float, timeout: float = 30.0) -> Exchange:
    """One request on a pooled connection; a reused connection the server already closed is retried once."""
    record = Exchange(due=due)
    for attempt in range(2):
        conn = await pool.acquire()
        try:
            await asyncio.wait_for(conn.exchange(payload, record, stream=stream), timeout)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            conn.close()
            if attempt == 0 and record.status == 0:
                record = Exchange(due=due)
                continue
            record.error = type(exc).__name__
        except (TimeoutError, ResponseError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            record.error = f"{type(exc).__name__}: {exc}"
        else:
            pool.release(conn)
        break
    if record.error is None and record.status != 200:
        record.error = f"HTTP {record.status}"
    return record


@dataclass(slots=True)
class OpenLoopRun:
    """Everything one open-loop run measured."""

    offered_rate: float
    duration: float
    exchanges: list[Exchange]
    connections_opened: int

    @property
    def ok(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.error is None]

    @property
    def errors(self) -> int:
        return len(self.exchanges) - len(self.ok)

    @property
    def achieved_rate(self) -> float:
        done = self.ok
        if not done:
            return 0.0
        span = max(e.end for e in done) - min(e.due for e in self.exchanges)
        return len(done) / span if span > 0 else 0.0

    def error_kinds(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for e in self.exchanges:
            if e.error is not None:
                kinds[e.error] = kinds.get(e.error, 0) + 1
        return kinds


async def open_loop(
    request: HttpRequest,
    *,
    rate: float,
    duration: float,
    stream: bool,
    connections: int = 8,
    warmup: int = 20,
) -> OpenLoopRun:
    """Send ``request`` at a fixed ``rate`` per second for ``duration`` seconds and time every response.

    ``warmup`` requests go first, unrecorded and ``connections`` at a time (so every pooled connection has
    carried a request), which keeps connection set-up and first-request costs (imports, JIT, upstream
    pools) out of the numbers.
    """
    payload = request.encode()
    pool = Pool(request.host, request.port)
    await pool.fill(connections)
    for first in range(0, warmup, connections):
        batch = range(first, min(first + connections, warmup))
        await asyncio.gather(*(send(pool, payload, stream=stream, due=time.perf_counter()) for _ in batch))
    tasks: list[asyncio.Task[Exchange]] = []
    total = max(1, round(rate * duration))
    start = time.perf_counter() + 0.01
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(pool, payload, stream=stream, due=due)))
    exchanges = list(await asyncio.gather(*tasks))
    pool.close()
    return OpenLoopRun(rate, duration, exchanges, pool.opened)


async def back_to_back(
    request: HttpRequest, *, duration: float, stream: bool, warmup: int = 20
) -> OpenLoopRun:
    """Requests one after another on one connection for ``duration`` seconds.

    Not a load model: with no idle time between requests, no process on the path goes to sleep, so the
    latency is the path's own cost without the wake-up delays a light open-loop load pays on every hop.
    Read it next to the open-loop numbers, never instead of them.
    """
    payload = request.encode()
    pool = Pool(request.host, request.port)
    await pool.fill(1)
    for _ in range(warmup):
        await send(pool, payload, stream=stream, due=time.perf_counter())
    exchanges: list[Exchange] = []
    end = time.perf_counter() + duration
    while (now := time.perf_counter()) < end:
        exchanges.append(await send(pool, payload, stream=stream, due=now))
    pool.close()
    return OpenLoopRun(0.0, duration, exchanges, pool.opened)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


SUMMARY_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def summarize(values: Iterable[float], scale: float = 1e3) -> dict[str, float]:
    """count, min, mean, the usual percentiles and max of ``values`` times ``scale`` (default: ms)."""
    data = sorted(v * scale for v in values)
    if not data:
        return {"count": 0}
    out = {"count": float(len(data)), "min": data[0], "mean": sum(data) / len(data)}
    for q in SUMMARY_PERCENTILES:
        out[f"p{q:g}"] = percentile(data, q)
    out["max"] = data[-1]
    return out


#: percentiles kept of every open-loop run's latencies, for the latency CDF plots
CDF_POINTS = (*(float(q) for q in range(1, 100)), 99.5, 99.9)


def cdf(values: Iterable[float], scale: float = 1e3) -> list[list[float]]:
    """``[percentile, value * scale]`` at ``CDF_POINTS``: a latency distribution in a few hundred bytes."""
    data = sorted(v * scale for v in values)
    n = len(data)
    if not n:
        return []
    return [[q, data[min(max(1, math.ceil(q / 100 * n)), n) - 1]] for q in CDF_POINTS]


def summarize_run(run: OpenLoopRun) -> dict[str, Any]:
    """The JSON-ready numbers of one open-loop run (times in milliseconds)."""
    ok = run.ok
    ttfts = [t for e in ok if (t := e.ttft) is not None]
    gaps = [gap for e in ok for gap in e.gaps()]
    out: dict[str, Any] = {
        "offered_rate": run.offered_rate,
        "achieved_rate": run.achieved_rate,
        "requests": len(run.exchanges),
        "errors": run.errors,
        "error_kinds": run.error_kinds(),
        "connections_opened": run.connections_opened,
        "latency_ms": summarize(e.latency for e in ok),
        "latency_cdf_ms": cdf(e.latency for e in ok),
        "send_lag_ms": summarize(max(e.sent - e.due, 0.0) for e in run.exchanges if e.sent),
    }
    if ttfts:
        out["ttft_ms"] = summarize(ttfts)
        out["gap_ms"] = summarize(gaps)
        out["content_events"] = summarize((float(len(e.content)) for e in ok), scale=1)
    return out


async def fetch_once(request: HttpRequest, *, stream: bool, timeout: float = 30.0) -> tuple[Exchange, bytes]:
    """One request on a fresh connection, keeping the response body (for smoke checks)."""
    reader, writer = await asyncio.open_connection(request.host, request.port, limit=1 << 20)
    chunks: list[bytes] = []
    record = Exchange(due=time.perf_counter())
    conn = _RecordingConnection(reader, writer, chunks)
    try:
        await asyncio.wait_for(conn.exchange(request.encode(), record, stream=stream), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return record, b"".join(chunks)


class _RecordingConnection(Connection):
    """A connection that also keeps every body byte it reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sink: list[bytes]) -> None:
        super().__init__(reader, writer)
        self._sink = sink

    async def _body(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        async for data in super()._body(headers):
            self._sink.append(data)
            yield data
