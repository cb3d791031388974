"""The series registry: ids, labels read back by other processes, bounds, repair of half-done work."""

from __future__ import annotations

import random
from collections.abc import Callable
from types import ModuleType

import orjson
import pytest

from ccr_fast.observe.names import LABELS, MAX_LABEL_BYTES, REGISTRY, SeriesRegistry
from ccr_fast.state.blocks import claim_block
from ccr_fast.state.shared import SharedState
from tests.state_fixtures import Procs, attach


def test_a_label_set_gets_one_series_and_reads_back(state: SharedState, impl: ModuleType) -> None:
    registry = SeriesRegistry(state.table)
    labels = ("route", 'open"router', "anthropic/claude-sonnet-4 ✓\n")
    first = registry.register(labels, 5)
    assert first is not None
    assert first.labels == labels and len(first.offsets) == 5
    assert registry.register(labels, 5) == first
    other = registry.register(("status", "p", "m", "200"), 1)
    assert other is not None and other.id != first.id
    worker = attach(state.segment.name, impl)
    try:
        listed = SeriesRegistry(worker.table).series()
    finally:
        worker.close()
    assert listed == [first, other]


def test_the_bound_refuses_new_label_sets_and_counts_them(state: SharedState) -> None:
    registry = SeriesRegistry(state.table, max_series=2)
    assert registry.register(("a",), 1) is not None
    assert registry.register(("b",), 1) is not None
    assert registry.register(("c",), 1) is None
    assert registry.register(("a",), 1) is not None  # known label sets keep working
    assert registry.register(("x" * MAX_LABEL_BYTES,), 1) is None  # too long, whatever the room
    assert registry.dropped == 2
    assert [series.labels for series in registry.series()] == [("a",), ("b",)]


def test_a_registrant_that_died_before_publishing_is_repaired(state: SharedState) -> None:
    registry = SeriesRegistry(state.table)
    labels = ("route", "p", "m")
    # what a worker killed right after taking an id leaves: an id, and no name
    atomics = state.table.atomics
    word = state.table.slot(LABELS + orjson.dumps(list(labels)))
    drawn = atomics.add(claim_block(state.table, REGISTRY, 2)[0], 1)
    assert atomics.cas(word, 0, drawn + 1)
    assert registry.series() == []  # readers skip it
    series = registry.register(labels, 3)
    assert series is not None and series.id == drawn
    assert SeriesRegistry(state.table).series() == [series]


def test_a_full_key_table_drops_the_series(new_state: Callable[..., SharedState]) -> None:
    tiny = new_state(table_capacity=64)
    registry = SeriesRegistry(tiny.table)
    results = [registry.register(("route", "p", f"model-{i}"), 40) for i in range(8)]
    assert results[0] is not None
    assert None in results
    assert registry.dropped == results.count(None)
    assert [s.labels for s in registry.series()] == [r.labels for r in results if r is not None]


def test_misuse_is_refused(state: SharedState) -> None:
    with pytest.raises(ValueError):
        SeriesRegistry(state.table, max_series=0)
    with pytest.raises(ValueError):
        SeriesRegistry(state.table).register(("a",), 0)


# --- real processes -----------------------------------------------------------------------------------------

LABEL_SETS = [("route", f"provider-{i % 5}", f"model-{i}") for i in range(40)]


def _register_and_count(name: str, impl: ModuleType, seed: int) -> None:
    worker = attach(name, impl)
    registry = SeriesRegistry(worker.table)
    order = list(LABEL_SETS)
    random.Random(seed).shuffle(order)
    for labels in order:
        series = registry.register(labels, 2)
        assert series is not None
        worker.table.atomics.add(series.offsets[1], 1)


def test_workers_registering_at_once_agree_on_every_series(
    state: SharedState, impl: ModuleType, procs: Procs
) -> None:
    procs.run(_register_and_count, [(state.segment.name, impl, seed) for seed in range(4)])
    listed = SeriesRegistry(state.table).series()
    assert sorted(series.labels for series in listed) == sorted(LABEL_SETS)
    assert [state.table.atomics.load(series.offsets[1]) for series in listed] == [4] * len(LABEL_SETS)
