"""A fixed-size shared table of recently active keys (client sessions), each with a name and a few counters.

Session ids are unbounded input: giving each one key-table slots would fill the table for good, because
slots are never freed.  This table has ``capacity`` records instead, and a record whose key has been idle
longer than the window is reused for a new key.  A key's home record comes from its hash; a key lives in
the first record of its probe window (``probe`` records from home) that was free or idle when it arrived.

Record words::

    0 tag (hash of the name, 0 = never used)   1 first seen (ms)   2 last seen (ms)   3 note
    4 .. 4+counters-1 counters                  then the name's length and its UTF-8 bytes

* Claiming a record is one compare-and-swap of the tag, from 0 or from the idle key's tag.  A record
  taken from an idle key has its counters reset with plain stores after the swap: an update racing with
  that reset (the idle key coming back at that very moment, or two processes placing one new key in one
  idle record together) can lose its increment.  Sessions are a dashboard view; the exact totals are the
  counters of ``ccr_fast.observe.metrics``.
* Readers skip a record whose stored name does not hash to its tag (being written) and merge the rare
  duplicate: two processes placing one key at the same moment can each see a different record as idle
  (one of them refreshed in between) and take one each.
* When every record of a key's probe window is in use by keys active within the window, the key is not
  tracked and ``touch`` says so.  Keys longer than ``name_bytes`` are cut at a character boundary.

Each process remembers where its keys live (a dict bounded by clearing it when it outgrows the table), so
an update is a tag check plus one add per non-zero counter and one store. It also remembers, for
``UNTRACKED_RETRY_MS``, the keys it found no room for, so that with more active keys than records the
untracked ones cost a dict lookup instead of a probe of their window on every update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from ccr_fast.state.blocks import claim_block, find_block
from ccr_fast.state.table import KeyTable, TableFull

__all__ = ["RecentEntry", "RecentTable"]

_TAG: Final = 0
_FIRST: Final = 1
_LAST: Final = 2
_NOTE: Final = 3
_COUNTERS: Final = 4
#: how long a process waits before it looks again for room for a key it could not place
UNTRACKED_RETRY_MS: Final = 1000


class RecentEntry(NamedTuple):
    """One active key as a reader sees it."""

    name: str
    first_ms: int
    last_ms: int
    note: int
    counters: tuple[int, ...]


class RecentTable:
    """``capacity`` records under ``key``, each with ``counters`` counters and a name of ``name_bytes``."""

    __slots__ = (
        "_atomics",
        "_capacity",
        "_counters",
        "_key",
        "_name_bytes",
        "_name_offset",
        "_placed",
        "_probe",
        "_records",
        "_table",
        "_untracked",
        "_words",
    )

    def __init__(
        self,
        table: KeyTable,
        key: bytes,
        *,
        capacity: int = 256,
        counters: int = 3,
        name_bytes: int = 56,
        probe: int = 8,
    ) -> None:
        if capacity < 1 or capacity & (capacity - 1):
            raise ValueError(f"capacity must be a power of two, not {capacity}")
        if counters < 1 or name_bytes < 8 or not 1 <= probe <= capacity:
            raise ValueError("need at least one counter, 8 name bytes and a probe window within capacity")
        self._table = table
        self._atomics = table.atomics
        self._key = key
        self._capacity = capacity
        self._counters = counters
        self._name_bytes = name_bytes
        self._probe = probe
        self._name_offset = _COUNTERS + counters
        self._words = self._name_offset + 1 + (name_bytes + 7) // 8
        #: record index -> offsets of its words (claimed, or found by a reader)
        self._records: dict[int, tuple[int, ...]] = {}
        #: key -> (its record's offsets, tag, note last stored by this process)
        self._placed: dict[str, tuple[tuple[int, ...], int, int]] = {}
        #: keys this process could not place -> when (ms) to try again: a full table is not searched for
        #: them on every request
        self._untracked: dict[str, int] = {}

    @property
    def capacity(self) -> int:
        return self._capacity

    def touch(self, name: str, deltas: Sequence[int], note: int, now_ms: int, window_ms: int) -> bool:
        """Add ``deltas`` to ``name``'s counters, mark it seen at ``now_ms`` and set its note.

        Returns False when the key could not be tracked (probe window busy, or the key table full).
        """
        placed = self._placed.get(name)
        if placed is not None:
            offsets, tag, stored_note = placed
            if self._atomics.load(offsets[_TAG]) == tag:
                self._update(offsets, deltas, now_ms)
                if note != stored_note:
                    self._atomics.store(offsets[_NOTE], note)
                    self._placed[name] = (offsets, tag, note)
                return True
        retry_at = self._untracked.get(name)
        if retry_at is not None and now_ms < retry_at:
            return False
        if self._place(name, deltas, note, now_ms, window_ms):
            if retry_at is not None:
                del self._untracked[name]
            return True
        if len(self._untracked) >= 4 * self._capacity:
            self._untracked.clear()
        self._untracked[name] = now_ms + min(window_ms, UNTRACKED_RETRY_MS)
        return False

    def entries(self, now_ms: int, window_ms: int) -> list[RecentEntry]:
        """Keys seen within ``window_ms`` of ``now_ms``, one entry per key, in no particular order."""
        load = self._atomics.load
        merged: dict[str, RecentEntry] = {}
        for index in range(self._capacity):
            offsets = self._records.get(index)
            if offsets is None:
                found = find_block(self._table, b"%s/%d" % (self._key, index), self._words)
                if found is None:
                    continue
                offsets = self._records[index] = found
            tag = load(offsets[_TAG])
            if not tag or load(offsets[_LAST]) < now_ms - window_ms:
                continue
            entry = self._read(offsets, tag)
            if entry is None:
                continue
            other = merged.get(entry.name)
            if other is not None:
                entry = _merge(other, entry)
            merged[entry.name] = entry
        return list(merged.values())

    def _update(self, offsets: tuple[int, ...], deltas: Sequence[int], now_ms: int) -> None:
        add = self._atomics.add
        counter = _COUNTERS
        for delta in deltas:
            if delta:
                add(offsets[counter], delta)
            counter += 1
        self._atomics.store(offsets[_LAST], now_ms)

    def _place(self, name: str, deltas: Sequence[int], note: int, now_ms: int, window_ms: int) -> bool:
        encoded = _truncate(name.encode(errors="replace"), self._name_bytes)
        tag = self._table.key_hash(encoded)
        atomics = self._atomics
        for _attempt in range(2):  # a lost compare-and-swap means another key just arrived: look again
            candidate: tuple[tuple[int, ...], int] | None = None
            for step in range(self._probe):
                try:
                    offsets = self._record((tag + step) & (self._capacity - 1))
                except TableFull:
                    return False
                seen = atomics.load(offsets[_TAG])
                if seen == tag or seen == 0:  # found it, or it cannot be further along: take this one
                    candidate = (offsets, seen)
                    break
                if candidate is None and atomics.load(offsets[_LAST]) < now_ms - window_ms:
                    candidate = (offsets, seen)  # idle: reusable unless the key turns up further along
            if candidate is None:
                return False
            offsets, seen = candidate
            if seen == tag:
                atomics.store(offsets[_NOTE], note)
            elif atomics.cas(offsets[_TAG], seen, tag):
                self._initialise(offsets, encoded, note, now_ms, reused=seen != 0)
            else:
                continue
            self._update(offsets, deltas, now_ms)
            if len(self._placed) >= 4 * self._capacity:
                self._placed.clear()
            self._placed[name] = (offsets, tag, note)
            return True
        return False

    def _initialise(
        self, offsets: tuple[int, ...], encoded: bytes, note: int, now_ms: int, *, reused: bool
    ) -> None:
        store = self._atomics.store
        store(offsets[_FIRST], now_ms)
        store(offsets[_LAST], now_ms)
        store(offsets[_NOTE], note)
        if reused:
            for index in range(self._counters):
                store(offsets[_COUNTERS + index], 0)
        store(offsets[self._name_offset], len(encoded))
        padded = encoded.ljust((len(encoded) + 7) // 8 * 8, b"\0")
        for word in range(len(padded) // 8):
            value = int.from_bytes(padded[word * 8 : word * 8 + 8], "little")
            store(offsets[self._name_offset + 1 + word], value)

    def _read(self, offsets: tuple[int, ...], tag: int) -> RecentEntry | None:
        load = self._atomics.load
        first, last, note = load(offsets[_FIRST]), load(offsets[_LAST]), load(offsets[_NOTE])
        counters = tuple(load(offsets[_COUNTERS + i]) for i in range(self._counters))
        length = load(offsets[self._name_offset])
        if length > self._name_bytes:
            return None
        words = (length + 7) // 8
        raw = b"".join(load(offsets[self._name_offset + 1 + i]).to_bytes(8, "little") for i in range(words))
        encoded = raw[:length]
        if self._table.key_hash(encoded) != tag or load(offsets[_TAG]) != tag:
            return None  # being (re)written
        return RecentEntry(encoded.decode(errors="replace"), first, last, note, counters)

    def _record(self, index: int) -> tuple[int, ...]:
        offsets = self._records.get(index)
        if offsets is None:
            offsets = self._records[index] = claim_block(
                self._table, b"%s/%d" % (self._key, index), self._words
            )
        return offsets


def _truncate(encoded: bytes, limit: int) -> bytes:
    """``encoded`` cut to at most ``limit`` bytes without splitting a UTF-8 character."""
    if len(encoded) <= limit:
        return encoded
    return encoded[:limit].decode(errors="ignore").encode()


def _merge(a: RecentEntry, b: RecentEntry) -> RecentEntry:
    latest = a if a.last_ms >= b.last_ms else b
    return RecentEntry(
        a.name,
        min(a.first_ms, b.first_ms),
        latest.last_ms,
        latest.note,
        tuple(x + y for x, y in zip(a.counters, b.counters, strict=True)),
    )
