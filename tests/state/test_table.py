"""Key table: stable slots, concurrent claims from real processes, SIGKILL mid-claim, and the full table."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from itertools import count
from types import ModuleType
from typing import Any

import pytest

from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.table import KeyTable, TableFull
from tests.state_fixtures import Procs

NewSegment = Callable[..., Segment]


def _words(table: KeyTable, segment: Segment) -> list[list[int]]:
    """Every slot as [hash, state words...]."""
    header = segment.header
    load = segment.atomics.load
    return [
        [
            load(header.table_offset + (slot * header.slot_words + word) * 8)
            for word in range(header.slot_words)
        ]
        for slot in range(table.capacity)
    ]


def test_a_key_keeps_one_slot(new_segment: NewSegment) -> None:
    segment = new_segment(Layout(table_capacity=64, slot_words=3))
    table = KeyTable(segment)
    assert (table.capacity, table.state_words) == (64, 2)
    assert table.find("alpha") is None
    slot = table.slot("alpha")
    header = segment.header
    assert header.table_offset < slot < header.table_offset + 64 * 3 * 8
    assert (slot - header.table_offset) % 24 == 8
    assert segment.atomics.load(slot - 8) == table.key_hash("alpha")
    assert table.slot("alpha") == slot == table.find("alpha") == table.slot(b"alpha")
    assert len({slot, table.slot("beta"), table.slot(b"\x00\xff")}) == 3
    assert table.used() == 3


def test_other_processes_find_the_same_slot(new_segment: NewSegment, impl: ModuleType) -> None:
    segment = new_segment(Layout(table_capacity=64))
    slot = KeyTable(segment).slot("alpha")
    with Segment.attach(segment.name, impl=impl) as attached:
        other = KeyTable(attached)
        assert other.find("alpha") == slot
        assert other.slot("alpha") == slot
        assert other.find("beta") is None


def test_new_slots_start_with_zeroed_state(new_segment: NewSegment) -> None:
    segment = new_segment(Layout(table_capacity=16, slot_words=4))
    table = KeyTable(segment)
    slot = table.slot("k")
    assert [segment.atomics.load(slot + 8 * i) for i in range(3)] == [0, 0, 0]


def test_hashes_are_seeded_per_segment_and_never_zero(
    new_segment: NewSegment, impl: ModuleType, prefix: str
) -> None:
    first = KeyTable(new_segment(Layout(table_capacity=16)))
    other_segment = Segment.create(Layout(table_capacity=16), prefix=prefix + "-b", impl=impl)
    try:
        second = KeyTable(other_segment)
        assert first.key_hash("alpha") != second.key_hash("alpha")
        assert first.key_hash("alpha") == first.key_hash(b"alpha")
        assert all(first.key_hash(f"k{i}") != 0 for i in range(1000))
    finally:
        other_segment.close()
        other_segment.unlink()


# --- full table ---------------------------------------------------------------------------------------------


def test_a_full_table_degrades_without_touching_any_slot(
    new_segment: NewSegment, caplog: pytest.LogCaptureFixture
) -> None:
    segment = new_segment(Layout(table_capacity=8))
    table = KeyTable(segment)
    slots = {f"k{i}": table.slot(f"k{i}") for i in range(8)}
    before = _words(table, segment)
    with caplog.at_level(logging.WARNING, logger="ccr_fast.state.table"):
        for attempt in range(1, 4):
            with pytest.raises(TableFull):
                table.slot("one too many")
            assert table.full_count == attempt
    assert _words(table, segment) == before
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "table full (8 slots)" in caplog.text
    assert table.find("one too many") is None
    assert {key: table.slot(key) for key in slots} == slots
    assert table.used() == 8


def _try_one_more(segment: Segment) -> None:
    try:
        KeyTable(segment).slot("late")
    except TableFull:
        return
    raise AssertionError("expected TableFull")


def test_full_count_is_shared_by_all_processes(new_segment: NewSegment, procs: Procs) -> None:
    segment = new_segment(Layout(table_capacity=2))
    table = KeyTable(segment)
    table.slot("a")
    table.slot("b")
    procs.run(_try_one_more, [(segment,)] * 3)
    assert table.full_count == 3


# --- real processes -----------------------------------------------------------------------------------------

KEYS = [f"user-{i}" for i in range(300)]


def _claim_all(segment: Segment, seed: int, results: Any) -> None:
    keys = KEYS[:]
    random.Random(seed).shuffle(keys)
    table = KeyTable(segment)
    results.put({key: table.slot(key) for key in keys})


def test_concurrent_claims_give_each_key_exactly_one_slot(new_segment: NewSegment, procs: Procs) -> None:
    segment = new_segment(Layout(table_capacity=512))
    results = procs.ctx.SimpleQueue()
    procs.run(_claim_all, [(segment, seed, results) for seed in range(4)])
    seen = [results.get() for _ in range(4)]
    assert all(view == seen[0] for view in seen)
    table = KeyTable(segment)
    assert table.used() == len(KEYS)
    hashes = [row[0] for row in _words(table, segment) if row[0]]
    assert sorted(hashes) == sorted(table.key_hash(key) for key in KEYS)


VICTIM_KEYS = 20_000


def _claim_forever(segment: Segment, progress: int) -> None:
    table = KeyTable(segment)
    atomics = segment.atomics
    for i in count():
        slot = table.slot(f"victim-{i % VICTIM_KEYS}")
        atomics.store(slot, i % VICTIM_KEYS + 1)
        atomics.add(progress, 1)


SURVIVOR_ROUNDS = 20


def _claim_and_bump(segment: Segment) -> None:
    table = KeyTable(segment)
    for _ in range(SURVIVOR_ROUNDS):
        for key in KEYS:
            segment.atomics.add(table.slot(key), 1)


def test_a_process_killed_mid_claim_leaves_the_table_consistent(
    new_segment: NewSegment, procs: Procs
) -> None:
    segment = new_segment(Layout(table_capacity=1 << 15, slot_words=2))
    table = KeyTable(segment)
    progress = table.slot("progress")
    victim = procs.start(_claim_forever, segment, progress)
    survivors = [procs.start(_claim_and_bump, segment) for _ in range(3)]
    while segment.atomics.load(progress) < 2_000:
        time.sleep(0.001)
    procs.sigkill(victim)
    for survivor in survivors:
        survivor.join()
        assert survivor.exitcode == 0

    victim_keys = {table.key_hash(f"victim-{i}"): i + 1 for i in range(VICTIM_KEYS)}
    survivor_keys = {table.key_hash(key) for key in KEYS}
    rows = _words(table, segment)
    claimed = [row for row in rows if row[0]]
    assert len({row[0] for row in claimed}) == len(claimed) == table.used()  # no key twice
    assert all(row == [0, 0] for row in rows if not row[0])  # nothing written outside a claimed slot
    for key_hash, state in claimed:
        if key_hash in survivor_keys:
            assert state == 3 * SURVIVOR_ROUNDS  # every survivor's update counted, none lost
        elif key_hash in victim_keys:
            assert state in (0, victim_keys[key_hash])  # claimed, and either untouched or fully written
        else:
            assert key_hash == table.key_hash("progress")
    assert survivor_keys <= {row[0] for row in claimed}
