"""The resilience :class:`~ccr_fast.resilience.store.StateStore` on shared memory.

Each key gets one 8-byte word in the segment's key table holding an IEEE-754 double, so breaker states,
in-flight counts and latency averages are the same in every worker. ``add`` on a double is a CAS loop
over the bit pattern; everything else is a single atomic word operation. A key never written reads as
0.0 because a freshly claimed slot is all zero bits.
"""

from __future__ import annotations

import logging
import struct

from ccr_fast.state.table import KeyTable, TableFull

_pack = struct.Struct("<d").pack
_unpack = struct.Struct("<Q").unpack
_pack_bits = struct.Struct("<Q").pack
_unpack_double = struct.Struct("<d").unpack

log = logging.getLogger("ccr_fast.state")


def _bits(value: float) -> int:
    bits: int = _unpack(_pack(value))[0]
    return bits


def _float(bits: int) -> float:
    value: float = _unpack_double(_pack_bits(bits))[0]
    return value


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

    def get(self, key: str) -> float:
        try:
            return _float(self._atomics.load(self._offset(key)))
        except TableFull:
            return 0.0

    def set(self, key: str, value: float) -> None:
        try:
            self._atomics.store(self._offset(key), _bits(value))
        except TableFull:
            log.debug("state table full; %s not stored", key)

    def add(self, key: str, delta: float) -> float:
        try:
            off = self._offset(key)
        except TableFull:
            return delta
        atomics = self._atomics
        while True:
            old = atomics.load(off)
            new = _float(old) + delta
            if atomics.cas(off, old, _bits(new)):
                return new

    def cas(self, key: str, expected: float, new: float) -> bool:
        try:
            off = self._offset(key)
        except TableFull:
            return False
        return bool(self._atomics.cas(off, _bits(expected), _bits(new)))
