"""Shared-memory state: ns per operation, compiled ``ccr_fast._ext.shm_atomic`` against the pure twin.

Run with ``pytest bench/micro/test_bench_state.py --benchmark-enable`` and compare the ``pure`` and
``compiled`` rows of each group.  Every operation runs on a real segment in /dev/shm from one process, so
the numbers are the uncontended cost a worker pays per call, Python call overhead included; the pure twin's
cost is dominated by its two ``flock`` system calls.  ``gcra allow`` and ``table slot`` go through the
public classes (key already known, so the per-process slot cache answers); ``table probe`` is the
uncached lookup a process does the first time it sees a key.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from types import ModuleType

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from ccr_fast import _speedups
from ccr_fast.state import atomic
from ccr_fast.state.counters import Counters
from ccr_fast.state.gcra import RateLimiter
from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.table import MAX_PROBE, KeyTable

COMPILED = _speedups.compiled("shm_atomic")
NOT_BUILT = "ccr_fast._ext.shm_atomic is not built (run: python setup.py build_ext --inplace)"
IMPLS = [
    pytest.param(atomic, id="pure"),
    pytest.param(COMPILED, id="compiled", marks=pytest.mark.skipif(COMPILED is None, reason=NOT_BUILT)),
]
LAYOUT = Layout(table_capacity=4096, counter_names=("requests",), counter_shards=2)


@pytest.fixture(params=IMPLS)
def segment(request: pytest.FixtureRequest) -> Iterator[Segment]:
    impl: ModuleType = request.param
    created = Segment.create(LAYOUT, prefix=f"ccr-bench-{secrets.token_hex(4)}", impl=impl)
    yield created
    created.close()
    created.unlink()


def _word(segment: Segment) -> int:
    return segment.header.table_offset + 8


def test_load(benchmark: BenchmarkFixture, segment: Segment) -> None:
    benchmark.group = "state: load"
    segment.atomics.store(_word(segment), 7)
    assert benchmark(segment.atomics.load, _word(segment)) == 7


def test_add(benchmark: BenchmarkFixture, segment: Segment) -> None:
    benchmark.group = "state: add (fetch-add)"
    benchmark(segment.atomics.add, _word(segment), 1)
    assert segment.atomics.load(_word(segment)) > 0


def test_cas(benchmark: BenchmarkFixture, segment: Segment) -> None:
    benchmark.group = "state: cas (succeeding)"
    assert benchmark(segment.atomics.cas, _word(segment), 0, 0) is True


def test_snapshot(benchmark: BenchmarkFixture, segment: Segment) -> None:
    benchmark.group = "state: seqlock snapshot of 3 words"
    seq = _word(segment)
    record = (seq + 16, seq + 32, seq + 48)
    assert benchmark(segment.atomics.snapshot, seq, record) == (0, 0, 0)


def test_gcra_allow(benchmark: BenchmarkFixture, segment: Segment) -> None:
    benchmark.group = "state: gcra allow (known key)"
    limiter = RateLimiter(KeyTable(segment))
    assert benchmark(limiter.allow, "global", 1e9, 10**6).allowed


def test_table_slot(benchmark: BenchmarkFixture, segment: Segment) -> None:
    benchmark.group = "state: table slot (known key, cached)"
    table = KeyTable(segment)
    slot = table.slot("user-1")
    assert benchmark(table.slot, "user-1") == slot


def test_table_probe(benchmark: BenchmarkFixture, segment: Segment) -> None:
    benchmark.group = "state: table lookup (hash + probe, uncached)"
    table = KeyTable(segment)
    for i in range(2048):  # half full, so probes see realistic collisions
        table.slot(f"user-{i}")
    header = segment.header
    probe = segment.atomics.probe
    args = (header.table_offset, header.table_capacity, header.slot_words * 8)

    def lookup(key: bytes) -> int:
        return probe(*args, table.key_hash(key), MAX_PROBE, False)

    assert benchmark(lookup, b"user-1000") == table.find("user-1000")


def test_counter_add(benchmark: BenchmarkFixture, segment: Segment) -> None:
    benchmark.group = "state: counter add (own shard)"
    counters = Counters(segment, 1)
    benchmark(counters.add, 0, 1)
    assert counters.total(0) > 0
