# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Word-level atomics on a shared buffer, compiled and lock-free (twin: ``ccr_fast.state.atomic``).

The contract (offsets, value ranges, ``probe``, ``gcra`` and the seqlock word) is written down in the twin's
module docstring and both twins are held to the same tests.  This version issues GCC/Clang ``__atomic``
builtins straight on the mapped memory, so an update is one locked instruction (tens of nanoseconds) and
needs no lock that a killed process could leave held.  The loops that would otherwise cross the
Python/C boundary once per step (table probing, the GCRA compare-and-swap loop, the seqlock read) run here
in full for the same reason.

Memory order: loads acquire, stores release, read-modify-writes acquire-release.  That is what the seqlock
needs (a reader's word loads cannot move past its closing sequence load; a writer's stores cannot move
before its claim or after its release) and on x86-64 it compiles to plain moves plus the locked
read-modify-writes, so nothing pays for sequential consistency it does not use.

``lock_path`` is accepted for parity with the twin and ignored: there is no lock.
"""

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.errno cimport ESRCH, errno
from libc.stdint cimport int64_t, uint64_t, uintptr_t
from posix.signal cimport kill
from posix.types cimport pid_t
from posix.unistd cimport getpid

__all__ = ["SYNC_PROTOCOL", "Atomics"]

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline uint64_t ccr_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void ccr_store(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline uint64_t ccr_fetch_add(uint64_t *p, uint64_t v) {
        return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
    }
    static inline int ccr_cas(uint64_t *p, uint64_t *expected, uint64_t desired) {
        return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    static inline double ccr_f64(uint64_t bits) { double v; memcpy(&v, &bits, 8); return v; }
    static inline uint64_t ccr_bits(double v) { uint64_t bits; memcpy(&bits, &v, 8); return bits; }
    """
    uint64_t ccr_load(const uint64_t* p) nogil
    void ccr_store(uint64_t* p, uint64_t v) nogil
    uint64_t ccr_fetch_add(uint64_t* p, uint64_t v) nogil
    bint ccr_cas(uint64_t* p, uint64_t* expected, uint64_t desired) nogil
    double ccr_f64(uint64_t bits) nogil
    uint64_t ccr_bits(double v) nogil

#: recorded in the segment header; 1 is these hardware atomics, 2 the twin's flock
SYNC_PROTOCOL = 1

cdef uint64_t PID_MASK = 0xFFFFFFFFULL
cdef uint64_t U64_MAX = 0xFFFFFFFFFFFFFFFFULL
cdef unsigned long SPINS_BEFORE_YIELD = 64
cdef unsigned long SPINS_PER_LIVENESS_CHECK = 1024


cdef inline uint64_t _closed_generation(uint64_t word) noexcept nogil:
    """The seqlock word after a finished write: next generation (wrapping in 32 bits), no writer."""
    return ((word >> 32) + 1) << 32


cdef bint _alive(pid_t pid) noexcept nogil:
    return kill(pid, 0) == 0 or errno != ESRCH


cdef class Atomics:
    """Atomic u64 operations on ``buffer`` (writable, contiguous, 8-byte aligned) at byte offsets."""

    cdef Py_buffer _view
    cdef bint _held  # _view is ours to release (its buf may be NULL for an empty buffer)
    cdef char* _base
    cdef Py_ssize_t _size

    def __cinit__(self, buffer, lock_path=None):
        PyObject_GetBuffer(buffer, &self._view, PyBUF_WRITABLE)
        if (<uintptr_t>self._view.buf) & 7:
            PyBuffer_Release(&self._view)
            raise ValueError("buffer is not 8-byte aligned")
        self._held = True
        self._base = <char*>self._view.buf
        self._size = self._view.len

    def __dealloc__(self):
        if self._held:
            PyBuffer_Release(&self._view)

    @property
    def size(self):
        """Length of the buffer in bytes."""
        return self._size

    def release(self):
        """Give the buffer back (so its owner can close it); later calls raise."""
        if self._held:
            self._held = False
            self._base = NULL
            PyBuffer_Release(&self._view)

    cdef inline uint64_t* _word(self, Py_ssize_t offset) except NULL:
        if not self._held:
            raise ValueError("atomics released")
        if offset < 0 or offset > self._size - 8 or offset & 7:
            raise ValueError(f"offset {offset} is not an aligned word inside {self._size} bytes")
        return <uint64_t*>(self._base + offset)

    def load(self, Py_ssize_t offset):
        return ccr_load(self._word(offset))

    def store(self, Py_ssize_t offset, uint64_t value):
        ccr_store(self._word(offset), value)

    def add(self, Py_ssize_t offset, int64_t delta):
        return ccr_fetch_add(self._word(offset), <uint64_t>delta)

    def cas(self, Py_ssize_t offset, uint64_t expected, uint64_t new):
        return ccr_cas(self._word(offset), &expected, new)

    # --- the same words read as IEEE-754 doubles (bit patterns, so -0.0 and NaNs round-trip) -------------

    def load_f64(self, Py_ssize_t offset):
        return ccr_f64(ccr_load(self._word(offset)))

    def store_f64(self, Py_ssize_t offset, double value):
        ccr_store(self._word(offset), ccr_bits(value))

    def add_f64(self, Py_ssize_t offset, double delta):
        cdef uint64_t* word = self._word(offset)
        cdef uint64_t old = ccr_load(word)
        cdef double new
        while True:
            new = ccr_f64(old) + delta
            if ccr_cas(word, &old, ccr_bits(new)):  # on failure ``old`` holds the current bits
                return new

    def cas_f64(self, Py_ssize_t offset, double expected, double new):
        cdef uint64_t want = ccr_bits(expected)
        return ccr_cas(self._word(offset), &want, ccr_bits(new))

    def probe(
        self,
        Py_ssize_t table_offset,
        Py_ssize_t capacity,
        Py_ssize_t slot_bytes,
        uint64_t key_hash,
        Py_ssize_t max_probe,
        bint claim,
    ):
        if not self._held:
            raise ValueError("atomics released")
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
        cdef uint64_t mask = <uint64_t>capacity - 1
        cdef uint64_t start = key_hash & mask
        cdef Py_ssize_t n
        cdef Py_ssize_t slot
        cdef uint64_t* word
        cdef uint64_t current
        for n in range(max_probe if max_probe < capacity else capacity):
            slot = table_offset + <Py_ssize_t>((start + <uint64_t>n) & mask) * slot_bytes
            word = <uint64_t*>(self._base + slot)
            current = ccr_load(word)
            if current == 0:
                if not claim:
                    return -1
                if ccr_cas(word, &current, key_hash):
                    return slot + 8
                # lost the race: ``current`` now holds the winner's hash, which may be ours
            if current == key_hash:
                return slot + 8
        return -1

    def gcra(self, Py_ssize_t offset, uint64_t now, uint64_t increment, uint64_t limit):
        cdef uint64_t* word = self._word(offset)
        cdef uint64_t tat = ccr_load(word)
        cdef uint64_t start
        cdef uint64_t new_tat
        while True:
            start = tat if tat > now else now
            if increment > U64_MAX - start:
                raise OverflowError("theoretical arrival time overflows 64 bits")
            new_tat = start + increment
            if new_tat - now > limit:
                return new_tat - now - limit
            if increment == 0 or ccr_cas(word, &tat, new_tat):
                return 0
            # another process moved the TAT first: ``tat`` holds its value, decide again

    def write_begin(self, Py_ssize_t offset):
        cdef uint64_t me = <uint64_t>getpid()
        cdef uint64_t word = ccr_load(self._word(offset))
        cdef unsigned long spins = 0
        while True:
            if word & PID_MASK == 0:
                if ccr_cas(self._word(offset), &word, word | me):
                    return
                continue
            spins += 1
            self._wait_for_writer(offset, word, spins)
            word = ccr_load(self._word(offset))

    def write_end(self, Py_ssize_t offset):
        cdef uint64_t* seq = self._word(offset)
        cdef uint64_t word = ccr_load(seq)
        if word & PID_MASK != <uint64_t>getpid():
            raise RuntimeError(f"the seqlock at offset {offset} is not held by this process")
        ccr_store(seq, _closed_generation(word))

    def snapshot(self, Py_ssize_t seq_offset, offsets):
        """The words at ``offsets`` as of one moment between writes of the seqlock at ``seq_offset``."""
        self._word(seq_offset)
        cdef list words = [offset for offset in offsets]
        cdef Py_ssize_t n = len(words)
        cdef Py_ssize_t i
        cdef Py_ssize_t* at = <Py_ssize_t*>PyMem_Malloc((n or 1) * sizeof(Py_ssize_t))
        cdef uint64_t* values = <uint64_t*>PyMem_Malloc((n or 1) * sizeof(uint64_t))
        cdef uint64_t before
        cdef unsigned long spins = 0
        try:
            if at == NULL or values == NULL:
                raise MemoryError()
            for i in range(n):
                at[i] = words[i]
                self._word(at[i])
            while True:
                # checked again each round: waiting releases the GIL, so another thread may have released us
                before = ccr_load(self._word(seq_offset))
                if before & PID_MASK == 0:
                    for i in range(n):
                        values[i] = ccr_load(<uint64_t*>(self._base + at[i]))
                    if ccr_load(<uint64_t*>(self._base + seq_offset)) == before:
                        return tuple([values[i] for i in range(n)])
                    continue
                spins += 1
                self._wait_for_writer(seq_offset, before, spins)
        finally:
            PyMem_Free(at)
            PyMem_Free(values)

    cdef int _wait_for_writer(self, Py_ssize_t offset, uint64_t seen, unsigned long spins) except -1:
        """Back off after a failed attempt; close the write of a dead writer once in a while."""
        cdef uint64_t expected = seen
        if spins % SPINS_PER_LIVENESS_CHECK == 0 and not _alive(<pid_t>(seen & PID_MASK)):
            ccr_cas(self._word(offset), &expected, _closed_generation(seen))
        elif spins > SPINS_BEFORE_YIELD:
            with nogil:
                sched_yield()
        return 0
