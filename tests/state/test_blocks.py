"""Blocks of words over key-table slots: layout, sharing between processes, readers that never claim."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from ccr_fast.state.blocks import chunk_keys, claim_block, find_block
from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.table import KeyTable, TableFull

NewSegment = Callable[..., Segment]


@pytest.fixture
def segment(new_segment: NewSegment) -> Segment:
    return new_segment(Layout(table_capacity=64, slot_words=4))


@pytest.fixture
def table(segment: Segment) -> KeyTable:
    return KeyTable(segment)


def test_a_block_spans_whole_slots_in_order(table: KeyTable) -> None:
    assert table.state_words == 3
    assert chunk_keys(table, b"k", 7) == [b"k#0", b"k#1", b"k#2"]
    offsets = claim_block(table, b"k", 7)
    assert len(offsets) == 7 == len(set(offsets))
    assert all(offset % 8 == 0 for offset in offsets)
    for first in (0, 3):  # words of one chunk are adjacent state words of its slot
        assert offsets[first + 1] == offsets[first] + 8 and offsets[first + 2] == offsets[first] + 16
    assert table.find(b"k#1") == offsets[3]


def test_words_start_zero_and_are_shared_by_every_holder(
    segment: Segment, table: KeyTable, impl: ModuleType
) -> None:
    offsets = claim_block(table, b"k", 5)
    assert [table.atomics.load(offset) for offset in offsets] == [0] * 5
    table.atomics.add(offsets[4], 9)
    assert claim_block(table, b"k", 5) == offsets
    with Segment.attach(segment.name, impl=impl) as attached:
        other = KeyTable(attached)
        again = find_block(other, b"k", 5)
        assert again == offsets
        assert other.atomics.load(again[4]) == 9


def test_readers_find_only_complete_blocks_and_claim_nothing(table: KeyTable) -> None:
    assert find_block(table, b"absent", 4) is None
    assert table.used() == 0
    claim_block(table, b"half", 3)  # one chunk of what would be a two-chunk block
    assert find_block(table, b"half", 6) is None
    assert find_block(table, b"half", 3) is not None
    assert table.used() == 1


def test_a_full_table_refuses_the_block(new_segment: NewSegment) -> None:
    table = KeyTable(new_segment(Layout(table_capacity=2, slot_words=4)))
    with pytest.raises(TableFull):
        claim_block(table, b"big", 9)
    assert table.full_count == 1


def test_empty_blocks_are_refused(table: KeyTable) -> None:
    with pytest.raises(ValueError):
        claim_block(table, b"k", 0)
