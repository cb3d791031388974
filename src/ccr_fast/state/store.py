"""The resilience :class:`~ccr_fast.resilience.store.StateStore` on shared memory.

Each key gets one 8-byte word in the segment's key table holding an IEEE-754 double, so breaker states,
in-flight counts and latency averages are the same in every worker. ``add`` on a double is a CAS loop
over the bit pattern; everything else is a single atomic word operation. A key never written reads as
0.0 because a freshly claimed slot is all zero bits. The double arithmetic (the CAS loop of ``add``
included) runs inside the atomics twin: one call per operation.
"""

from __future__ import annotations

import logging

from ccr_fast.state.table import KeyTable, TableFull

log = logging.getLogger("ccr_fast.state")


class ShmStore:
    __slots__ = ("_atomics", "_offsets", "_table")

    def __init__(self, table: KeyTable) -> None:
        self._table = table
        self._atomics = table.atomics
        self._offsets: dict[str, int] = {}

    def _offset(self, key: str) -> int:
        off = self._offsets.get(key)
        if off is None:
            # the slot's first state word (the word after the key hash)
            off = self._table.slot("rs/" + key) + 8
            self._offsets[key] = off
        return off

    # Each method tries the cached offset first: these run a dozen times per request.

    def get(self, key: str) -> float:
        off = self._offsets.get(key)
        if off is None:
            try:
                off = self._offset(key)
            except TableFull:
                return 0.0
        value: float = self._atomics.load_f64(off)
        return value

    def set(self, key: str, value: float) -> None:
        off = self._offsets.get(key)
        if off is None:
            try:
                off = self._offset(key)
            except TableFull:
                log.debug("state table full; %s not stored", key)
                return
        self._atomics.store_f64(off, value)

    def add(self, key: str, delta: float) -> float:
        off = self._offsets.get(key)
        if off is None:
            try:
                off = self._offset(key)
            except TableFull:
                return delta
        value: float = self._atomics.add_f64(off, delta)
        return value

    def cas(self, key: str, expected: float, new: float) -> bool:
        off = self._offsets.get(key)
        if off is None:
            try:
                off = self._offset(key)
            except TableFull:
                return False
        return bool(self._atomics.cas_f64(off, expected, new))
