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
word holding counts for a later second, up to ``NEWER_HORIZON`` seconds ahead, is newer rather than
stale: a process that read its clock a lap or more before it got to add (descheduled, stopped in a
debugger) leaves its delta there instead of taking the bucket back from the current second.  Anything else
(a word never written, whose count is 0, or one from long ago) is stale and gets rolled.
``RING_SECONDS`` exceeds the longest window read, so the bucket being rolled is never one a reader is
summing.

Seconds come from ``time.monotonic()``, which on Linux is ``CLOCK_MONOTONIC``: one clock for every process
on the machine that never jumps with wall-clock changes.  The 24-bit second stamp repeats every 194 days;
a bucket untouched for exactly a multiple of that, to the second, would show stale counts for a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ccr_fast.state.blocks import claim_block
from ccr_fast.state.table import KeyTable

__all__ = ["NEWER_HORIZON", "RING_SECONDS", "RollingCounters"]

#: buckets in the ring (a power of two, above the longest window readers ask for)
RING_SECONDS: Final = 64
_RING_MASK: Final = RING_SECONDS - 1
#: how far ahead (seconds) a bucket's second may be for an update from an older second to leave it alone
NEWER_HORIZON: Final = 16 * RING_SECONDS
_COUNT_BITS: Final = 40
_COUNT_MASK: Final = (1 << _COUNT_BITS) - 1
_STAMP_MASK: Final = (1 << 24) - 1


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
        if delta:
            offset = self._offsets[(now_s & _RING_MASK) * self._fields + field]
            old = self._add(offset, delta)
            if old >> _COUNT_BITS != now_s & _STAMP_MASK:
                self._roll(offset, now_s & _STAMP_MASK, delta, old)

    def add_row(self, deltas: Sequence[int], now_s: int) -> None:
        """``add`` for every field at once (``deltas[field]``; zeros are skipped): one call per request."""
        offsets = self._offsets
        base = (now_s & _RING_MASK) * self._fields
        stamp = now_s & _STAMP_MASK
        add = self._add
        for field, delta in enumerate(deltas):
            if delta:
                old = add(offsets[base + field], delta)
                if old >> _COUNT_BITS != stamp:
                    self._roll(offsets[base + field], stamp, delta, old)

    def _roll(self, offset: int, stamp: int, delta: int, old: int) -> None:
        """The bucket held another second when ``delta`` went in: roll it over (see the module docstring)."""
        seen = old >> _COUNT_BITS
        if old & _COUNT_MASK and 0 < (seen - stamp) & _STAMP_MASK <= NEWER_HORIZON:
            return  # the bucket already counts a later second: the delta stays counted there
        atomics = self._atomics
        fresh = stamp << _COUNT_BITS | delta
        while True:
            word = atomics.load(offset)
            current = word >> _COUNT_BITS
            if current == stamp:  # someone rolled it, discarding our delta with the stale counts
                atomics.add(offset, delta)
                return
            if current != seen:
                return  # a later second took it after a stall of a lap; our delta went with the old counts
            if atomics.cas(offset, word, fresh):
                return

    def sums(self, seconds: int, now_s: int) -> list[int]:
        """Per field, the counts of the ``seconds`` seconds up to ``now_s`` (the current one included)."""
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
