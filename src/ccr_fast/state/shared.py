"""The per-worker handle on the server's shared state: the segment, its key table and rate limiter,
and this worker's slot.

The Granian master calls :meth:`SharedState.create` before forking and passes the segment name on in
``CCR_FAST_STATE_SEGMENT``; each worker calls :meth:`SharedState.attach`. Worker slots are claimed in
the key table (one word holding the owner's pid), so a respawned worker takes the slot of a dead one
and per-worker gauges can be reset for workers that died.
"""

from __future__ import annotations

import itertools
import logging
import os

from ccr_fast.state.gcra import RateLimiter
from ccr_fast.state.liveness import pid_alive
from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.table import KeyTable

ENV_SEGMENT = "CCR_FAST_STATE_SEGMENT"
PREFIX = "ccr-fast"
#: live worker processes one segment can serve (respawned workers reuse dead workers' slots)
MAX_WORKER_SLOTS = 256
#: words per key-table slot: the key hash and three state words
SLOT_WORDS = 4

log = logging.getLogger("ccr_fast.state")
_local_ids = itertools.count()


class SharedState:
    __slots__ = ("limiter", "segment", "table", "worker_slot")

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.table = KeyTable(segment)
        self.limiter = RateLimiter(self.table)
        self.worker_slot = -1

    @classmethod
    def create(cls, *, table_capacity: int = 65536, prefix: str = PREFIX) -> SharedState:
        """In the master, before the workers start: removes segments of dead masters, creates ours."""
        Segment.cleanup_stale(prefix)
        segment = Segment.create(Layout(table_capacity=table_capacity, slot_words=SLOT_WORDS), prefix=prefix)
        return cls(segment)

    @classmethod
    def attach(cls, name: str) -> SharedState:
        """In a worker: attach the master's segment and claim a worker slot."""
        state = cls(Segment.attach(name))
        state.claim_worker_slot()
        return state

    @classmethod
    def local(cls, *, table_capacity: int = 4096) -> SharedState:
        """A private segment for one process (tests, embedded use). Its file is removed at once — the
        mapping lives on until the process ends — so nothing is left in /dev/shm, however it ends."""
        state = cls.create(table_capacity=table_capacity, prefix=f"{PREFIX}-local{next(_local_ids)}")
        state.claim_worker_slot()
        state.segment.unlink()
        return state

    def worker_pid_offset(self, slot: int) -> int:
        """Offset of the word holding the pid that owns worker slot ``slot`` (0 = free)."""
        return self.table.slot(f"__worker_slot__/{slot}") + 8

    def claim_worker_slot(self) -> int:
        """Take the first free slot, or one whose owner died; raises if every slot is live."""
        atomics = self.table.atomics
        pid = os.getpid()
        for slot in range(MAX_WORKER_SLOTS):
            off = self.worker_pid_offset(slot)
            owner = atomics.load(off)
            if owner == pid:
                self.worker_slot = slot
                return slot
            if (owner == 0 or not pid_alive(owner)) and atomics.cas(off, owner, pid):
                self.worker_slot = slot
                return slot
        raise RuntimeError(f"all {MAX_WORKER_SLOTS} worker slots of the shared state are in use")

    def worker_slots(self) -> dict[int, int]:
        """slot -> owner pid, for every claimed slot (owners may have died since)."""
        atomics = self.table.atomics
        out: dict[int, int] = {}
        for slot in range(MAX_WORKER_SLOTS):
            off = self.table.find(f"__worker_slot__/{slot}")
            if off is None:
                break
            pid = atomics.load(off + 8)
            if pid:
                out[slot] = pid
        return out

    def close(self) -> None:
        self.segment.close()

    def unlink(self) -> None:
        """Master (or a local state's owner) at exit."""
        self.segment.unlink()
