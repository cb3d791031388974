"""Per-worker counter shards: the registry from the header, exact totals across processes and a SIGKILL."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType

import pytest

from ccr_fast.state.counters import Counters
from ccr_fast.state.segment import Layout, Segment
from tests.state_fixtures import Procs

NewSegment = Callable[..., Segment]
NAMES = ("requests", "errors", "tokens_in")
LAYOUT = Layout(table_capacity=16, counter_names=NAMES, counter_shards=4)


@pytest.fixture
def segment(new_segment: NewSegment) -> Segment:
    return new_segment(LAYOUT)


def test_names_map_to_slot_ids_in_creation_order(segment: Segment, impl: ModuleType) -> None:
    counters = Counters(segment, 0)
    assert counters.names == NAMES
    assert [counters.slot_id(name) for name in NAMES] == [0, 1, 2]
    with pytest.raises(KeyError):
        counters.slot_id("unknown")
    with Segment.attach(segment.name, impl=impl) as attached:
        assert Counters(attached, 3).names == NAMES  # a worker reads the registry from the segment


def test_shards_add_up(segment: Segment) -> None:
    shards = [Counters(segment, shard) for shard in range(4)]
    requests = shards[0].slot_id("requests")
    for shard, counters in enumerate(shards):
        counters.add(requests, shard + 1)
    shards[2].add(shards[2].slot_id("tokens_in"), 1_000)
    shards[1].add(shards[1].slot_id("errors"))
    assert shards[3].total(requests) == 10
    assert shards[0].totals() == {"requests": 10, "errors": 1, "tokens_in": 1_000}


def test_each_shard_has_its_own_cache_lines(segment: Segment) -> None:
    header = segment.header
    Counters(segment, 1).add(0, 5)
    assert header.shard_stride % 64 == 0
    assert segment.atomics.load(header.counters_offset + header.shard_stride) == 5
    assert segment.atomics.load(header.counters_offset) == 0


def test_misuse_is_refused(segment: Segment) -> None:
    with pytest.raises(ValueError):
        Counters(segment, 4)
    with pytest.raises(ValueError):
        Counters(segment, -1)
    counters = Counters(segment, 0)
    with pytest.raises(IndexError):
        counters.add(3)
    with pytest.raises(IndexError):
        counters.total(-1)
    with pytest.raises(ValueError, match="only go up"):
        counters.add(0, -1)
    assert counters.totals() == dict.fromkeys(NAMES, 0)


def test_a_segment_without_counters(new_segment: NewSegment) -> None:
    counters = Counters(new_segment(Layout(table_capacity=16)), 0)
    assert counters.names == ()
    assert counters.totals() == {}


# --- real processes -----------------------------------------------------------------------------------------


def _count(segment: Segment, shard: int, n: int) -> None:
    counters = Counters(segment, shard)
    for _ in range(n):
        counters.add(0)
        counters.add(2, 3)


def test_workers_counting_at_once_lose_nothing(segment: Segment, procs: Procs) -> None:
    procs.run(_count, [(segment, shard, 5_000) for shard in range(4)])
    counters = Counters(segment, 0)
    assert counters.totals() == {"requests": 20_000, "errors": 0, "tokens_in": 60_000}


def test_a_shared_shard_still_loses_nothing(segment: Segment, procs: Procs) -> None:
    procs.run(_count, [(segment, 1, 5_000)] * 3)
    assert Counters(segment, 0).total(0) == 15_000


def _count_forever(segment: Segment, shard: int) -> None:
    counters = Counters(segment, shard)
    while True:
        counters.add(0)


def test_a_killed_workers_counts_stay_and_survivors_are_exact(segment: Segment, procs: Procs) -> None:
    victim = procs.start(_count_forever, segment, 0)
    survivors = [procs.start(_count, segment, shard, 5_000) for shard in (1, 2, 3)]
    header = segment.header
    while segment.atomics.load(header.counters_offset) < 1_000:
        time.sleep(0.001)
    procs.sigkill(victim)
    for survivor in survivors:
        survivor.join()
        assert survivor.exitcode == 0
    shard_values = [segment.atomics.load(header.counters_offset + s * header.shard_stride) for s in range(4)]
    assert shard_values[1:] == [5_000] * 3
    assert shard_values[0] >= 1_000  # the victim's counts stay: totals never go backwards
    assert Counters(segment, 0).total(0) == sum(shard_values)
