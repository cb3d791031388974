"""Open-addressing key table in the segment: one fixed slot of shared words per key.

A slot is ``slot_words`` u64 words: the key's hash (0 = empty) followed by state words.  Keys are hashed with
xxh3_64 under the segment's random seed (a hash of 0 is stored as 1) and placed by linear probing.

Design rules, and why:

* **Claiming is one compare-and-swap** of the hash word from 0.  Slots are never reused, so the state words
  of an empty slot are still the zeros the segment was created with, and every user of the table treats
  all-zero state as "new key" (a rate limiter's zero TAT means a full bucket).  A claimed slot is therefore
  complete the instant it becomes visible: there is no half-initialised state for a process killed with
  SIGKILL to leave behind.  Two processes claiming one key at once both end up on the winner's slot.
* **No deletion, so slots never move**: a slot offset, once found, is valid for the segment's life and is
  cached per process, which makes the hot path a dict lookup.  Expiring idle keys would need a slot to
  change owner while another process may still be updating it under the old key, which single-word atomics
  cannot make safe; the table is sized for the distinct keys of one server run instead (rate-limit keys are
  configured virtual keys and a few globals), and a restart starts from a fresh segment.
* **Full is a counted, logged degradation, never an overwrite**: when no empty slot lies within
  ``MAX_PROBE`` slots of a new key's home, ``slot`` raises ``TableFull`` after adding 1 to the header's
  table-full counter and logging a warning at most once per ``FULL_LOG_INTERVAL_S`` per process.  The
  probe window keeps a lookup for a key that is not there bounded on a nearly full table; linear probing
  only runs that long past ~90% load.
* Keys are identified by their 64-bit hash alone: two keys would have to collide in xxh3_64 under a secret
  seed to share a slot, about a 1 in 4 * 10**9 chance
  among 100,000 keys.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Final

import xxhash

from ccr_fast.state.segment import TABLE_FULL_OFFSET, AtomicWords, Segment

__all__ = ["FULL_LOG_INTERVAL_S", "MAX_PROBE", "Key", "KeyTable", "TableFull"]

_LOG = logging.getLogger(__name__)

#: slots examined from a key's home slot before a new key counts as "table full"
MAX_PROBE: Final = 128
FULL_LOG_INTERVAL_S: Final = 60.0

#: keys are bytes or text (UTF-8 encoded for hashing)
Key = str | bytes


class TableFull(Exception):
    """No free slot for a new key (already counted in the segment header and logged)."""


class KeyTable:
    """The key table of one attached segment, as seen by this process."""

    __slots__ = ("_atomics", "_capacity", "_last_full_log", "_offset", "_seed", "_slot_bytes", "_slots")

    def __init__(self, segment: Segment) -> None:
        header = segment.header
        self._atomics = segment.atomics
        self._offset = header.table_offset
        self._capacity = header.table_capacity
        self._slot_bytes = header.slot_words * 8
        self._seed = header.seed
        #: key -> offset of its first state word; valid forever because slots never move
        self._slots: dict[Key, int] = {}
        self._last_full_log = -math.inf

    @property
    def atomics(self) -> AtomicWords:
        """The segment's atomics, for state-word updates on the offsets this table hands out."""
        return self._atomics

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def state_words(self) -> int:
        """State words per slot (after the hash word)."""
        return self._slot_bytes // 8 - 1

    @property
    def full_count(self) -> int:
        """How often, across all processes, a new key found no free slot."""
        return self._atomics.load(TABLE_FULL_OFFSET)

    def key_hash(self, key: Key) -> int:
        """The key's table hash: seeded xxh3_64, never 0 (0 marks an empty slot)."""
        digest = xxhash.xxh3_64_intdigest(key.encode() if isinstance(key, str) else key, self._seed)
        return digest or 1

    def find(self, key: Key) -> int | None:
        """Offset of ``key``'s first state word, or None when no process has claimed the key."""
        offset = self._slots.get(key)
        if offset is None:
            found = self._probe(key, claim=False)
            if found < 0:
                return None
            offset = self._slots[key] = found
        return offset

    def slot(self, key: Key) -> int:
        """Offset of ``key``'s first state word, claiming a slot for a new key; ``TableFull`` if none."""
        offset = self._slots.get(key)
        if offset is None:
            found = self._probe(key, claim=True)
            if found < 0:
                self._report_full()
                raise TableFull(f"no free slot for a new key among {self._capacity}")
            offset = self._slots[key] = found
        return offset

    def used(self) -> int:
        """Claimed slots, counted by a scan (O(capacity): for metrics scrapes, not request paths)."""
        load = self._atomics.load
        return sum(1 for slot in range(self._capacity) if load(self._offset + slot * self._slot_bytes) != 0)

    def _probe(self, key: Key, *, claim: bool) -> int:
        return self._atomics.probe(
            self._offset, self._capacity, self._slot_bytes, self.key_hash(key), MAX_PROBE, claim
        )

    def _report_full(self) -> None:
        total = self._atomics.add(TABLE_FULL_OFFSET, 1) + 1
        now = time.monotonic()
        if now - self._last_full_log >= FULL_LOG_INTERVAL_S:
            self._last_full_log = now
            _LOG.warning(
                "shared key table full (%d slots): new keys are not tracked (%d times so far); "
                "raise the table capacity",
                self._capacity,
                total,
            )
