"""Per-second rolling counters: windows, roll-over, stale writers, stamp wrap-around, racing processes."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.table import KeyTable
from ccr_fast.state.window import NEWER_HORIZON, RING_SECONDS, RollingCounters
from tests.state_fixtures import Procs

NewSegment = Callable[..., Segment]
T0 = 1_000_000  # a monotonic second, far from 0


@pytest.fixture
def segment(new_segment: NewSegment) -> Segment:
    return new_segment(Layout(table_capacity=512, slot_words=4))


@pytest.fixture
def counters(segment: Segment) -> RollingCounters:
    return RollingCounters(KeyTable(segment), b"w", 2)


def test_sums_cover_the_last_seconds_per_field(counters: RollingCounters) -> None:
    counters.add(0, 5, T0 - 30)
    counters.add(0, 1, T0)
    counters.add(1, 7, T0)
    counters.add_row((2, 0), T0 - 59)
    counters.add_row((3, 4), T0 - 60)  # just outside a minute
    assert counters.sums(60, T0) == [8, 7]
    assert counters.sums(1, T0) == [1, 7]
    assert counters.sums_many((60, 61, 31), T0) == [[8, 7], [11, 11], [6, 7]]
    assert counters.sums(60, T0 + 31) == [1, 7]  # T0 - 30 has aged out


def test_a_bucket_reused_a_ring_later_starts_from_zero(counters: RollingCounters) -> None:
    counters.add(0, 10, T0)
    counters.add(0, 3, T0 + RING_SECONDS)  # same bucket, next lap
    counters.add(0, 1, T0 + RING_SECONDS)
    assert counters.sums(RING_SECONDS - 1, T0 + RING_SECONDS) == [4, 0]


def test_a_stale_writer_never_takes_a_bucket_back(counters: RollingCounters) -> None:
    counters.add(0, 2, T0 + RING_SECONDS)
    counters.add(0, 5, T0)  # a process that read its clock a lap ago: counted in the newer second
    assert counters.sums(1, T0 + RING_SECONDS) == [7, 0]


def test_a_writer_stalled_past_the_horizon_takes_the_bucket(counters: RollingCounters) -> None:
    later = T0 + NEWER_HORIZON + RING_SECONDS
    counters.add(0, 2, later)
    counters.add(0, 5, T0)  # so far ahead it must be a bucket from long ago, not a newer second
    assert counters.sums(1, T0) == [5, 0]
    assert counters.sums(1, later) == [0, 0]


def test_untouched_buckets_are_never_mistaken_for_newer_ones(counters: RollingCounters) -> None:
    # a fresh word reads as second 0: for a clock in the upper half of the stamp range that is "ahead"
    for second in ((1 << 24) - 5, (1 << 23) + 7, (1 << 24) - NEWER_HORIZON):
        counters.add(1, 1, second)
        assert counters.sums(1, second) == [0, 1], second


def test_the_second_stamp_wraps(counters: RollingCounters) -> None:
    last = (1 << 24) - 1
    counters.add(0, 1, last)
    counters.add(0, 2, last + 1)  # stamp 0 again
    assert counters.sums(2, last + 1) == [3, 0]
    assert counters.sums(1, last + 1) == [2, 0]


def test_another_process_sees_the_same_counts(
    segment: Segment, counters: RollingCounters, impl: ModuleType
) -> None:
    counters.add(1, 9, T0)
    with Segment.attach(segment.name, impl=impl) as attached:
        assert RollingCounters(KeyTable(attached), b"w", 2).sums(10, T0) == [0, 9]


def test_misuse_is_refused(segment: Segment, counters: RollingCounters) -> None:
    with pytest.raises(ValueError):
        RollingCounters(KeyTable(segment), b"none", 0)
    with pytest.raises(ValueError):
        counters.sums(RING_SECONDS, T0)
    with pytest.raises(ValueError):
        counters.sums_many((10, 0), T0)


class _Interleaved:
    """A key table whose atomics run ``between`` once, right after the first ``method`` call returns: the
    moment another process's update would land in the middle of ours."""

    def __init__(self, table: KeyTable, method: str, between: Callable[[], None]) -> None:
        self._table = table
        self._method = method
        self._between: Callable[[], None] | None = between
        self.state_words = table.state_words
        self.slot = table.slot

    @property
    def atomics(self) -> _Interleaved:
        return self

    def __getattr__(self, name: str) -> Callable[..., int]:
        real: Callable[..., int] = getattr(self._table.atomics, name)
        if name != self._method:
            return real

        def call(*args: int) -> int:
            result = real(*args)
            between, self._between = self._between, None
            if between is not None:
                between()
            return result

        return call


@pytest.mark.parametrize("moment", ["add", "load"])
def test_an_update_that_loses_the_roll_is_counted_once(segment: Segment, moment: str) -> None:
    """``add``: the other process rolls the bucket between our fetch-add and our look at the word;
    ``load``: between our look and our compare-and-swap (which must then fail and retry)."""
    table = KeyTable(segment)
    other = RollingCounters(table, b"w", 2)
    other.add(0, 100, T0 - RING_SECONDS)  # stale counts to be discarded

    def other_process_updates() -> None:
        other.add(0, 7, T0)

    ours = RollingCounters(_Interleaved(table, moment, other_process_updates), b"w", 2)  # type: ignore[arg-type]
    ours.add(0, 5, T0)
    assert other.sums(1, T0) == [12, 0]


# --- real processes -----------------------------------------------------------------------------------------


def _hammer(segment: Segment, per_second: int) -> None:
    counters = RollingCounters(KeyTable(segment), b"w", 2)
    for second in range(T0, T0 + RING_SECONDS):
        for _ in range(per_second):
            counters.add(0, 1, second)
        counters.add_row((0, per_second), second)


def test_processes_rolling_buckets_at_once_count_every_delta_once(
    segment: Segment, counters: RollingCounters, procs: Procs
) -> None:
    for second in range(T0 - RING_SECONDS, T0):  # a full lap of stale counts for every roll to discard
        counters.add_row((1000, 1000), second)
    procs.run(_hammer, [(segment, 40)] * 4)
    window = RING_SECONDS - 1
    expected = [4 * 40 * window, 4 * 40 * window]
    assert counters.sums(window, T0 + RING_SECONDS - 1) == expected  # T0 + 1 .. last
    assert counters.sums(window, T0 + RING_SECONDS - 2) == expected  # T0 .. last - 1
