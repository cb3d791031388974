"""Monotonic counters sharded per worker: increments never contend, a read sums the shards.

The counter names are fixed when the master creates the segment and stored in its header, so every worker
reads the same name -> slot id mapping from the segment itself instead of trusting that its own code agrees.
Each worker adds only to its own shard (its worker index), and each shard sits on its own cache lines, so
an increment is an uncontended atomic add; readers (a metrics scrape) add the shards up, the way
prometheus_client's multiprocess mode sums per-process files.  The add is atomic anyway, so a shard shared
by mistake, or by a respawned worker whose predecessor is still exiting, stays exact.

A worker killed with SIGKILL keeps the counts it made: its shard stays in the segment and the worker that
replaces it (same index) continues from there, so totals never go backwards, as monotonic counters must
not.
"""

from __future__ import annotations

from ccr_fast.state.segment import Segment

__all__ = ["Counters"]


class Counters:
    """The counter registry of one segment, adding to shard ``shard``."""

    __slots__ = ("_atomics", "_ids", "_names", "_shard_offset", "_shards", "_start", "_stride")

    def __init__(self, segment: Segment, shard: int) -> None:
        header = segment.header
        if not 0 <= shard < header.counter_shards:
            raise ValueError(f"shard {shard} is outside the segment's {header.counter_shards} shards")
        self._atomics = segment.atomics
        self._names = header.counter_names
        self._ids = {name: index for index, name in enumerate(self._names)}
        self._start = header.counters_offset
        self._stride = header.shard_stride
        self._shards = header.counter_shards
        self._shard_offset = self._start + shard * self._stride

    @property
    def names(self) -> tuple[str, ...]:
        """Counter names in slot-id order."""
        return self._names

    def slot_id(self, name: str) -> int:
        """The slot id of ``name`` (``KeyError`` for a name the segment was not created with)."""
        return self._ids[name]

    def add(self, slot_id: int, n: int = 1) -> None:
        """Add ``n`` (>= 0) to this worker's shard of the counter."""
        if not 0 <= slot_id < len(self._names):
            raise IndexError(f"counter slot id {slot_id} is out of range")
        if n < 0:
            raise ValueError(f"counters only go up; cannot add {n}")
        self._atomics.add(self._shard_offset + 8 * slot_id, n)

    def total(self, slot_id: int) -> int:
        """The counter summed over every shard."""
        if not 0 <= slot_id < len(self._names):
            raise IndexError(f"counter slot id {slot_id} is out of range")
        load = self._atomics.load
        column = self._start + 8 * slot_id
        return sum(load(column + shard * self._stride) for shard in range(self._shards))

    def totals(self) -> dict[str, int]:
        """Every counter, summed over the shards."""
        return {name: self.total(index) for index, name in enumerate(self._names)}
