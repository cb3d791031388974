"""The shared-memory segment: created by the master before workers start, attached by each worker.

A segment is one file in ``/dev/shm`` named ``<prefix>-<master pid>-state``, mapped shared by every process.
Its first 128 bytes are a header that says what is where, so a worker never has to be told the layout
again and cannot silently read a layout it was not built for:

=======  ==================  ==============================================================================
offset   word                meaning
=======  ==================  ==============================================================================
0        magic               ``MAGIC``; written last, so a creator that died half-way leaves no valid header
8        layout version      ``LAYOUT_VERSION``; bumped whenever any offset or word meaning changes
16       size                total bytes (must equal the file's size)
24       creator pid         the master that owns the segment (and whose pid is in the name)
32       sync protocol       which atomics twin wrote it (``SYNC_PROTOCOL``); all processes must agree
40       hash seed           random per segment: the key table's xxh3 seed, so keys cannot be chosen to
                             collide on purpose
48, 56   names offset, len   the counter names as a JSON array (UTF-8)
64..80   table               offset, capacity (a power of two), words per slot
88..104  counters            offset, number of shards, bytes per shard
112      table full          how often a new key found no free slot (``TABLE_FULL_OFFSET``)
=======  ==================  ==============================================================================

Regions start on 64-byte cache lines, and each counter shard is padded to whole cache lines so two workers
never write the same line.

Why the segment is mapped by hand rather than through ``multiprocessing.shared_memory``: on Python 3.11
``SharedMemory`` registers every attach with the resource tracker, and depending on how the worker was
started that either unlinks the segment when a worker exits or, once unregistered again, drops the
master's own registration from the tracker it shares with its forked workers.  Opening the file with
``os.open`` and mapping it with ``mmap`` involves no tracker at all.  Crash cleanup does not need one: the
master removes segments whose embedded pid is dead when it starts (``Segment.cleanup_stale``), and a
segment left by an earlier process that had the master's own pid (common in containers, where the master
is often pid 1) is replaced by ``create``.  The size comes from a ``Layout`` rather than a byte count so
the header and the mapping cannot disagree.  This is Linux-only, like the rest of the server.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Final, Protocol

import orjson

from ccr_fast import _speedups
from ccr_fast.state.liveness import pid_alive

__all__ = [
    "HEADER_BYTES",
    "LAYOUT_VERSION",
    "MAGIC",
    "SHM_DIR",
    "TABLE_FULL_OFFSET",
    "AtomicWords",
    "Header",
    "Layout",
    "Segment",
    "SegmentError",
]

_LOG = logging.getLogger(__name__)

SHM_DIR: Final = Path("/dev/shm")
MAGIC: Final = int.from_bytes(b"ccrfSHM\x00", "little")
LAYOUT_VERSION: Final = 1
HEADER_BYTES: Final = 128
TABLE_FULL_OFFSET: Final = 112
_CACHE_LINE: Final = 64
_HEADER: Final = struct.Struct("=15Q")
_PREFIX: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")

#: names of segments this process created and has not unlinked: an existing file with our pid in its name
#: that is not in here was left by an earlier process with the same pid
_CREATED_HERE: set[str] = set()


class SegmentError(Exception):
    """A segment that cannot be created or is not one this build can use (message says why)."""


class AtomicWords(Protocol):
    """The API both atomics twins implement (``ccr_fast.state.atomic`` documents the contract)."""

    @property
    def size(self) -> int: ...
    def release(self) -> None: ...
    def load(self, offset: int) -> int: ...
    def store(self, offset: int, value: int) -> None: ...
    def add(self, offset: int, delta: int) -> int: ...
    def cas(self, offset: int, expected: int, new: int) -> bool: ...
    def load_f64(self, offset: int) -> float: ...
    def store_f64(self, offset: int, value: float) -> None: ...
    def add_f64(self, offset: int, delta: float) -> float: ...
    def cas_f64(self, offset: int, expected: float, new: float) -> bool: ...
    def probe(
        self, table_offset: int, capacity: int, slot_bytes: int, key_hash: int, max_probe: int, claim: bool
    ) -> int: ...
    def gcra(self, offset: int, now: int, increment: int, limit: int) -> int: ...
    def write_begin(self, offset: int) -> None: ...
    def write_end(self, offset: int) -> None: ...
    def snapshot(self, seq_offset: int, offsets: Iterable[int]) -> tuple[int, ...]: ...


def _align(n: int, to: int = _CACHE_LINE) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True, slots=True)
class Layout:
    """What the master asks for; ``Header.plan`` turns it into offsets."""

    #: key table slots; a power of two.  Linear probing stays short below ~75% full, so size it at about
    #: twice the number of distinct keys expected over the segment's life (slots are never freed)
    table_capacity: int = 4096
    #: words per slot: the key hash plus state words (the rate limiter uses the first state word)
    slot_words: int = 2
    #: counter names, fixed for the segment's life; a name's position is its slot id
    counter_names: tuple[str, ...] = ()
    #: one shard per worker (index = worker number), so increments never contend
    counter_shards: int = 1

    def __post_init__(self) -> None:
        cap = self.table_capacity
        if not 1 <= cap <= 1 << 30 or cap & (cap - 1):
            raise ValueError(f"table_capacity must be a power of two between 1 and 2**30, not {cap}")
        if not 2 <= self.slot_words <= 64:
            raise ValueError(f"slot_words must be between 2 and 64, not {self.slot_words}")
        if not 1 <= self.counter_shards <= 4096:
            raise ValueError(f"counter_shards must be between 1 and 4096, not {self.counter_shards}")
        names = self.counter_names
        if any(not isinstance(name, str) or not name for name in names):
            raise ValueError("counter names must be non-empty strings")
        if len(set(names)) != len(names):
            raise ValueError("counter names must be unique")


@dataclass(frozen=True, slots=True)
class Header:
    """The decoded header of a segment (immutable after creation except the table-full counter)."""

    size: int
    creator_pid: int
    sync_protocol: int
    seed: int
    names_offset: int
    names_length: int
    table_offset: int
    table_capacity: int
    slot_words: int
    counters_offset: int
    counter_shards: int
    shard_stride: int
    counter_names: tuple[str, ...]

    @classmethod
    def plan(cls, layout: Layout, *, creator_pid: int, sync_protocol: int, seed: int) -> Header:
        names = orjson.dumps(list(layout.counter_names))
        table_offset = _align(HEADER_BYTES + len(names))
        counters_offset = _align(table_offset + layout.table_capacity * layout.slot_words * 8)
        stride = _align(len(layout.counter_names) * 8)
        return cls(
            size=_align(counters_offset + layout.counter_shards * stride),
            creator_pid=creator_pid,
            sync_protocol=sync_protocol,
            seed=seed,
            names_offset=HEADER_BYTES,
            names_length=len(names),
            table_offset=table_offset,
            table_capacity=layout.table_capacity,
            slot_words=layout.slot_words,
            counters_offset=counters_offset,
            counter_shards=layout.counter_shards,
            shard_stride=stride,
            counter_names=layout.counter_names,
        )

    def write(self, mapping: mmap.mmap) -> None:
        """Fill a zeroed mapping; the magic goes in last so readers never see a half-written header."""
        names = orjson.dumps(list(self.counter_names))
        mapping[self.names_offset : self.names_offset + len(names)] = names
        _HEADER.pack_into(
            mapping,
            0,
            0,  # the magic, for now
            LAYOUT_VERSION,
            self.size,
            self.creator_pid,
            self.sync_protocol,
            self.seed,
            self.names_offset,
            self.names_length,
            self.table_offset,
            self.table_capacity,
            self.slot_words,
            self.counters_offset,
            self.counter_shards,
            self.shard_stride,
            0,  # table full
        )
        mapping[0:8] = MAGIC.to_bytes(8, "little")

    @classmethod
    def read(cls, mapping: mmap.mmap, name: str) -> Header:
        """Decode and check the header of ``name``; ``SegmentError`` says what does not fit."""
        size = len(mapping)
        _check_size(name, size)
        words = _HEADER.unpack_from(mapping, 0)
        magic, version, declared_size, pid, protocol, seed = words[:6]
        names_offset, names_length, table_offset, capacity, slot_words = words[6:11]
        counters_offset, shards, stride = words[11:14]
        if magic != MAGIC:
            raise SegmentError(
                f"shared memory {name!r} is not a ccr-fast state segment "
                "(or its creator died before finishing it)"
            )
        if version != LAYOUT_VERSION:
            raise SegmentError(
                f"segment {name!r} has layout version {version} but this build reads version "
                f"{LAYOUT_VERSION}: every process sharing it must run the same ccr-fast version"
            )
        if declared_size != size:
            raise SegmentError(f"segment {name!r} declares {declared_size} bytes but maps {size}")
        table_end = table_offset + capacity * slot_words * 8
        if (
            names_offset < HEADER_BYTES
            or names_offset + names_length > table_offset
            or capacity < 1
            or capacity & (capacity - 1)
            or slot_words < 2
            or table_offset % _CACHE_LINE
            or counters_offset % _CACHE_LINE
            or stride % _CACHE_LINE
            or table_end > counters_offset
            or counters_offset + shards * stride > size
        ):
            raise SegmentError(f"segment {name!r} has an inconsistent header")
        try:
            names = orjson.loads(mapping[names_offset : names_offset + names_length])
        except orjson.JSONDecodeError as exc:
            raise SegmentError(f"segment {name!r} has unreadable counter names: {exc}") from None
        valid = isinstance(names, list) and all(isinstance(n, str) for n in names)
        if not valid or len(names) * 8 > stride:
            raise SegmentError(f"segment {name!r} has an inconsistent counter name list")
        return cls(
            size=size,
            creator_pid=pid,
            sync_protocol=protocol,
            seed=seed,
            names_offset=names_offset,
            names_length=names_length,
            table_offset=table_offset,
            table_capacity=capacity,
            slot_words=slot_words,
            counters_offset=counters_offset,
            counter_shards=shards,
            shard_stride=stride,
            counter_names=tuple(names),
        )


def _check_size(name: str, size: int) -> None:
    if size < HEADER_BYTES:
        raise SegmentError(f"shared memory {name!r} ({size} bytes) is too small to be a ccr-fast segment")


def _check_prefix(prefix: str) -> None:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"segment prefix {prefix!r} must be letters, digits, '.', '_' or '-'")


def _protocol_name(protocol: int) -> str:
    return {1: "compiled atomics", 2: "the pure-Python atomics twin"}.get(protocol, f"protocol {protocol}")


class Segment:
    """One mapped segment plus its atomics; use ``create`` (master), ``attach`` (workers)."""

    __slots__ = ("_fd", "_mapping", "_owner_pid", "atomics", "header", "name", "path")

    def __init__(
        self, name: str, fd: int, mapping: mmap.mmap, header: Header, impl: ModuleType, *, owner_pid: int
    ) -> None:
        self.name = name
        self.path = SHM_DIR / name
        self.header = header
        self._fd = fd
        self._mapping: mmap.mmap | None = mapping
        #: the pid that created the segment through this object (0 when attached): it alone unlinks on exit
        self._owner_pid = owner_pid
        self.atomics: AtomicWords = impl.Atomics(mapping, str(self.path))

    @classmethod
    def create(cls, layout: Layout, *, prefix: str = "ccr-fast", impl: ModuleType | None = None) -> Segment:
        """Create ``<prefix>-<pid>-state`` for ``layout`` (zeroed, header written) and map it."""
        _check_prefix(prefix)
        impl = impl or _speedups.load("shm_atomic")
        pid = os.getpid()
        name = f"{prefix}-{pid}-state"
        seed = secrets.randbits(64)
        header = Header.plan(layout, creator_pid=pid, sync_protocol=impl.SYNC_PROTOCOL, seed=seed)
        path = SHM_DIR / name
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            if name in _CREATED_HERE:
                raise SegmentError(f"this process already created segment {name!r}") from None
            _LOG.warning("replacing stale shared memory %s left by an earlier process with pid %d", name, pid)
            path.unlink(missing_ok=True)
            fd = os.open(path, flags, 0o600)
        try:
            os.ftruncate(fd, header.size)
            mapping = mmap.mmap(fd, header.size)
            header.write(mapping)
            segment = cls(name, fd, mapping, header, impl, owner_pid=pid)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        _CREATED_HERE.add(name)
        return segment

    @classmethod
    def attach(cls, name: str, *, impl: ModuleType | None = None) -> Segment:
        """Map an existing segment, refusing one whose header this build or this process cannot use."""
        impl = impl or _speedups.load("shm_atomic")
        fd = os.open(SHM_DIR / name, os.O_RDWR | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            _check_size(name, size)
            mapping = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        try:
            header = Header.read(mapping, name)
            if header.sync_protocol != impl.SYNC_PROTOCOL:
                raise SegmentError(
                    f"segment {name!r} was created with {_protocol_name(header.sync_protocol)} but this "
                    f"process uses {_protocol_name(impl.SYNC_PROTOCOL)}; set CCR_FAST_PURE the same way "
                    "for every process"
                )
            return cls(name, fd, mapping, header, impl, owner_pid=0)
        except BaseException:
            mapping.close()
            os.close(fd)
            raise

    @staticmethod
    def cleanup_stale(prefix: str = "ccr-fast") -> list[str]:
        """Remove ``<prefix>-<pid>-state`` files whose pid is dead; return the names removed.

        Meant for the master at start-up: files in /dev/shm outlive a crashed master.  A segment whose pid
        was reused by an unrelated live process is kept (it costs memory, never correctness).
        """
        _check_prefix(prefix)
        pattern = re.compile(rf"{re.escape(prefix)}-([0-9]{{1,10}})-state")
        removed: list[str] = []
        for path in SHM_DIR.iterdir():
            match = pattern.fullmatch(path.name)
            if match is None:
                continue
            pid = int(match.group(1))
            if 0 < pid < 1 << 31 and not pid_alive(pid):
                path.unlink(missing_ok=True)
                removed.append(path.name)
                _LOG.info("removed stale shared memory %s (pid %d is gone)", path.name, pid)
        return removed

    def close(self) -> None:
        """Unmap (the atomics give their buffer back first, so no ``BufferError``).  Idempotent."""
        if self._mapping is None:
            return
        self.atomics.release()
        self._mapping.close()
        self._mapping = None
        os.close(self._fd)

    def unlink(self) -> None:
        """Remove the name (the master at exit); processes that mapped it keep their mapping."""
        self.path.unlink(missing_ok=True)
        _CREATED_HERE.discard(self.name)

    def __enter__(self) -> Segment:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close; the creating process also unlinks (a forked child holding the same object does not)."""
        self.close()
        if self._owner_pid == os.getpid():
            self.unlink()
