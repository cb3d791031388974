"""Request metrics that add up across workers: what the gateway records, and what the exporters read.

One ``Metrics`` per worker process, built after the worker attached the shared state::

    metrics = Metrics(state, pricing=config.get("Pricing"))

    timer = metrics.request_started(stream=True)   # +1 active requests (and streams) for this worker
    timer.upstream_wait(seconds)                   # each wait on the upstream: connect, headers, chunks
    timer.first_token()                            # the first content byte went to the client (TTFT)
    timer.finish(provider="openrouter", model="anthropic/claude-sonnet-4", scenario="default",
                 status=200, input_tokens=1200, output_tokens=300, session=session_id)
    # timer.close() (or leaving ``with timer:``) ends a request that has nothing worth recording;
    # both are idempotent, so a ``finally: timer.close()`` after ``finish`` is safe

    metrics.rate_limited("rpm")                    # a request refused by a rate limit, by scope
    metrics.key_used("ci-bot")                     # a request authenticated with the API key "ci-bot"
    metrics.watch_queue(admission.queue_counts)    # the admission queue: (waiting now, ever queued)
    metrics.queue_depth(+1) ... metrics.queue_depth(-1)   # a queue of the caller's own, per worker

    GET /metrics                -> metrics.prometheus()   (serve with prometheus.CONTENT_TYPE)
    GET /api/metrics/realtime   -> metrics.realtime()
    GET /api/metrics/providers  -> metrics.providers()    (a list, as the seed fork's dashboard expects)
    GET /api/metrics/sessions   -> metrics.sessions()     (a list, busiest first)
    GET /api/metrics/summary    -> metrics.summary()
    GET /api/metrics/stream     -> metrics.stream()       (text/event-stream frames of realtime())

``record(...)`` is what ``finish`` calls, for callers that time requests themselves.  The master calls
``reap_dead_workers()`` when it sees a worker exit; scrapes do the same on their own.

Where everything lives (all in the server's shared-memory segment, so every worker sees every update):

* Series (``observe.names``): one per ``(provider, model)`` route with latency, TTFT and overhead
  histograms (fixed buckets, stored per bucket and made cumulative on export; sums as integer
  microseconds), token counters and cost in micro-USD; one counter each per response status, error type,
  scenario and rate-limit scope.
* Per-second counters for the last minute (``state.window``): requests, errors, tokens, latency.
* Per-worker gauges (``state.gauges``): active requests, active streams, queue depth, dropped when their
  worker dies.
* Sessions (``state.recent``): a bounded table of sessions active within ``session_window_s``.

Hot path: ``record`` is dict lookups on tuples this process has seen before (the offsets of a label
set's words are cached per process, since table slots never move) and about twenty atomic adds; no locks
and no string formatting.  A new label set costs a registration once per
process.  Metrics never fail a request: a series that cannot be registered (``max_series`` reached, key
table full) is dropped and counted in ``ccr_metrics_series_dropped_total``.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from types import TracebackType
from typing import Any, Final, NamedTuple

from ccr_fast.observe import metrics_api, prometheus
from ccr_fast.observe.names import KEY_PREFIX, SeriesRegistry
from ccr_fast.protocol.errors import error_type_for_status
from ccr_fast.state.blocks import claim_block
from ccr_fast.state.gauges import WorkerGauges
from ccr_fast.state.recent import RecentTable
from ccr_fast.state.shared import SharedState
from ccr_fast.state.window import RollingCounters

__all__ = [
    "BUILTIN_PRICES",
    "LATENCY_BUCKETS_MS",
    "OVERHEAD_BUCKETS_US",
    "ErrorCount",
    "Histogram",
    "Metrics",
    "Price",
    "Pricing",
    "RequestTimer",
    "RouteStats",
    "SessionStats",
    "Snapshot",
    "StatusCount",
    "WindowStats",
]

#: upper bounds of the latency and TTFT buckets (ms); a +Inf bucket follows
LATENCY_BUCKETS_MS: Final = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
#: upper bounds of the gateway-overhead buckets (µs: total time minus time waiting on the upstream)
OVERHEAD_BUCKETS_US: Final = (50, 100, 250, 500, 1000, 2500, 5000, 10000)
_LATENCY_BOUNDS_US: Final = tuple(bound * 1000 for bound in LATENCY_BUCKETS_MS)

# words of a route series
_LAT: Final = 0
_LAT_SUM: Final = _LAT + len(LATENCY_BUCKETS_MS) + 1
_TTFT: Final = _LAT_SUM + 1
_TTFT_SUM: Final = _TTFT + len(LATENCY_BUCKETS_MS) + 1
_OVH: Final = _TTFT_SUM + 1
_OVH_SUM: Final = _OVH + len(OVERHEAD_BUCKETS_US) + 1
_INPUT: Final = _OVH_SUM + 1
_OUTPUT: Final = _INPUT + 1
_CACHE_READ: Final = _OUTPUT + 1
_CACHE_WRITE: Final = _CACHE_READ + 1
_COST: Final = _CACHE_WRITE + 1
_STREAMS: Final = _COST + 1
_ROUTE_WORDS: Final = _STREAMS + 1

# series kinds: the first label of every label set
_ROUTE: Final = "route"
_STATUS: Final = "status"
_ERROR: Final = "error"
_SCENARIO: Final = "scenario"
_RATE_LIMITED: Final = "rate_limited"
_API_KEY: Final = "api_key"
_NO_COUNTS: Final[Mapping[str, int]] = {}

# per-second fields, gauges, and the words of the info block
_WINDOW_FIELDS: Final = ("requests", "errors", "input_tokens", "output_tokens", "latency_us")
_G_ACTIVE, _G_STREAMS, _G_QUEUE = range(3)
_I_STARTED, _I_REQUESTS = range(2)
_MINUTE_S: Final = 60
_RECENT_S: Final = 10

_monotonic = time.monotonic
_time = time.time
_perf_ns = time.perf_counter_ns


# --- pricing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; cache prices default to the input price when a table leaves them out."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def micro_usd(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> int:
        """The cost of one request in micro-USD (USD per million tokens is micro-USD per token)."""
        return round(
            input_tokens * self.input
            + output_tokens * self.output
            + cache_read * self.cache_read
            + cache_write * self.cache_write
        )


#: list prices of well-known models (USD per million tokens) as their providers published them in 2025;
#: keys are normalised model names (see ``Pricing``); configuration overrides any of them
BUILTIN_PRICES: Final[Mapping[str, Price]] = {
    "claude-opus-4": Price(15.0, 75.0, 1.5, 18.75),
    "claude-opus-4-1": Price(15.0, 75.0, 1.5, 18.75),
    "claude-sonnet-4": Price(3.0, 15.0, 0.3, 3.75),
    "claude-3-7-sonnet": Price(3.0, 15.0, 0.3, 3.75),
    "claude-3-5-sonnet": Price(3.0, 15.0, 0.3, 3.75),
    "claude-3-5-haiku": Price(0.8, 4.0, 0.08, 1.0),
    "claude-3-haiku": Price(0.25, 1.25, 0.03, 0.3),
    "gpt-4o": Price(2.5, 10.0, 1.25, 2.5),
    "gpt-4o-mini": Price(0.15, 0.6, 0.075, 0.15),
    "gpt-4.1": Price(2.0, 8.0, 0.5, 2.0),
    "gpt-4.1-mini": Price(0.4, 1.6, 0.1, 0.4),
    "o3-mini": Price(1.1, 4.4, 0.55, 1.1),
    "deepseek-chat": Price(0.27, 1.1, 0.07, 0.27),
    "deepseek-reasoner": Price(0.55, 2.19, 0.14, 0.55),
    "gemini-2.5-pro": Price(1.25, 10.0, 0.31, 1.25),
    "gemini-2.5-flash": Price(0.3, 2.5, 0.075, 0.3),
    "gemini-2.0-flash": Price(0.1, 0.4, 0.025, 0.1),
    "llama-3.3-70b-versatile": Price(0.59, 0.79, 0.59, 0.59),
}

_DATED: Final = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)$")
_PRICE_FIELDS: Final = ("input", "output", "cache_read", "cache_write")


def _normalise_model(model: str) -> str:
    """``anthropic/claude-sonnet-4-20250514`` -> ``claude-sonnet-4``: vendor prefix and date dropped."""
    return _DATED.sub("", model.rsplit("/", 1)[-1].lower())


class Pricing:
    """Price lookup: configuration first (``"provider,model"``, then ``"model"``), then the built-ins.

    ``overrides`` is the config's ``Pricing`` object: ``{"openrouter,anthropic/claude-sonnet-4":
    {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}}`` (USD per million tokens; the
    cache prices are optional).  A model with no price is recorded without cost and shown as unpriced.
    """

    __slots__ = ("_by_model", "_exact")

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._exact: dict[tuple[str, str], Price] = {}
        self._by_model: dict[str, Price] = {}
        for key, value in (overrides or {}).items():
            price = _parse_price(key, value)
            provider, sep, model = key.partition(",")
            if sep:
                self._exact[(provider.strip(), model.strip())] = price
            else:
                self._by_model[key.strip()] = price

    def lookup(self, provider: str, model: str) -> Price | None:
        return (
            self._exact.get((provider, model))
            or self._by_model.get(model)
            or BUILTIN_PRICES.get(_normalise_model(model))
        )


def _parse_price(key: str, value: object) -> Price:
    if not isinstance(value, Mapping):
        raise ValueError(f"Pricing[{key!r}] must be an object like {{'input': 3, 'output': 15}}")
    unknown = set(value) - set(_PRICE_FIELDS)
    if unknown:
        raise ValueError(f"Pricing[{key!r}] has unknown fields {sorted(unknown)}; known: {_PRICE_FIELDS}")
    numbers: dict[str, float] = {}
    for field in _PRICE_FIELDS:
        raw = value.get(field, value.get("input") if field.startswith("cache") else None)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw < float("inf"):
            raise ValueError(f"Pricing[{key!r}].{field} must be a non-negative number (USD per 1M tokens)")
        numbers[field] = float(raw)
    return Price(**numbers)


# --- snapshots: what the exporters read ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Histogram:
    """Fixed-bucket histogram: ``counts[i]`` observations fell in bucket ``i`` (the last one is +Inf)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    #: sum of the observations, in the unit of ``bounds``
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[int]:
        """Observations <= each bound, then the count (the Prometheus ``_bucket`` series)."""
        running = 0
        out: list[int] = []
        for value in self.counts:
            running += value
            out.append(running)
        return out

    def mean(self) -> float:
        count = self.count
        return self.total / count if count else 0.0

    def quantile(self, q: float) -> float:
        """Estimate like PromQL's ``histogram_quantile``: linear within the bucket, the top bound for +Inf."""
        count = self.count
        if not count:
            return 0.0
        rank = q * count
        below = 0
        for index, value in enumerate(self.counts):
            if value and below + value >= rank:
                if index == len(self.bounds):
                    return float(self.bounds[-1])
                low = float(self.bounds[index - 1]) if index else 0.0
                return low + (self.bounds[index] - low) * (rank - below) / value
            below += value
        return float(self.bounds[-1])

    def __add__(self, other: Histogram) -> Histogram:
        if other.bounds != self.bounds:
            raise ValueError("cannot add histograms with different buckets")
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return Histogram(self.bounds, counts, self.total + other.total)


@dataclass(frozen=True, slots=True)
class RouteStats:
    """Everything recorded for one ``(provider, model)``."""

    provider: str
    model: str
    latency_ms: Histogram
    ttft_ms: Histogram
    overhead_us: Histogram
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    stream_requests: int
    errors: int
    priced: bool

    @property
    def requests(self) -> int:
        return self.latency_ms.count


@dataclass(frozen=True, slots=True, order=True)
class StatusCount:
    provider: str
    model: str
    status: int
    count: int


@dataclass(frozen=True, slots=True, order=True)
class ErrorCount:
    provider: str
    model: str
    type: str
    count: int


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Totals over the last ``seconds`` seconds (the current, partial second included)."""

    seconds: int
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    latency_us: int


@dataclass(frozen=True, slots=True)
class SessionStats:
    session: str
    first_ms: int
    last_ms: int
    requests: int
    input_tokens: int
    output_tokens: int
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The metrics of every worker at one moment (each word read once; words are not read atomically
    together, so a request recorded during the read may be half in it)."""

    taken_ms: int
    started_ms: int
    requests: int
    routes: tuple[RouteStats, ...]
    statuses: tuple[StatusCount, ...]
    errors: tuple[ErrorCount, ...]
    scenarios: Mapping[str, int]
    rate_limited: Mapping[str, int]
    active_requests: int
    active_streams: int
    queue_depth: int
    minute: WindowStats
    recent: WindowStats
    #: sessions active within the session window, most requests first
    sessions: tuple[SessionStats, ...]
    series_dropped: int
    table_full: int
    #: requests that ever waited in the admission queue (every worker, since the server started)
    queued_total: int = 0
    #: requests authenticated per API key name
    api_keys: Mapping[str, int] = dataclass_field(default_factory=lambda: _NO_COUNTS)

    def latency_ms(self) -> Histogram:
        """Latency over every route."""
        return _merged((route.latency_ms for route in self.routes), LATENCY_BUCKETS_MS)


def _merged(histograms: Iterable[Histogram], bounds: tuple[int, ...]) -> Histogram:
    total = Histogram(tuple(map(float, bounds)), (0,) * (len(bounds) + 1), 0.0)
    for histogram in histograms:
        total = total + histogram
    return total


# --- recording ----------------------------------------------------------------------------------------------


class _Route(NamedTuple):
    id: int
    offsets: tuple[int, ...]
    price: Price | None


_NO_ROUTE: Final = _Route(-1, (), None)


class RequestTimer:
    """One request in flight: keeps the gauges up until closed and measures what ``record`` needs."""

    __slots__ = ("_metrics", "_open", "_start_ns", "_stream", "_ttft_ns", "_wait_s")

    def __init__(self, metrics: Metrics, stream: bool) -> None:
        self._metrics = metrics
        self._stream = stream
        self._open = True
        self._ttft_ns = -1
        self._wait_s = 0.0
        self._start_ns = _perf_ns()

    def first_token(self) -> None:
        """The first content reached the client; only the first call counts."""
        if self._ttft_ns < 0:
            self._ttft_ns = _perf_ns() - self._start_ns

    def upstream_wait(self, seconds: float) -> None:
        """Add time spent waiting on the upstream (it is not the gateway's own overhead)."""
        self._wait_s += seconds

    def finish(
        self,
        *,
        provider: str,
        model: str,
        scenario: str,
        status: int,
        error_type: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read: int = 0,
        cache_write: int = 0,
        session: str | None = None,
    ) -> None:
        """Record the request with the times measured here, then ``close``; later calls do nothing."""
        if not self._open:
            return
        self._metrics.record(
            provider=provider,
            model=model,
            scenario=scenario,
            status=status,
            error_type=error_type,
            stream=self._stream,
            latency_s=(_perf_ns() - self._start_ns) / 1e9,
            ttft_s=self._ttft_ns / 1e9 if self._ttft_ns >= 0 else None,
            upstream_wait_s=self._wait_s,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read=cache_read,
            cache_write=cache_write,
            session=session,
        )
        self.close()

    def close(self) -> None:
        """Take the request off the active gauges (idempotent)."""
        if self._open:
            self._open = False
            self._metrics._request_ended(self._stream)

    def __enter__(self) -> RequestTimer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Metrics:
    """The metrics of one server, recorded from and read by this worker process."""

    def __init__(
        self,
        state: SharedState,
        *,
        pricing: Mapping[str, Mapping[str, Any]] | Pricing | None = None,
        max_series: int = 1024,
        session_capacity: int = 256,
        session_window_s: float = 300.0,
    ) -> None:
        """Attach to the metrics in ``state``'s segment (creating their fixed blocks, about 110 key-table
        slots, if this is the first process); raises ``TableFull`` when the table cannot hold them.

        Build it in the worker, after ``SharedState.attach``: the per-worker gauges belong to the process
        that first counts with them.  ``pricing`` is the config's ``Pricing`` object (see ``Pricing``).
        """
        self._state = state
        table = state.table
        self._atomics = table.atomics
        self._add = table.atomics.add
        self._pricing = pricing if isinstance(pricing, Pricing) else Pricing(pricing)
        self._registry = SeriesRegistry(table, max_series=max_series)
        self._window = RollingCounters(table, KEY_PREFIX + b"window", len(_WINDOW_FIELDS))
        self._gauges = WorkerGauges(table, KEY_PREFIX + b"gauges", 3)
        self._sessions = RecentTable(table, KEY_PREFIX + b"sessions", capacity=session_capacity)
        self._session_window_ms = int(session_window_s * 1000)
        self._info = claim_block(table, KEY_PREFIX + b"info", 2)
        self._atomics.cas(self._info[_I_STARTED], 0, int(_time() * 1000))
        #: per-process caches of label set -> where its words are (bounded: cleared when they outgrow it)
        self._cache_limit = 4 * max_series
        self._routes: dict[tuple[str, str], _Route] = {}
        self._counters: dict[tuple[str | int, ...], int] = {}
        self._queue_source: Callable[[], tuple[int, int]] | None = None

    # -- recording (hot path) --

    def request_started(self, *, stream: bool = False) -> RequestTimer:
        """A request arrived: counted as active (and as an open stream) until its timer closes."""
        gauges = self._gauges
        if not gauges.bound:
            self._bind_gauges()
        gauges.add(_G_ACTIVE, 1)
        if stream:
            gauges.add(_G_STREAMS, 1)
        return RequestTimer(self, stream)

    def _request_ended(self, stream: bool) -> None:
        self._gauges.add(_G_ACTIVE, -1)
        if stream:
            self._gauges.add(_G_STREAMS, -1)

    def record(
        self,
        *,
        provider: str,
        model: str,
        scenario: str,
        status: int,
        error_type: str | None,
        stream: bool,
        latency_s: float,
        ttft_s: float | None,
        upstream_wait_s: float,
        input_tokens: int,
        output_tokens: int,
        cache_read: int,
        cache_write: int,
        session: str | None,
    ) -> None:
        """Count one finished request.  ``provider``/``model`` are the upstream it went to ("" when it was
        refused before routing); a request failed when ``error_type`` is set (also mid-stream errors of a
        200 response) or ``status`` >= 400.  Token counts use Anthropic's meaning: ``input_tokens``
        excludes the cached ones."""
        add = self._add
        now_s = int(_monotonic())
        latency_us = round(latency_s * 1e6) if latency_s > 0 else 0
        input_tokens = input_tokens if input_tokens > 0 else 0
        output_tokens = output_tokens if output_tokens > 0 else 0
        failed = error_type is not None or status >= 400
        add(self._info[_I_REQUESTS], 1)
        route = self._routes.get((provider, model)) or self._route(provider, model)
        offsets = route.offsets
        if offsets:
            add(offsets[_LAT + bisect_left(_LATENCY_BOUNDS_US, latency_us)], 1)
            add(offsets[_LAT_SUM], latency_us)
            if ttft_s is not None:
                ttft_us = round(ttft_s * 1e6) if ttft_s > 0 else 0
                add(offsets[_TTFT + bisect_left(_LATENCY_BOUNDS_US, ttft_us)], 1)
                add(offsets[_TTFT_SUM], ttft_us)
            overhead_us = latency_us - round(upstream_wait_s * 1e6)
            if overhead_us < 0:
                overhead_us = 0
            add(offsets[_OVH + bisect_left(OVERHEAD_BUCKETS_US, overhead_us)], 1)
            add(offsets[_OVH_SUM], overhead_us)
            cache_read = cache_read if cache_read > 0 else 0
            cache_write = cache_write if cache_write > 0 else 0
            if input_tokens:
                add(offsets[_INPUT], input_tokens)
            if output_tokens:
                add(offsets[_OUTPUT], output_tokens)
            if cache_read:
                add(offsets[_CACHE_READ], cache_read)
            if cache_write:
                add(offsets[_CACHE_WRITE], cache_write)
            if route.price is not None:
                cost = route.price.micro_usd(input_tokens, output_tokens, cache_read, cache_write)
                if cost:
                    add(offsets[_COST], cost)
            if stream:
                add(offsets[_STREAMS], 1)
        self._bump((_STATUS, provider, model, status))
        if failed:
            self._bump((_ERROR, provider, model, error_type or error_type_for_status(status)))
        if scenario:
            self._bump((_SCENARIO, scenario))
        # the order of _WINDOW_FIELDS
        self._window.add_row((1, 1 if failed else 0, input_tokens, output_tokens, latency_us), now_s)
        if session:
            self._sessions.touch(
                session,
                (1, input_tokens, output_tokens),
                route.id + 1,
                int(_time() * 1000),
                self._session_window_ms,
            )

    def rate_limited(self, scope: str) -> None:
        """A request was refused by the rate limit ``scope`` (e.g. ``"rpm"``, ``"tpm"``, ``"global"``)."""
        self._bump((_RATE_LIMITED, scope))

    def key_used(self, name: str) -> None:
        """A request was authenticated with the API key called ``name``."""
        self._bump((_API_KEY, name))

    def watch_queue(self, source: Callable[[], tuple[int, int]] | None) -> None:
        """Read the admission queue from ``source()``: (requests waiting now, requests that ever waited),
        both across workers; it adds to what ``queue_depth`` counted."""
        self._queue_source = source

    def queue_depth(self, delta: int) -> None:
        """Requests entering (+1) or leaving (-1) this worker's admission queue."""
        if not self._gauges.bound:
            self._bind_gauges()
        self._gauges.add(_G_QUEUE, delta)

    def priced(self, provider: str, model: str) -> bool:
        """Whether requests to ``provider``/``model`` have a price (and so a cost)."""
        return self._pricing.lookup(provider, model) is not None

    def set_pricing(self, pricing: Mapping[str, Mapping[str, Any]] | Pricing | None) -> None:
        """New prices (config reload); they apply to requests recorded from now on."""
        self._pricing = pricing if isinstance(pricing, Pricing) else Pricing(pricing)
        self._routes.clear()

    def reap_dead_workers(self) -> int:
        """Zero the gauges of workers that died; returns the number of gauge words zeroed."""
        return self._gauges.reap(self._state.worker_slots())

    def _bind_gauges(self) -> None:
        slot = self._state.worker_slot
        self._gauges.bind(slot if slot >= 0 else self._state.claim_worker_slot())

    def _route(self, provider: str, model: str) -> _Route:
        series = self._registry.register((_ROUTE, provider, model), _ROUTE_WORDS)
        route = _NO_ROUTE
        if series is not None:
            route = _Route(series.id, series.offsets, self._pricing.lookup(provider, model))
        if len(self._routes) >= self._cache_limit:
            self._routes.clear()
        self._routes[(provider, model)] = route
        return route

    def _bump(self, key: tuple[str | int, ...]) -> None:
        offset = self._counters.get(key)
        if offset is None:
            series = self._registry.register(tuple(str(part) for part in key), 1)
            offset = -1 if series is None else series.offsets[0]
            if len(self._counters) >= self._cache_limit:
                self._counters.clear()
            self._counters[key] = offset
        if offset >= 0:
            self._add(offset, 1)

    # -- reading --

    def snapshot(self) -> Snapshot:
        """Every worker's metrics, read now (dead workers' gauges are zeroed on the way)."""
        load = self._atomics.load
        now_ms = int(_time() * 1000)
        now_s = int(_monotonic())
        route_words: dict[tuple[str, str], list[int]] = {}
        names: dict[int, tuple[str, str]] = {}
        statuses: list[StatusCount] = []
        errors: list[ErrorCount] = []
        scenarios: dict[str, int] = {}
        limited: dict[str, int] = {}
        keys: dict[str, int] = {}
        for series in self._registry.series():
            kind, labels, offsets = series.labels[0], series.labels[1:], series.offsets
            if kind == _ROUTE and len(labels) == 2 and len(offsets) == _ROUTE_WORDS:
                route_words[(labels[0], labels[1])] = [load(offset) for offset in offsets]
                names[series.id] = (labels[0], labels[1])
            elif len(offsets) == 1:
                value = load(offsets[0])
                if kind == _STATUS and len(labels) == 3 and labels[2].isdigit():
                    statuses.append(StatusCount(labels[0], labels[1], int(labels[2]), value))
                elif kind == _ERROR and len(labels) == 3:
                    errors.append(ErrorCount(labels[0], labels[1], labels[2], value))
                elif kind == _SCENARIO and len(labels) == 1:
                    scenarios[labels[0]] = value
                elif kind == _RATE_LIMITED and len(labels) == 1:
                    limited[labels[0]] = value
                elif kind == _API_KEY and len(labels) == 1:
                    keys[labels[0]] = value
        failed: dict[tuple[str, str], int] = {}
        for error in errors:
            failed[(error.provider, error.model)] = failed.get((error.provider, error.model), 0) + error.count
        routes = tuple(
            self._route_stats(provider, model, words, failed.get((provider, model), 0))
            for (provider, model), words in sorted(route_words.items())
        )
        active, streams, queued = self._gauges.totals(self._state.worker_slots())
        queued = max(queued, 0)
        queued_total = 0
        if self._queue_source is not None:
            waiting, queued_total = self._queue_source()
            queued += waiting
        minute, recent = self._window.sums_many((_MINUTE_S, _RECENT_S), now_s)
        return Snapshot(
            taken_ms=now_ms,
            started_ms=load(self._info[_I_STARTED]),
            requests=load(self._info[_I_REQUESTS]),
            routes=routes,
            statuses=tuple(sorted(statuses)),
            errors=tuple(sorted(errors)),
            scenarios=dict(sorted(scenarios.items())),
            rate_limited=dict(sorted(limited.items())),
            active_requests=max(active, 0),
            active_streams=max(streams, 0),
            queue_depth=queued,
            minute=WindowStats(_MINUTE_S, **dict(zip(_WINDOW_FIELDS, minute, strict=True))),
            recent=WindowStats(_RECENT_S, **dict(zip(_WINDOW_FIELDS, recent, strict=True))),
            sessions=self._session_stats(names, now_ms),
            series_dropped=self._registry.dropped,
            table_full=self._state.table.full_count,
            queued_total=queued_total,
            api_keys=dict(sorted(keys.items())),
        )

    def _session_stats(self, routes: Mapping[int, tuple[str, str]], now_ms: int) -> tuple[SessionStats, ...]:
        stats: list[SessionStats] = []
        for entry in self._sessions.entries(now_ms, self._session_window_ms):
            requests, input_tokens, output_tokens = entry.counters
            provider, model = routes.get(entry.note - 1, ("", ""))
            stats.append(
                SessionStats(
                    entry.name,
                    entry.first_ms,
                    entry.last_ms,
                    requests,
                    input_tokens,
                    output_tokens,
                    provider,
                    model,
                )
            )
        stats.sort(key=lambda s: (-s.requests, -s.last_ms, s.session))
        return tuple(stats)

    def _route_stats(self, provider: str, model: str, words: list[int], errors: int) -> RouteStats:
        latency_bounds = tuple(map(float, LATENCY_BUCKETS_MS))
        return RouteStats(
            provider=provider,
            model=model,
            latency_ms=Histogram(latency_bounds, tuple(words[_LAT:_LAT_SUM]), words[_LAT_SUM] / 1000),
            ttft_ms=Histogram(latency_bounds, tuple(words[_TTFT:_TTFT_SUM]), words[_TTFT_SUM] / 1000),
            overhead_us=Histogram(
                tuple(map(float, OVERHEAD_BUCKETS_US)), tuple(words[_OVH:_OVH_SUM]), float(words[_OVH_SUM])
            ),
            input_tokens=words[_INPUT],
            output_tokens=words[_OUTPUT],
            cache_read_tokens=words[_CACHE_READ],
            cache_write_tokens=words[_CACHE_WRITE],
            cost_usd=words[_COST] / 1e6,
            stream_requests=words[_STREAMS],
            errors=errors,
            priced=self._pricing.lookup(provider, model) is not None,
        )

    def prometheus(self) -> bytes:
        """The text exposition (format 0.0.4) of every worker's metrics."""
        return prometheus.render(self.snapshot())

    def realtime(self) -> dict[str, Any]:
        """``/api/metrics/realtime`` (``metrics_api.realtime``)."""
        return metrics_api.realtime(self.snapshot())

    def providers(self) -> list[dict[str, Any]]:
        """``/api/metrics/providers`` (``metrics_api.providers``)."""
        return metrics_api.providers(self.snapshot())

    def sessions(self, limit: int = metrics_api.SESSION_LIMIT) -> list[dict[str, Any]]:
        """``/api/metrics/sessions`` (``metrics_api.sessions``)."""
        return metrics_api.sessions(self.snapshot(), limit)

    def summary(self) -> dict[str, Any]:
        """``/api/metrics/summary`` (``metrics_api.summary``)."""
        return metrics_api.summary(self.snapshot())

    def stream(self, interval_s: float = 1.0) -> AsyncGenerator[bytes, None]:
        """Server-sent event frames of ``realtime()``, one now and one every ``interval_s``."""
        return metrics_api.stream(self.realtime, interval_s)
