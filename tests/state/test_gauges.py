"""Per-worker gauges: summed over live owners, zeroed when their worker dies, reset for a new owner."""

from __future__ import annotations

import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import ModuleType

import pytest

from ccr_fast.state.gauges import WorkerGauges
from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.table import KeyTable
from tests.state_fixtures import Procs

NewSegment = Callable[..., Segment]
SLOTS = range(8)


@pytest.fixture
def segment(new_segment: NewSegment) -> Segment:
    return new_segment(Layout(table_capacity=256, slot_words=4))


def _gauges(segment: Segment) -> WorkerGauges:
    return WorkerGauges(KeyTable(segment), b"g", 2)


def test_a_worker_moves_its_own_gauges(segment: Segment) -> None:
    gauges = _gauges(segment)
    assert not gauges.bound
    gauges.bind(0)
    assert gauges.bound
    gauges.add(0, 3)
    gauges.add(1, 1)
    gauges.add(0, -1)
    assert gauges.totals(SLOTS) == [2, 1]
    gauges.bind(0)  # binding again keeps what this process has counted
    assert gauges.totals(SLOTS) == [2, 1]


def test_a_decrement_seen_before_its_increment_goes_below_zero_and_back(segment: Segment) -> None:
    gauges = _gauges(segment)
    gauges.bind(1)
    gauges.add(1, -2)
    assert gauges.totals(SLOTS) == [0, -2]
    gauges.add(1, 2)
    assert gauges.totals(SLOTS) == [0, 0]
    gauges.add(0, 1)
    assert gauges.totals(SLOTS) == [1, 0]  # the owner pid was not disturbed by the dip


def test_misuse_is_refused(segment: Segment) -> None:
    with pytest.raises(ValueError):
        WorkerGauges(KeyTable(segment), b"g", 0)
    with pytest.raises(ValueError):
        _gauges(segment).bind(-1)


# --- real processes -----------------------------------------------------------------------------------------


def _hold(segment: Segment, impl: ModuleType, slot: int, amounts: tuple[int, int], ready: Connection) -> None:
    """A worker with requests in flight that never ends them (until it is killed)."""
    with Segment.attach(segment.name, impl=impl) as attached:
        gauges = _gauges(attached)
        gauges.bind(slot)
        gauges.add(0, amounts[0])
        gauges.add(1, amounts[1])
        ready.send(os.getpid())
        ready.recv()  # blocks until the test kills us or closes the pipe


def test_a_killed_workers_gauges_are_zeroed_and_survivors_stay(
    segment: Segment, impl: ModuleType, procs: Procs
) -> None:
    mine = _gauges(segment)
    mine.bind(0)
    mine.add(0, 1)
    victim_end, victim_pipe = procs.ctx.Pipe()
    survivor_end, survivor_pipe = procs.ctx.Pipe()
    victim = procs.start(_hold, segment, impl, 1, (5, 2), victim_pipe)
    procs.start(_hold, segment, impl, 2, (10, 0), survivor_pipe)
    victim_end.recv()
    survivor_end.recv()
    assert mine.totals(SLOTS) == [16, 2]
    victim.kill()
    victim.join()
    reader = _gauges(segment)  # a scrape in a process that never bound
    assert reader.reap(SLOTS) == 2  # both of the victim's words
    assert reader.totals(SLOTS) == [11, 0]
    assert reader.reap(SLOTS) == 0
    survivor_end.send(b"done")


def _leave_counts(segment: Segment, impl: ModuleType, slot: int) -> None:
    with Segment.attach(segment.name, impl=impl) as attached:
        gauges = _gauges(attached)
        gauges.bind(slot)
        gauges.add(0, 7)  # exits without taking them back


def test_the_next_owner_of_a_dead_workers_slot_starts_from_zero(
    segment: Segment, impl: ModuleType, procs: Procs
) -> None:
    procs.run(_leave_counts, [(segment, impl, 3)])
    heir = _gauges(segment)
    heir.bind(3)  # before anyone reaped: the leftovers must not be inherited
    assert heir.totals(SLOTS) == [0, 0]
    heir.add(0, 1)
    assert heir.totals(SLOTS) == [1, 0]
    assert heir.reap(SLOTS) == 0  # the words carry the heir's pid now


def test_a_scrape_drops_dead_counts_without_reaping_first(
    segment: Segment, impl: ModuleType, procs: Procs
) -> None:
    procs.run(_leave_counts, [(segment, impl, 4)])
    assert _gauges(segment).totals(SLOTS) == [0, 0]
