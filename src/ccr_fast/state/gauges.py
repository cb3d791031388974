"""Gauges kept per worker (in-flight requests, open streams, queue depth) that die with their worker.

A counter may keep what a dead worker counted; a gauge must not: a worker killed with ten streams open
would otherwise leave "10 active streams" in every scrape until the server restarts.  So each worker adds
to words of its own (its ``worker_slot``), readers add the live workers' words up, and the words of a dead
worker are zeroed.

Each gauge word carries its owner in the same word as its value::

    word = owner pid << 32 | (value + 2**31)           # 0 = no owner

* ``bind`` takes this worker's words for its pid in one compare-and-swap each, throwing away whatever a
  dead predecessor in the same slot left (``SharedState`` hands out a slot only when its previous owner
  is dead).
* ``add`` is one fetch-add; the bias keeps a transient negative value (a decrement seen before its
  increment) from borrowing into the pid half, as long as a gauge stays within +-2**31.
* A reader (the next scrape, or the master when it sees a worker exit: ``reap``) zeroes a word whose
  owner pid is no longer alive with a compare-and-swap from the exact word it read.  The value and the
  owner change together, so a reaper can never wipe the counts of a new worker that took the slot in the
  meantime: that worker's own compare-and-swap changed the word, and the reaper's fails.

A pid reused by an unrelated process before anyone reaped keeps the old counts visible until that process
exits or a new worker takes the slot; Linux hands pids out round-robin up to ``pid_max``, so this needs
the pid space to wrap first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final

from ccr_fast.state.blocks import claim_block, find_block
from ccr_fast.state.liveness import pid_alive
from ccr_fast.state.table import KeyTable

__all__ = ["WorkerGauges"]

_PID_SHIFT: Final = 32
_LOW_MASK: Final = (1 << _PID_SHIFT) - 1
_BIAS: Final = 1 << 31


class WorkerGauges:
    """``fields`` gauges under ``key``, one block of words per worker slot."""

    __slots__ = ("_add", "_atomics", "_blocks", "_fields", "_key", "_mine", "_table")

    def __init__(self, table: KeyTable, key: bytes, fields: int) -> None:
        if fields < 1:
            raise ValueError(f"need at least one gauge, not {fields}")
        self._table = table
        self._atomics = table.atomics
        self._add = table.atomics.add
        self._key = key
        self._fields = fields
        #: this worker's words once bound
        self._mine: tuple[int, ...] = ()
        #: worker slot -> offsets of its words, for readers
        self._blocks: dict[int, tuple[int, ...]] = {}

    @property
    def bound(self) -> bool:
        return bool(self._mine)

    def bind(self, worker_slot: int) -> None:
        """Own the words of ``worker_slot`` for this process (its values start at 0)."""
        if worker_slot < 0:
            raise ValueError(f"worker slot {worker_slot} is not a claimed slot")
        offsets = claim_block(self._table, b"%s/%d" % (self._key, worker_slot), self._fields)
        atomics = self._atomics
        owned = os.getpid() << _PID_SHIFT
        for offset in offsets:
            while True:
                word = atomics.load(offset)
                if (word & ~_LOW_MASK) == owned or atomics.cas(offset, word, owned | _BIAS):
                    break
        self._mine = offsets

    def add(self, field: int, delta: int) -> None:
        """Move gauge ``field`` of this worker by ``delta`` (``bind`` first)."""
        self._add(self._mine[field], delta)

    def totals(self, worker_slots: Iterable[int]) -> list[int]:
        """Each gauge summed over the live owners of ``worker_slots``; dead owners' words are zeroed."""
        return self._scan(worker_slots)[0]

    def reap(self, worker_slots: Iterable[int]) -> int:
        """Zero the words of dead owners among ``worker_slots``; returns how many words were zeroed."""
        return self._scan(worker_slots)[1]

    def _scan(self, worker_slots: Iterable[int]) -> tuple[list[int], int]:
        atomics = self._atomics
        totals = [0] * self._fields
        reaped = 0
        liveness: dict[int, bool] = {}
        for slot in worker_slots:
            offsets = self._blocks.get(slot)
            if offsets is None:
                found = find_block(self._table, b"%s/%d" % (self._key, slot), self._fields)
                if found is None:
                    continue
                offsets = self._blocks[slot] = found
            for field, offset in enumerate(offsets):
                word = atomics.load(offset)
                pid = word >> _PID_SHIFT
                if not pid:
                    continue
                alive = liveness.get(pid)
                if alive is None:
                    alive = liveness[pid] = pid_alive(pid)
                if alive:
                    totals[field] += (word & _LOW_MASK) - _BIAS
                elif atomics.cas(offset, word, 0):
                    reaped += 1
        return totals, reaped
