"""Segment lifecycle: create, attach, header validation, cleanup of stale segments, close and unlink."""

from __future__ import annotations

import logging
import os
import signal
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ccr_fast.state import atomic
from ccr_fast.state.segment import (
    HEADER_BYTES,
    LAYOUT_VERSION,
    MAGIC,
    SHM_DIR,
    TABLE_FULL_OFFSET,
    Header,
    Layout,
    Segment,
    SegmentError,
)
from tests.state_fixtures import COMPILED, Procs, needs_compiled

NewSegment = Callable[..., Segment]
LAYOUT = Layout(table_capacity=64, slot_words=3, counter_names=("requests", "errors"), counter_shards=3)


def _dead_pid() -> int:
    """A pid no process can have: pids are always below pid_max."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


def _patch_word(path: Path, offset: int, value: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(struct.pack("=Q", value))


# --- layout and header --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"table_capacity": 0},
        {"table_capacity": 48},
        {"table_capacity": 1 << 31},
        {"slot_words": 1},
        {"counter_shards": 0},
        {"counter_names": ("a", "a")},
        {"counter_names": ("",)},
    ],
)
def test_layout_refuses_impossible_requests(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Layout(**kwargs)


def test_header_plan_puts_regions_on_cache_lines_without_overlap() -> None:
    names = tuple(f"counter_{i}" for i in range(9))  # 72 bytes per shard: padded to two cache lines
    header = Header.plan(
        Layout(table_capacity=16, slot_words=3, counter_names=names, counter_shards=5),
        creator_pid=1,
        sync_protocol=1,
        seed=0,
    )
    assert header.names_offset == HEADER_BYTES
    assert header.table_offset >= header.names_offset + header.names_length
    assert header.table_offset % 64 == 0
    assert header.counters_offset >= header.table_offset + 16 * 3 * 8
    assert header.counters_offset % 64 == 0
    assert header.shard_stride == 128
    assert header.size >= header.counters_offset + 5 * 128
    assert header.counter_names == names


# --- create and attach --------------------------------------------------------------------------------------


def test_create_names_the_segment_after_the_master_and_writes_the_header(
    new_segment: NewSegment, prefix: str, impl: ModuleType
) -> None:
    segment = new_segment(LAYOUT)
    assert segment.name == f"{prefix}-{os.getpid()}-state"
    assert segment.path == SHM_DIR / segment.name
    info = segment.path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_size == segment.header.size
    header = segment.header
    assert (header.creator_pid, header.sync_protocol) == (os.getpid(), impl.SYNC_PROTOCOL)
    assert (header.table_capacity, header.slot_words, header.counter_shards) == (64, 3, 3)
    assert header.counter_names == ("requests", "errors")
    with segment.path.open("rb") as f:
        assert struct.unpack("=2Q", f.read(16)) == (MAGIC, LAYOUT_VERSION)


def test_attach_reads_the_same_header_and_shares_memory(new_segment: NewSegment, impl: ModuleType) -> None:
    created = new_segment(LAYOUT)
    attached = Segment.attach(created.name, impl=impl)
    try:
        assert attached.header == created.header
        word = created.header.table_offset + 8
        created.atomics.store(word, 1234)
        assert attached.atomics.load(word) == 1234
        attached.atomics.add(TABLE_FULL_OFFSET, 2)
        assert created.atomics.load(TABLE_FULL_OFFSET) == 2
    finally:
        attached.close()


def test_each_segment_gets_its_own_hash_seed(new_segment: NewSegment, impl: ModuleType, prefix: str) -> None:
    first = new_segment(LAYOUT)
    second = Segment.create(LAYOUT, prefix=prefix + "-b", impl=impl)
    try:
        assert first.header.seed != second.header.seed
    finally:
        second.close()
        second.unlink()


def test_attach_in_a_forked_worker(new_segment: NewSegment, impl: ModuleType, procs: Procs) -> None:
    segment = new_segment(LAYOUT)
    word = segment.header.table_offset + 8
    procs.run(_attach_and_add, [(segment.name, impl, word)] * 3)
    assert segment.atomics.load(word) == 3
    assert segment.path.exists()


def _attach_and_add(name: str, impl: ModuleType, word: int) -> None:
    with Segment.attach(name, impl=impl) as segment:
        segment.atomics.add(word, 1)


def _exit_inherited(segment: Segment) -> None:
    with segment:
        segment.atomics.add(TABLE_FULL_OFFSET, 1)


def test_only_the_creating_process_unlinks_on_exit(new_segment: NewSegment, procs: Procs) -> None:
    segment = new_segment(LAYOUT)
    procs.run(_exit_inherited, [(segment,)])  # a forked child leaving ``with`` on the master's object
    assert segment.path.exists()
    assert segment.atomics.load(TABLE_FULL_OFFSET) == 1
    with segment:
        pass
    assert not segment.path.exists()


def test_attached_segment_does_not_unlink_on_exit(new_segment: NewSegment, impl: ModuleType) -> None:
    segment = new_segment(LAYOUT)
    with Segment.attach(segment.name, impl=impl):
        pass
    assert segment.path.exists()


def test_close_is_clean_and_idempotent(new_segment: NewSegment) -> None:
    segment = new_segment(LAYOUT)
    segment.atomics.store(TABLE_FULL_OFFSET, 5)
    segment.close()  # no BufferError: the atomics gave their buffer back first
    segment.close()
    with pytest.raises(ValueError, match="released"):
        segment.atomics.load(TABLE_FULL_OFFSET)


def test_mapping_outlives_unlink(new_segment: NewSegment, impl: ModuleType) -> None:
    segment = new_segment(LAYOUT)
    attached = Segment.attach(segment.name, impl=impl)
    segment.unlink()
    assert not segment.path.exists()
    attached.atomics.store(TABLE_FULL_OFFSET, 9)
    assert segment.atomics.load(TABLE_FULL_OFFSET) == 9
    attached.close()
    with pytest.raises(FileNotFoundError):
        Segment.attach(segment.name, impl=impl)


def test_creating_twice_in_one_process_is_refused(
    new_segment: NewSegment, prefix: str, impl: ModuleType
) -> None:
    new_segment(LAYOUT)
    with pytest.raises(SegmentError, match="already created"):
        Segment.create(LAYOUT, prefix=prefix, impl=impl)


def test_create_replaces_a_file_left_by_an_earlier_process_with_our_pid(
    prefix: str, impl: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    stale = SHM_DIR / f"{prefix}-{os.getpid()}-state"
    stale.write_bytes(b"left over by a crashed master that had this pid")
    with caplog.at_level(logging.WARNING, logger="ccr_fast.state.segment"):
        segment = Segment.create(LAYOUT, prefix=prefix, impl=impl)
    try:
        assert segment.header.size == stale.stat().st_size
        with Segment.attach(segment.name, impl=impl) as attached:
            assert attached.header == segment.header
        assert "stale" in caplog.text
    finally:
        segment.close()
        segment.unlink()


def test_prefix_must_be_a_plain_name(impl: ModuleType) -> None:
    for prefix in ("", "a/b", "../x", "-lead"):
        with pytest.raises(ValueError):
            Segment.create(LAYOUT, prefix=prefix, impl=impl)


def test_default_implementation_follows_ccr_fast_pure(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCR_FAST_PURE", "1")
    with Segment.create(LAYOUT, prefix=prefix) as segment:
        assert segment.header.sync_protocol == atomic.SYNC_PROTOCOL
        with Segment.attach(segment.name) as attached:
            assert isinstance(attached.atomics, atomic.Atomics)


# --- refusing what does not fit -----------------------------------------------------------------------------


def test_attach_refuses_another_layout_version(new_segment: NewSegment, impl: ModuleType) -> None:
    segment = new_segment(LAYOUT)
    _patch_word(segment.path, 8, LAYOUT_VERSION + 1)
    expected = f"layout version {LAYOUT_VERSION + 1} but this build reads version {LAYOUT_VERSION}"
    with pytest.raises(SegmentError, match=expected):
        Segment.attach(segment.name, impl=impl)


def test_attach_refuses_a_file_without_the_magic(prefix: str, impl: ModuleType) -> None:
    path = SHM_DIR / f"{prefix}-1-state"
    path.write_bytes(bytes(4096))  # what a creator that died before writing the magic leaves
    with pytest.raises(SegmentError, match="not a ccr-fast state segment"):
        Segment.attach(path.name, impl=impl)


@pytest.mark.parametrize("size", [0, 64])
def test_attach_refuses_a_file_too_small_for_a_header(prefix: str, impl: ModuleType, size: int) -> None:
    path = SHM_DIR / f"{prefix}-1-state"
    path.write_bytes(bytes(size))
    with pytest.raises(SegmentError, match="too small"):
        Segment.attach(path.name, impl=impl)


def test_attach_refuses_a_size_mismatch(new_segment: NewSegment, impl: ModuleType) -> None:
    segment = new_segment(LAYOUT)
    os.truncate(segment.path, segment.header.size + 4096)
    with pytest.raises(SegmentError, match="declares"):
        Segment.attach(segment.name, impl=impl)


@pytest.mark.parametrize(("word", "value"), [(9, 48), (10, 1), (8, 100), (12, 1 << 40), (7, 1 << 30)])
def test_attach_refuses_an_inconsistent_header(
    new_segment: NewSegment, impl: ModuleType, word: int, value: int
) -> None:
    segment = new_segment(LAYOUT)
    _patch_word(segment.path, 8 * word, value)
    with pytest.raises(SegmentError, match="inconsistent"):
        Segment.attach(segment.name, impl=impl)


def test_attach_refuses_unreadable_counter_names(new_segment: NewSegment, impl: ModuleType) -> None:
    segment = new_segment(LAYOUT)
    with segment.path.open("r+b") as f:
        f.seek(segment.header.names_offset)
        f.write(b"{")
    with pytest.raises(SegmentError, match="counter names"):
        Segment.attach(segment.name, impl=impl)


@needs_compiled
def test_attach_refuses_the_other_atomics_twin(prefix: str) -> None:
    """Mixing twins would lose updates: the compiled one never takes the pure twin's flock."""
    pure = Segment.create(LAYOUT, prefix=prefix, impl=atomic)
    try:
        with pytest.raises(SegmentError, match="CCR_FAST_PURE"):
            Segment.attach(pure.name, impl=COMPILED)
    finally:
        pure.close()
        pure.unlink()
    compiled = Segment.create(LAYOUT, prefix=prefix, impl=COMPILED)
    try:
        with pytest.raises(SegmentError) as error:
            Segment.attach(compiled.name, impl=atomic)
    finally:
        compiled.close()
        compiled.unlink()
    message = str(error.value)
    assert "created with compiled atomics but this process uses the pure-Python atomics twin" in message


# --- stale segments -----------------------------------------------------------------------------------------


def test_cleanup_stale_removes_only_segments_of_dead_masters(new_segment: NewSegment, prefix: str) -> None:
    live = new_segment(LAYOUT)
    dead = SHM_DIR / f"{prefix}-{_dead_pid()}-state"
    dead.write_bytes(bytes(HEADER_BYTES))
    unrelated = [
        SHM_DIR / f"{prefix}-{_dead_pid()}-cache",  # not a state segment
        SHM_DIR / f"{prefix}-x{_dead_pid()}-state",  # not a pid
        SHM_DIR / f"{prefix}-b-{_dead_pid()}-state",  # another prefix
    ]
    for path in unrelated:
        path.write_bytes(b"")
    assert Segment.cleanup_stale(prefix) == [dead.name]
    assert not dead.exists()
    assert live.path.exists()
    assert all(path.exists() for path in unrelated)
    assert Segment.cleanup_stale(prefix) == []


def _create_and_crash(prefix: str, impl: ModuleType) -> None:
    Segment.create(LAYOUT, prefix=prefix, impl=impl)
    os.kill(os.getpid(), signal.SIGKILL)


def test_cleanup_stale_removes_the_segment_of_a_crashed_master(
    prefix: str, impl: ModuleType, procs: Procs
) -> None:
    master = procs.start(_create_and_crash, prefix, impl)
    master.join()
    assert master.exitcode == -signal.SIGKILL
    left_over = SHM_DIR / f"{prefix}-{master.pid}-state"
    assert left_over.exists()  # files in /dev/shm outlive their creator
    assert Segment.cleanup_stale(prefix) == [left_over.name]
    assert not left_over.exists()


def test_cleanup_stale_keeps_segments_of_live_processes(prefix: str) -> None:
    path = SHM_DIR / f"{prefix}-1-state"  # pid 1 is alive (and, unless we are root, not ours to signal)
    path.write_bytes(b"")
    assert Segment.cleanup_stale(prefix) == []
    assert path.exists()


def test_cleanup_stale_refuses_a_bad_prefix() -> None:
    with pytest.raises(ValueError):
        Segment.cleanup_stale("x/y")
