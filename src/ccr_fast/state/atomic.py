"""Word-level atomics on a shared buffer, pure-Python twin (correct through a lock, not lock-free).

The compiled ``ccr_fast._ext.shm_atomic`` has the same API and results and is what production uses; get the
right one with ``ccr_fast._speedups.load("shm_atomic")``.  Both are held to the same tests (including real
multi-process hammering and a differential property test), so a change here must be mirrored in
``ext/shm_atomic.pyx``.

The contract both twins keep:

* A buffer is addressed in unsigned 64-bit words at byte offsets that are multiples of 8 and lie inside it;
  anything else raises ``ValueError`` (never a write out of bounds).  Values are ints in ``[0, 2**64)``;
  ``add`` takes a signed delta in ``[-2**63, 2**63)`` and wraps modulo ``2**64``.  Out-of-range values raise
  ``OverflowError``; after ``release()`` every call raises ``ValueError``.  Arguments are checked in the
  order the compiled twin converts them (values first, then the buffer, then offsets), so both raise the
  same exception for the same bad call.
* ``load``/``store``/``add`` (fetch-add: returns the value before) /``cas`` (compare-and-swap: True when it
  swapped) are atomic with respect to every other process using the same twin on the same memory.
* ``load_f64``/``store_f64``/``add_f64`` (returns the value after) /``cas_f64`` treat a word as an IEEE-754
  double in native byte order, with the same atomicity; ``cas_f64`` compares bit patterns, so ``0.0`` does
  not match ``-0.0`` and a NaN matches itself. A word never written reads as ``0.0``.
* ``probe`` is the open-addressing step of ``ccr_fast.state.table``: linear probing from ``key_hash`` over a
  power-of-two table whose slots start with a hash word (0 = empty).  It returns the byte offset of the
  slot's first state word, or -1 when the key is absent (``claim=False``) or there is no free slot within
  ``max_probe`` slots (``claim=True``).  A slot is claimed by one compare-and-swap of its hash word from 0,
  so a key occupies at most one slot even when several processes claim it at once.
* ``gcra`` is one step of the generic cell rate algorithm on a theoretical-arrival-time word: with
  ``new = max(tat, now) + increment`` the request fits when ``new - now <= limit``; then ``new`` is stored
  (unless ``increment`` is 0, which only asks) and the result is 0, else the result is the wait in the same
  unit, ``new - now - limit`` (always > 0).  A ``new`` past ``2**64 - 1`` raises ``OverflowError``.
* The seqlock word at ``offset`` packs ``generation << 32 | writer_pid``; the pid half is 0 when no write
  is in progress.  ``write_begin`` waits for it to be 0 and puts the caller's pid there, ``write_end`` bumps
  the generation and clears the pid (``RuntimeError`` if this process is not the writer), and
  ``snapshot(seq_offset, offsets)`` returns the words at ``offsets`` as they were between two writes.  A
  writer killed between ``write_begin`` and ``write_end`` would otherwise block everyone forever, so a
  waiter that has spun for a while checks whether the recorded pid is still alive and, when it is not,
  closes the write itself; the words that writer managed to store stay (each word is intact on its own,
  the record may mix old and new words), which is why the pid lives in the lock word.  A pid reused by a new
  process before anyone notices keeps the lock closed until that process exits; pids are handed out
  round-robin up to ``pid_max`` so this needs a wrap-around within the wait.

Why a lock here: Python cannot issue an atomic read-modify-write on shared memory, and a plain ``+=`` on
``struct`` words loses about a third of the updates under contention.  The lock has two layers because each
covers what the other cannot:

* ``flock`` on the segment's file excludes other processes.  Unlike a ``multiprocessing.Lock`` (a POSIX
  semaphore) the kernel drops it when its holder dies, so a worker killed with SIGKILL inside an operation
  cannot wedge the others, and it needs nothing set up before the workers were forked.  ``flock`` belongs to
  the open file description, which a forked child shares with its parent, so every child re-opens the file
  at fork (through ``/proc/self/fd`` so that works after the name was unlinked) and closes the inherited
  descriptor; otherwise parent and child would hold "the same" lock and not exclude each other, and a dead
  holder's lock would live on in its children.
* A ``threading.Lock`` excludes other threads of the same process, which share the descriptor and so the
  ``flock``.  It is replaced at fork too, in case another thread held it at that moment.

Without a ``lock_path`` only the thread lock is used: enough for a buffer private to one process (the
property tests use ``bytearray`` buffers).  Every process on one segment must use the same twin: the
compiled one never takes the ``flock``, so a mixed pair would lose updates; the segment header records
``SYNC_PROTOCOL`` and ``ccr_fast.state.segment`` refuses a mismatch.  Operations take about 2 µs here
against tens of nanoseconds compiled.
"""

from __future__ import annotations

import fcntl
import mmap
import operator
import os
import struct
import threading
import weakref
from collections.abc import Iterable
from types import TracebackType
from typing import Final

from ccr_fast.state.liveness import pid_alive

__all__ = ["SYNC_PROTOCOL", "Atomics", "WritableBuffer"]

#: what ``Atomics`` works on: a shared mapping in production, a ``bytearray`` in single-process tests
WritableBuffer = bytearray | memoryview | mmap.mmap

#: recorded in the segment header; 1 is the compiled twin's hardware atomics, 2 this module's flock
SYNC_PROTOCOL: Final = 2

_WORD: Final = struct.Struct("=Q")
_DOUBLE: Final = struct.Struct("=d")
_U64_MAX: Final = (1 << 64) - 1
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1
_PID_MASK: Final = 0xFFFFFFFF
_GENERATION_MASK: Final = 0xFFFFFFFF
#: a waiter checks whether the seqlock's writer is still alive once per this many failed attempts
_SPINS_PER_LIVENESS_CHECK: Final = 1024


class _ProcessLock:
    """A thread lock plus ``flock`` on a descriptor private to this process (see the module docstring)."""

    __slots__ = ("__weakref__", "_fd", "_thread_lock")

    def __init__(self, path: str | None) -> None:
        self._thread_lock = threading.Lock()
        self._fd = -1 if path is None else os.open(path, os.O_RDWR | os.O_CLOEXEC)
        _LOCKS.add(self)

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._fd >= 0:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def reopen_after_fork(self) -> None:
        """In a fork child: a fresh thread lock and an open file description of our own."""
        self._thread_lock = threading.Lock()
        if self._fd >= 0:
            fresh = os.open(f"/proc/self/fd/{self._fd}", os.O_RDWR | os.O_CLOEXEC)
            os.close(self._fd)
            self._fd = fresh

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        _LOCKS.discard(self)


_LOCKS: weakref.WeakSet[_ProcessLock] = weakref.WeakSet()


def _reopen_locks_after_fork() -> None:
    for lock in list(_LOCKS):
        lock.reopen_after_fork()


os.register_at_fork(after_in_child=_reopen_locks_after_fork)


def _u64(value: int) -> int:
    value = operator.index(value)
    if not 0 <= value <= _U64_MAX:
        raise OverflowError(f"{value} is not an unsigned 64-bit value")
    return value


def _closed_generation(word: int) -> int:
    """The seqlock word after a finished write: next generation, no writer."""
    return (((word >> 32) + 1) & _GENERATION_MASK) << 32


class Atomics:
    """Atomic u64 operations on ``buffer`` (writable, contiguous) at byte offsets."""

    __slots__ = ("_lock", "_size", "_view")

    def __init__(self, buffer: WritableBuffer, lock_path: str | None = None) -> None:
        view = memoryview(buffer)
        if view.readonly:
            view.release()
            raise BufferError("Object is not writable.")
        self._view: memoryview | None = view.cast("B")
        view.release()
        self._size = self._view.nbytes
        self._lock = _ProcessLock(lock_path)

    @property
    def size(self) -> int:
        """Length of the buffer in bytes."""
        return self._size

    def release(self) -> None:
        """Give the buffer back (so its owner can close it) and the lock file; later calls raise."""
        if self._view is not None:
            self._view.release()
            self._view = None
            self._lock.close()

    def _live(self) -> memoryview:
        if self._view is None:
            raise ValueError("atomics released")
        return self._view

    def _offset(self, offset: int) -> int:
        offset = operator.index(offset)
        if offset < 0 or offset > self._size - 8 or offset & 7:
            raise ValueError(f"offset {offset} is not an aligned word inside {self._size} bytes")
        return offset

    def load(self, offset: int) -> int:
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            return int(_WORD.unpack_from(view, offset)[0])

    def store(self, offset: int, value: int) -> None:
        value = _u64(value)
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            _WORD.pack_into(view, offset, value)

    def add(self, offset: int, delta: int) -> int:
        delta = operator.index(delta)
        if not _I64_MIN <= delta <= _I64_MAX:
            raise OverflowError(f"{delta} is not a signed 64-bit value")
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            old = int(_WORD.unpack_from(view, offset)[0])
            _WORD.pack_into(view, offset, (old + delta) & _U64_MAX)
        return old

    def cas(self, offset: int, expected: int, new: int) -> bool:
        expected = _u64(expected)
        new = _u64(new)
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            if _WORD.unpack_from(view, offset)[0] != expected:
                return False
            _WORD.pack_into(view, offset, new)
        return True

    # --- the same words read as IEEE-754 doubles (bit patterns, so -0.0 and NaNs round-trip) ---------------

    def load_f64(self, offset: int) -> float:
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            return float(_DOUBLE.unpack_from(view, offset)[0])

    def store_f64(self, offset: int, value: float) -> None:
        value = float(value)
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            _DOUBLE.pack_into(view, offset, value)

    def add_f64(self, offset: int, delta: float) -> float:
        """Add ``delta`` to the double at ``offset``; returns the new value."""
        delta = float(delta)
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            new = float(_DOUBLE.unpack_from(view, offset)[0]) + delta
            _DOUBLE.pack_into(view, offset, new)
        return new

    def cas_f64(self, offset: int, expected: float, new: float) -> bool:
        """Compare-and-swap on the bit pattern: ``expected`` must match bit for bit (0.0 is not -0.0)."""
        want = _DOUBLE.pack(float(expected))
        new = float(new)
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            if view[offset : offset + 8] != want:
                return False
            _DOUBLE.pack_into(view, offset, new)
        return True

    def probe(
        self,
        table_offset: int,
        capacity: int,
        slot_bytes: int,
        key_hash: int,
        max_probe: int,
        claim: bool,
    ) -> int:
        table_offset = operator.index(table_offset)
        capacity = operator.index(capacity)
        slot_bytes = operator.index(slot_bytes)
        key_hash = _u64(key_hash)
        max_probe = operator.index(max_probe)
        view = self._live()
        if capacity < 1 or capacity & (capacity - 1):
            raise ValueError(f"capacity {capacity} is not a power of two")
        if slot_bytes < 16 or slot_bytes & 7:
            raise ValueError(f"slot size {slot_bytes} is not a hash word plus whole state words")
        if table_offset < 0 or table_offset & 7 or capacity > (self._size - table_offset) // slot_bytes:
            raise ValueError(f"table at {table_offset} ({capacity} x {slot_bytes} B) is outside the buffer")
        if key_hash == 0:
            raise ValueError("key hash 0 marks an empty slot")
        if max_probe < 1:
            raise ValueError("max_probe must be at least 1")
        mask = capacity - 1
        start = key_hash & mask
        with self._lock:
            for n in range(min(max_probe, capacity)):
                slot = table_offset + ((start + n) & mask) * slot_bytes
                current = _WORD.unpack_from(view, slot)[0]
                if current == 0:
                    if not claim:
                        return -1
                    _WORD.pack_into(view, slot, key_hash)
                    return slot + 8
                if current == key_hash:
                    return slot + 8
        return -1

    def gcra(self, offset: int, now: int, increment: int, limit: int) -> int:
        now = _u64(now)
        increment = _u64(increment)
        limit = _u64(limit)
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            tat = _WORD.unpack_from(view, offset)[0]
            new_tat = max(tat, now) + increment
            if new_tat > _U64_MAX:
                raise OverflowError("theoretical arrival time overflows 64 bits")
            if new_tat - now > limit:
                return int(new_tat - now - limit)
            if increment:
                _WORD.pack_into(view, offset, new_tat)
        return 0

    def write_begin(self, offset: int) -> None:
        view = self._live()
        offset = self._offset(offset)
        me = os.getpid()
        spins = 0
        while True:
            with self._lock:
                word = _WORD.unpack_from(view, offset)[0]
                if word & _PID_MASK == 0:
                    _WORD.pack_into(view, offset, word | me)
                    return
            spins += 1
            view = self._wait_for_writer(offset, word, spins)

    def write_end(self, offset: int) -> None:
        view = self._live()
        offset = self._offset(offset)
        with self._lock:
            word = _WORD.unpack_from(view, offset)[0]
            if word & _PID_MASK != os.getpid():
                raise RuntimeError(f"the seqlock at offset {offset} is not held by this process")
            _WORD.pack_into(view, offset, _closed_generation(word))

    def snapshot(self, seq_offset: int, offsets: Iterable[int]) -> tuple[int, ...]:
        """The words at ``offsets`` as of one moment between writes of the seqlock at ``seq_offset``.

        Writers store each word under the lock but release it between stores, so holding the lock for the
        whole read only guarantees a consistent record once no write is in progress.
        """
        view = self._live()
        seq_offset = self._offset(seq_offset)
        words = [self._offset(offset) for offset in offsets]
        spins = 0
        while True:
            with self._lock:
                seq = _WORD.unpack_from(view, seq_offset)[0]
                if seq & _PID_MASK == 0:
                    return tuple(int(_WORD.unpack_from(view, word)[0]) for word in words)
            spins += 1
            view = self._wait_for_writer(seq_offset, seq, spins)

    def _wait_for_writer(self, offset: int, seen: int, spins: int) -> memoryview:
        """Back off after a failed attempt; close the write of a dead writer once in a while."""
        if spins % _SPINS_PER_LIVENESS_CHECK == 0 and not pid_alive(seen & _PID_MASK):
            self.cas(offset, seen, _closed_generation(seen))
        else:
            os.sched_yield()
        return self._live()
