"""Per-second counters over the last minute, shared by every worker: one fetch-add per update.

"Requests per minute" and "tokens per second" need counts by time, not totals since start, and they must
add up across workers.  The segment keeps a ring of ``RING_SECONDS`` one-second buckets per field.  Each
bucket word packs the second it belongs to with its count::

    word = (second mod 2**24) << 40 | count        # count < 2**40 per field per second

so a bucket changes hands to a new second in the same atomic operation that resets its count, and no
separate epoch word can disagree with it.  An update is one fetch-add; its return value says whether
the word already belonged to the current second.  When it did not (the first update of a second in that
bucket), the update rolls the bucket over with a compare-and-swap from the stale word to ``second | delta``:

* whatever was added to the stale word, this update's own delta included, is thrown away with it;
* an updater that finds the word already rolled to the current second adds its delta again, and one whose
  compare-and-swap lost re-reads and tries again.

So every delta ends up counted exactly once in its second, whichever processes race at the boundary.  A
delta from a process that stalled so long that its bucket has already moved to a later second stays in
that later second (moving it elsewhere would need a lock); ``RING_SECONDS`` exceeds the longest window
read so the bucket being rolled is never one a reader is summing.

Seconds come from ``time.monotonic()``, which on Linux is ``CLOCK_MONOTONIC``: one clock for every process
on the machine that never jumps with wall-clock changes.  The 24-bit second stamp repeats every 194 days;
a bucket untouched for exactly a multiple of that, to the second, would show stale counts for a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ccr_fast.state.blocks import claim_block
from ccr_fast.state.table import KeyTable

__all__ = ["RING_SECONDS", "RollingCounters"]

#: buckets in the ring (a power of two, above the longest window readers ask for)
RING_SECONDS: Final = 64
_RING_MASK: Final = RING_SECONDS - 1
_COUNT_BITS: Final = 40
_COUNT_MASK: Final = (1 << _COUNT_BITS) - 1
_STAMP_MASK: Final = (1 << 24) - 1
_HALF_STAMP: Final = 1 << 23


class RollingCounters:
    """``fields`` per-second counters under ``key`` in the segment, as this process sees them."""

    __slots__ = ("_add", "_atomics", "_fields", "_offsets")

    def __init__(self, table: KeyTable, key: bytes, fields: int) -> None:
        if fields < 1:
            raise ValueError(f"need at least one field, not {fields}")
        self._fields = fields
        self._atomics = table.atomics
        self._add = table.atomics.add
        #: word (bucket * fields + field); claimed up front so updates never probe
        self._offsets = claim_block(table, key, RING_SECONDS * fields)

    @property
    def fields(self) -> int:
        return self._fields

    def add(self, field: int, delta: int, now_s: int) -> None:
        """Count ``delta`` (0 <= delta < 2**40) for ``field`` in second ``now_s`` (monotonic seconds)."""
        offset = self._offsets[(now_s & _RING_MASK) * self._fields + field]
        stamp = now_s & _STAMP_MASK
        old = self._add(offset, delta)
        if old >> _COUNT_BITS != stamp:
            self._roll(offset, stamp, delta, old >> _COUNT_BITS)

    def _roll(self, offset: int, stamp: int, delta: int, seen: int) -> None:
        """The bucket held another second when ``delta`` went in: roll it over (see the module docstring)."""
        if 0 < (seen - stamp) & _STAMP_MASK < _HALF_STAMP:
            return  # the bucket already belongs to a later second: the delta stays counted there
        atomics = self._atomics
        fresh = stamp << _COUNT_BITS
        while True:
            word = atomics.load(offset)
            current = word >> _COUNT_BITS
            if current == stamp:  # someone rolled it, discarding our delta with the stale counts
                atomics.add(offset, delta)
                return
            if 0 < (current - stamp) & _STAMP_MASK < _HALF_STAMP:
                return  # a later second took the bucket meanwhile; our delta went with the stale counts
            if atomics.cas(offset, word, fresh | delta):
                return

    def sums(self, seconds: int, now_s: int) -> list[int]:
        """Per field, the counts of the ``seconds`` seconds ending with ``now_s`` (the current one included)."""
        return self.sums_many((seconds,), now_s)[0]

    def sums_many(self, windows: Sequence[int], now_s: int) -> list[list[int]]:
        """``sums`` for several window lengths from one read of the ring."""
        for seconds in windows:
            if not 1 <= seconds < RING_SECONDS:
                raise ValueError(f"a window must span 1 to {RING_SECONDS - 1} seconds, not {seconds}")
        load = self._atomics.load
        fields = self._fields
        stamp = now_s & _STAMP_MASK
        totals = [[0] * fields for _ in windows]
        for index, offset in enumerate(self._offsets):
            word = load(offset)
            if not word & _COUNT_MASK:
                continue
            age = (stamp - (word >> _COUNT_BITS)) & _STAMP_MASK
            for window, row in zip(windows, totals, strict=True):
                if age < window:
                    row[index % fields] += word & _COUNT_MASK
        return totals
