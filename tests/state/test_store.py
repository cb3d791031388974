"""ShmStore: the resilience state-store contract on shared memory, on both atomics twins."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.shared import SLOT_WORDS
from ccr_fast.state.store import ShmStore
from ccr_fast.state.table import KeyTable
from tests.state_fixtures import Procs

PROCESSES = 3


def _store(new_segment: Callable[..., Segment], capacity: int = 64) -> ShmStore:
    return ShmStore(KeyTable(new_segment(Layout(table_capacity=capacity, slot_words=SLOT_WORDS))))


def test_absent_keys_read_zero_and_values_round_trip(new_segment: Callable[..., Segment]) -> None:
    store = _store(new_segment)
    assert store.get("breaker:a:state") == 0.0
    store.set("breaker:a:state", 2.0)
    assert store.get("breaker:a:state") == 2.0
    assert store.add("inflight:a", 1.0) == 1.0
    assert store.add("inflight:a", -1.0) == 0.0
    assert store.add("ewma:a", 0.125) == 0.125


def test_cas_swaps_only_on_the_expected_value(new_segment: Callable[..., Segment]) -> None:
    store = _store(new_segment)
    assert store.cas("epoch", 0.0, 5.0) is True
    assert store.cas("epoch", 0.0, 6.0) is False
    assert store.cas("epoch", 5.0, 6.0) is True
    assert store.get("epoch") == 6.0


def test_two_stores_on_one_segment_see_each_other(new_segment: Callable[..., Segment]) -> None:
    segment = new_segment(Layout(table_capacity=64, slot_words=SLOT_WORDS))
    first, second = ShmStore(KeyTable(segment)), ShmStore(KeyTable(segment))
    first.add("inflight:x", 3.0)
    assert second.get("inflight:x") == 3.0
    second.set("inflight:x", 0.5)
    assert first.get("inflight:x") == 0.5


def test_a_full_table_degrades_without_raising(new_segment: Callable[..., Segment]) -> None:
    store = _store(new_segment, capacity=4)
    for i in range(4):
        store.set(f"k{i}", float(i + 1))
    # every slot is taken: new keys read zero, writes are dropped, adds report the delta alone
    assert store.get("new") == 0.0
    store.set("new", 9.0)
    assert store.get("new") == 0.0
    assert store.add("new", 2.0) == 2.0
    assert store.cas("new", 0.0, 1.0) is False
    assert [store.get(f"k{i}") for i in range(4)] == [1.0, 2.0, 3.0, 4.0]


def _count(store: ShmStore, n: int) -> None:
    for _ in range(n):
        store.add("hits", 1.0)
        store.add("latency", 0.25)


def test_adds_lose_nothing_across_processes(
    impl: ModuleType, new_segment: Callable[..., Segment], procs: Procs
) -> None:
    store = _store(new_segment)
    n = 20_000 if impl.__name__.endswith("_ext.shm_atomic") else 2_000
    procs.run(_count, [(store, n)] * PROCESSES)
    assert store.get("hits") == PROCESSES * n
    assert store.get("latency") == PROCESSES * n * 0.25
