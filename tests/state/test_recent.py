"""The bounded table of recently active keys: counting, idle reuse, a busy window, names, processes."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from ccr_fast.state.recent import UNTRACKED_RETRY_MS, RecentEntry, RecentTable
from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.table import KeyTable
from tests.state_fixtures import Procs

NewSegment = Callable[..., Segment]
WINDOW = 1_000
NOW = 10_000_000


@pytest.fixture
def segment(new_segment: NewSegment) -> Segment:
    return new_segment(Layout(table_capacity=1024, slot_words=4))


def _table(segment: Segment, **options: int) -> RecentTable:
    return RecentTable(KeyTable(segment), b"r", capacity=options.pop("capacity", 16), counters=2, **options)


def _by_name(entries: list[RecentEntry]) -> dict[str, RecentEntry]:
    return {entry.name: entry for entry in entries}


def test_touches_add_up_per_key(segment: Segment) -> None:
    recent = _table(segment)
    assert recent.touch("a", (1, 100), 7, NOW, WINDOW)
    assert recent.touch("a", (1, 50), 7, NOW + 10, WINDOW)
    assert recent.touch("b", (1, 0), 0, NOW + 20, WINDOW)
    assert recent.touch("a", (1, 0), 9, NOW + 30, WINDOW)  # a new note replaces the old one
    entries = _by_name(recent.entries(NOW + 30, WINDOW))
    assert entries["a"] == RecentEntry("a", NOW, NOW + 30, 9, (3, 150))
    assert entries["b"] == RecentEntry("b", NOW + 20, NOW + 20, 0, (1, 0))


def test_readers_in_other_processes_see_the_same_entries(segment: Segment, impl: ModuleType) -> None:
    _table(segment).touch("a", (2, 3), 1, NOW, WINDOW)
    with Segment.attach(segment.name, impl=impl) as attached:
        assert _table(attached).entries(NOW, WINDOW) == [RecentEntry("a", NOW, NOW, 1, (2, 3))]


def test_idle_keys_drop_out_and_their_records_are_reused(segment: Segment) -> None:
    recent = _table(segment, capacity=1, probe=1)
    assert recent.touch("old", (5, 5), 1, NOW, WINDOW)
    assert not recent.touch("new", (1, 1), 2, NOW + WINDOW - 1, WINDOW)  # "old" is still active
    assert recent.entries(NOW + WINDOW + 1, WINDOW) == []  # idle past the window
    # "new" was refused a moment ago: this process does not look for room again before the retry time
    assert not recent.touch("new", (1, 1), 2, NOW + WINDOW + 1, WINDOW)
    later = NOW + WINDOW - 1 + UNTRACKED_RETRY_MS
    assert recent.touch("new", (1, 1), 2, later, WINDOW)
    assert recent.entries(later, WINDOW) == [RecentEntry("new", later, later, 2, (1, 1))]
    # "old" comes back: its record is gone, so it starts over (and here finds no room)
    assert not recent.touch("old", (1, 0), 1, later + 1, WINDOW)


def test_a_key_finds_room_in_its_probe_window(segment: Segment) -> None:
    recent = _table(segment, capacity=4, probe=4)
    names = [f"s{i}" for i in range(4)]
    assert all(recent.touch(name, (1, 0), 0, NOW, WINDOW) for name in names)
    assert not recent.touch("s4", (1, 0), 0, NOW, WINDOW)  # every record busy
    assert sorted(e.name for e in recent.entries(NOW, WINDOW)) == names


def test_keys_without_room_are_not_searched_for_on_every_touch(
    segment: Segment, monkeypatch: pytest.MonkeyPatch
) -> None:
    recent = _table(segment, capacity=2, probe=2)
    assert recent.touch("a", (1, 0), 0, NOW, WINDOW) and recent.touch("b", (1, 0), 0, NOW, WINDOW)
    searched: list[str] = []
    place = RecentTable._place

    def counting_place(self: RecentTable, name: str, *args: Any) -> bool:
        searched.append(name)
        return place(self, name, *args)

    monkeypatch.setattr(RecentTable, "_place", counting_place)
    for step in range(100):
        assert not recent.touch(f"extra{step % 5}", (1, 0), 0, NOW + step, WINDOW)
    assert sorted(searched) == [f"extra{i}" for i in range(5)]  # each searched once, then remembered
    # many distinct untracked keys: the memory of them stays bounded
    for step in range(50):
        recent.touch(f"burst{step}", (1, 0), 0, NOW + 200, WINDOW)
    assert len(recent._untracked) <= 4 * recent.capacity


def test_names_are_cut_at_a_character_boundary(segment: Segment) -> None:
    recent = _table(segment, name_bytes=8)
    assert recent.touch("abc€€", (1, 0), 0, NOW, WINDOW)  # 9 bytes: the cut at 8 splits the second €
    assert recent.touch("abc€€€", (1, 0), 0, NOW, WINDOW)  # cut to the same "abc€": the same key
    assert recent.touch("\ud800bad", (1, 0), 0, NOW, WINDOW)  # not encodable as is: never an exception
    entries = _by_name(recent.entries(NOW, WINDOW))
    assert entries["abc€"].counters == (2, 0)
    assert len(entries) == 2


def test_a_key_placed_twice_in_a_race_reads_as_one(segment: Segment) -> None:
    recent = _table(segment, capacity=4, probe=4)
    assert recent.touch("k", (1, 10), 1, NOW, WINDOW)
    # what the rare race leaves (two processes each taking a different idle record): a second record
    racer = _table(segment, capacity=4, probe=4)
    tag = KeyTable(segment).key_hash(b"k")
    second = racer._record((tag + 1) & 3)
    assert segment.atomics.cas(second[0], 0, tag)
    racer._initialise(second, b"k", 2, NOW + 5, reused=False)
    racer._update(second, (2, 5), NOW + 5)
    assert recent.entries(NOW + 5, WINDOW) == [RecentEntry("k", NOW, NOW + 5, 2, (3, 15))]


def test_misuse_is_refused(segment: Segment) -> None:
    with pytest.raises(ValueError):
        _table(segment, capacity=3)
    with pytest.raises(ValueError):
        _table(segment, probe=17)
    with pytest.raises(ValueError):
        _table(segment, name_bytes=4)


# --- real processes -----------------------------------------------------------------------------------------


def _touch_many(segment: Segment, impl: ModuleType, n: int) -> None:
    with Segment.attach(segment.name, impl=impl) as attached:
        recent = _table(attached)
        for i in range(n):
            for name in ("shared-1", "shared-2"):
                assert recent.touch(name, (1, 3), 1, NOW + i, WINDOW)


def test_processes_touching_the_same_keys_count_exactly(
    segment: Segment, impl: ModuleType, procs: Procs
) -> None:
    procs.run(_touch_many, [(segment, impl, 300)] * 4)
    entries = _by_name(_table(segment).entries(NOW + 300, WINDOW))
    assert set(entries) == {"shared-1", "shared-2"}
    for entry in entries.values():
        assert entry.counters == (1_200, 3_600)
        assert entry.first_ms == NOW
