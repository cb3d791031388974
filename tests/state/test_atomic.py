"""Word atomics: the contract on one buffer, exactness across real processes, compiled-vs-pure equivalence.

Every test runs against both twins (``impl``).  Multi-process tests map one file shared and fork workers,
some using the object they inherited (the pure twin must then re-open its lock in the child) and some
mapping the file afresh (as an attaching worker does).
"""

from __future__ import annotations

import mmap
import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccr_fast.state import atomic
from tests.state_fixtures import COMPILED, NOT_BUILT, Procs

U64_MAX = (1 << 64) - 1
SIZE = 4096
PROCESSES = 4


class Shared:
    """A file mapped shared, with ``impl``'s atomics on it."""

    def __init__(self, impl: ModuleType, path: Path) -> None:
        self.impl = impl
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self._fd, SIZE)
        self._mapping = mmap.mmap(self._fd, SIZE)
        self.atomics: Any = impl.Atomics(self._mapping, str(path))

    def close(self) -> None:
        self.atomics.release()
        self._mapping.close()
        os.close(self._fd)


@pytest.fixture
def shared(impl: ModuleType, tmp_path: Path) -> Iterator[Shared]:
    region = Shared(impl, tmp_path / "words")
    yield region
    region.close()


@pytest.fixture
def words(impl: ModuleType) -> Any:
    """Atomics on a private 256-byte buffer."""
    return impl.Atomics(bytearray(256))


def hammer_count(impl: ModuleType) -> int:
    return 20_000 if impl is atomic else 200_000


# --- one process --------------------------------------------------------------------------------------------


def test_load_store_add_cas(words: Any) -> None:
    assert words.load(8) == 0
    words.store(8, 41)
    assert words.add(8, 1) == 41
    assert words.load(8) == 42
    assert words.cas(8, 42, 7) is True
    assert words.cas(8, 42, 9) is False
    assert words.load(8) == 7
    assert words.size == 256


def test_add_wraps_modulo_2_64(words: Any) -> None:
    assert words.add(0, -1) == 0
    assert words.load(0) == U64_MAX
    assert words.add(0, 2) == U64_MAX
    assert words.load(0) == 1
    words.store(16, U64_MAX)
    assert words.load(16) == U64_MAX


def test_doubles_share_the_words(words: Any) -> None:
    assert words.load_f64(8) == 0.0  # all zero bits
    assert words.add_f64(8, 1.5) == 1.5
    assert words.add_f64(8, -0.25) == 1.25
    assert words.load_f64(8) == 1.25
    assert words.load(8) == 0x3FF4000000000000  # the IEEE-754 bits of 1.25
    words.store_f64(16, -2.0)
    assert words.load_f64(16) == -2.0
    assert words.cas_f64(16, -2.0, 3.0) is True
    assert words.cas_f64(16, -2.0, 4.0) is False
    assert words.load_f64(16) == 3.0


def test_double_cas_compares_bit_patterns(words: Any) -> None:
    words.store_f64(0, -0.0)
    assert words.cas_f64(0, 0.0, 1.0) is False  # 0.0 == -0.0 as numbers, not as bits
    assert words.cas_f64(0, -0.0, 1.0) is True
    words.store_f64(0, float("nan"))
    assert words.cas_f64(0, float("nan"), 2.0) is True  # the same NaN bits match
    assert words.load_f64(0) == 2.0


@pytest.mark.parametrize("offset", [-8, 3, 252, 256, 1 << 20])
def test_doubles_refuse_offsets_outside_or_misaligned(words: Any, offset: int) -> None:
    calls: list[tuple[str, tuple[float, ...]]] = [
        ("load_f64", ()),
        ("store_f64", (1.0,)),
        ("add_f64", (1.0,)),
        ("cas_f64", (0.0, 1.0)),
    ]
    for name, args in calls:
        with pytest.raises(ValueError, match="aligned word"):
            getattr(words, name)(offset, *args)


@pytest.mark.parametrize("offset", [-8, 3, 252, 256, 1 << 20])
def test_offsets_outside_or_misaligned_are_refused(words: Any, offset: int) -> None:
    with pytest.raises(ValueError, match="aligned word"):
        words.load(offset)
    with pytest.raises(ValueError):
        words.store(offset, 1)


@pytest.mark.parametrize("value", [-1, 1 << 64])
def test_values_outside_u64_are_refused(words: Any, value: int) -> None:
    with pytest.raises(OverflowError):
        words.store(0, value)
    with pytest.raises(OverflowError):
        words.cas(0, 0, value)
    assert words.load(0) == 0


def test_add_delta_outside_i64_is_refused(words: Any) -> None:
    with pytest.raises(OverflowError):
        words.add(0, 1 << 63)
    with pytest.raises(OverflowError):
        words.add(0, -(1 << 63) - 1)


def test_read_only_buffer_is_refused(impl: ModuleType) -> None:
    with pytest.raises(BufferError):
        impl.Atomics(b"\0" * 64)


def test_release_gives_the_buffer_back(impl: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(b"\0" * 64)
    with path.open("r+b") as f:
        mapping = mmap.mmap(f.fileno(), 64)
        words = impl.Atomics(mapping, str(path))
        with pytest.raises(BufferError):
            mapping.close()
        words.release()
        words.release()
        mapping.close()
    with pytest.raises(ValueError, match="released"):
        words.load(0)


# --- probe --------------------------------------------------------------------------------------------------

TABLE = (64, 8, 16)  # offset, capacity, slot bytes: slots at 64, 80, ... 176


def test_probe_claims_then_finds(words: Any) -> None:
    assert words.probe(*TABLE, 13, 8, False) == -1
    state = words.probe(*TABLE, 13, 8, True)
    assert state == 64 + (13 & 7) * 16 + 8
    assert words.load(state - 8) == 13
    assert words.probe(*TABLE, 13, 8, False) == state
    assert words.probe(*TABLE, 13, 8, True) == state


def test_probe_walks_past_other_keys_linearly_and_wraps(words: Any) -> None:
    first = words.probe(*TABLE, 7, 8, True)  # home slot 7, the last one
    second = words.probe(*TABLE, 15, 8, True)  # also home 7: wraps to slot 0
    assert (first, second) == (64 + 7 * 16 + 8, 64 + 8)
    assert words.probe(*TABLE, 23, 2, True) == -1  # home 7, slots 7 and 0 are taken: window of 2 exhausted
    assert words.probe(*TABLE, 23, 3, True) == 64 + 16 + 8


def test_probe_reports_a_full_table(words: Any) -> None:
    for key_hash in range(1, 9):
        assert words.probe(*TABLE, key_hash, 100, True) >= 0
    assert words.probe(*TABLE, 9, 100, True) == -1
    assert words.probe(*TABLE, 9, 100, False) == -1
    assert words.probe(*TABLE, 3, 100, False) == 64 + 3 * 16 + 8


@pytest.mark.parametrize(
    "args",
    [
        (64, 6, 16, 1, 8, True),  # capacity not a power of two
        (64, 8, 12, 1, 8, True),  # slot not whole words
        (64, 8, 8, 1, 8, True),  # slot without a state word
        (200, 8, 16, 1, 8, True),  # table runs past the buffer
        (68, 8, 16, 1, 8, True),  # misaligned table
        (64, 8, 16, 0, 8, True),  # hash 0 means empty
        (64, 8, 16, 1, 0, True),  # empty probe window
    ],
)
def test_probe_refuses_bad_tables(words: Any, args: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        words.probe(*args)
    assert all(words.load(offset) == 0 for offset in range(0, 256, 8))


# --- gcra ---------------------------------------------------------------------------------------------------


def test_gcra_admits_up_to_the_limit_then_reports_the_wait(words: Any) -> None:
    now, step, limit = 1_000, 10, 30
    assert [words.gcra(0, now, step, limit) for _ in range(4)] == [0, 0, 0, 10]
    assert words.load(0) == now + 3 * step
    assert words.gcra(0, now + 5, step, limit) == 5
    assert words.gcra(0, now + 10, step, limit) == 0
    assert words.gcra(0, now + 10, 0, limit) == 0  # asking costs nothing
    assert words.load(0) == now + 4 * step


def test_gcra_starts_from_now_after_idling(words: Any) -> None:
    words.store(0, 50)
    assert words.gcra(0, 1_000, 10, 30) == 0
    assert words.load(0) == 1_010


def test_gcra_refuses_overflow(words: Any) -> None:
    words.store(0, U64_MAX - 5)
    with pytest.raises(OverflowError):
        words.gcra(0, 0, 10, U64_MAX)
    assert words.load(0) == U64_MAX - 5


# --- seqlock ------------------------------------------------------------------------------------------------


def test_seqlock_round_trip(words: Any) -> None:
    words.write_begin(0)
    assert words.load(0) & 0xFFFFFFFF == os.getpid()
    words.store(8, 1)
    words.store(16, 2)
    words.write_end(0)
    assert words.load(0) == 1 << 32
    assert words.snapshot(0, [8, 16]) == (1, 2)
    assert words.snapshot(0, ()) == ()


def test_write_end_without_write_begin_is_an_error(words: Any) -> None:
    with pytest.raises(RuntimeError, match="not held"):
        words.write_end(0)


def test_seqlock_generation_wraps_in_32_bits(words: Any) -> None:
    words.store(0, 0xFFFFFFFF << 32)
    words.write_begin(0)
    words.write_end(0)
    assert words.load(0) == 0


def test_snapshot_validates_every_offset(words: Any) -> None:
    with pytest.raises(ValueError):
        words.snapshot(0, [8, 9])
    with pytest.raises(ValueError):
        words.snapshot(4, [8])


# --- real processes -----------------------------------------------------------------------------------------


def _add_inherited(words: Any, offset: int, n: int) -> None:
    for _ in range(n):
        words.add(offset, 1)


def _add_attached(impl: ModuleType, path: Path, offset: int, n: int) -> None:
    region = Shared(impl, path)
    for _ in range(n):
        region.atomics.add(offset, 1)
    region.close()


def _increment_by_cas(words: Any, offset: int, n: int) -> None:
    done = 0
    while done < n:
        current = words.load(offset)
        if words.cas(offset, current, current + 1):
            done += 1


def test_add_loses_no_update_across_forked_processes(shared: Shared, procs: Procs) -> None:
    n = hammer_count(shared.impl)
    procs.run(_add_inherited, [(shared.atomics, 64, n)] * PROCESSES)
    assert shared.atomics.load(64) == PROCESSES * n


def test_add_loses_no_update_across_separately_mapped_processes(shared: Shared, procs: Procs) -> None:
    n = hammer_count(shared.impl)
    procs.run(_add_attached, [(shared.impl, shared.path, 64, n)] * PROCESSES)
    assert shared.atomics.load(64) == PROCESSES * n


def _add_halves(words: Any, offset: int, n: int) -> None:
    for _ in range(n):
        words.add_f64(offset, 0.5)


def test_double_add_loses_no_update_across_processes(shared: Shared, procs: Procs) -> None:
    n = hammer_count(shared.impl)
    procs.run(_add_halves, [(shared.atomics, 192, n)] * PROCESSES)
    assert shared.atomics.load_f64(192) == PROCESSES * n * 0.5  # exact: halves of small counts


def test_cas_loop_loses_no_update_across_processes(shared: Shared, procs: Procs) -> None:
    n = hammer_count(shared.impl) // 4
    procs.run(_increment_by_cas, [(shared.atomics, 128, n)] * PROCESSES)
    assert shared.atomics.load(128) == PROCESSES * n


SEQ, RECORD = 0, (8, 16, 24)


def _write_records(words: Any, rounds: int) -> None:
    for g in range(1, rounds + 1):
        words.write_begin(SEQ)
        words.store(RECORD[0], g)
        words.store(RECORD[1], 3 * g)
        words.store(RECORD[2], U64_MAX - g)
        words.write_end(SEQ)


def test_snapshots_never_see_a_torn_record(shared: Shared, procs: Procs) -> None:
    rounds = 2_000 if shared.impl is atomic else 200_000
    writers = [procs.start(_write_records, shared.atomics, rounds) for _ in range(2)]
    seen = 0
    while any(w.is_alive() for w in writers) or seen == 0:
        g, tripled, inverted = shared.atomics.snapshot(SEQ, RECORD)
        assert (tripled, inverted) == (3 * g, U64_MAX - g if g else 0)
        seen += 1
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert shared.atomics.load(SEQ) == (2 * rounds) << 32  # every write closed exactly once


def _die_inside_a_write(words: Any) -> None:
    words.write_begin(SEQ)
    words.store(RECORD[0], 7)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_writer_killed_inside_a_write_does_not_block_anyone(shared: Shared, procs: Procs) -> None:
    shared.atomics.store(SEQ, 5 << 32)
    victim = procs.start(_die_inside_a_write, shared.atomics)
    victim.join()
    assert victim.exitcode == -signal.SIGKILL
    assert shared.atomics.load(SEQ) == (5 << 32) | (victim.pid or 0)  # the dead pid holds the lock
    assert shared.atomics.snapshot(SEQ, RECORD[:1]) == (7,)  # a reader closes the dead write
    assert shared.atomics.load(SEQ) == 6 << 32
    shared.atomics.write_begin(SEQ)
    shared.atomics.write_end(SEQ)
    assert shared.atomics.load(SEQ) == 7 << 32


def _die_holding_the_lock(words: Any) -> None:
    words._lock.__enter__()
    os.kill(os.getpid(), signal.SIGKILL)


def test_pure_twin_lock_dies_with_its_holder(tmp_path: Path, procs: Procs) -> None:
    """The reason the pure twin locks with flock: a holder killed with SIGKILL cannot wedge the others."""
    region = Shared(atomic, tmp_path / "words")
    victim = procs.start(_die_holding_the_lock, region.atomics)
    victim.join()
    assert victim.exitcode == -signal.SIGKILL
    procs.run(_add_inherited, [(region.atomics, 8, 100)] * 2)
    assert region.atomics.load(8) == 200
    region.close()


# --- pure vs compiled ---------------------------------------------------------------------------------------

offsets = st.one_of(st.sampled_from(range(0, 256, 8)), st.integers(-16, 272))
u64s = st.one_of(st.integers(0, 64), st.integers(0, U64_MAX), st.integers(-2, U64_MAX + 2))
deltas = st.one_of(st.integers(-64, 64), st.integers(-(1 << 63) - 1, 1 << 63))
doubles = st.one_of(st.floats(allow_nan=False), st.sampled_from([0.0, -0.0, 1.0, 0.5]))
hashes = st.one_of(st.integers(0, 40), st.integers(0, U64_MAX))
ops = st.one_of(
    st.tuples(st.just("load"), offsets),
    st.tuples(st.just("store"), offsets, u64s),
    st.tuples(st.just("add"), offsets, deltas),
    st.tuples(st.just("cas"), offsets, st.one_of(st.none(), u64s), u64s),
    st.tuples(st.just("probe"), hashes, st.integers(0, 10), st.booleans()),
    st.tuples(st.just("load_f64"), offsets),
    st.tuples(st.just("store_f64"), offsets, doubles),
    st.tuples(st.just("add_f64"), offsets, doubles),
    st.tuples(st.just("cas_f64"), offsets, st.one_of(st.none(), doubles), doubles),
    st.tuples(st.just("gcra"), offsets, u64s, u64s, u64s),
    st.tuples(
        st.just("record"),
        st.sampled_from(range(0, 64, 8)),
        st.integers(0, 0xFFFFFFFF),
        st.lists(st.tuples(st.sampled_from(range(64, 256, 8)), u64s), max_size=4),
    ),
)


def _apply(words: Any, op: tuple[Any, ...]) -> Any:
    name, *args = op
    if name == "cas" and args[1] is None:
        args[1] = words.load(args[0]) if args[0] in range(0, 256, 8) else 0
    if name == "cas_f64" and args[1] is None:
        args[1] = words.load_f64(args[0]) if args[0] in range(0, 256, 8) else 0.0
    if name == "probe":
        return words.probe(*TABLE, args[0], args[1], args[2])
    if name == "record":
        seq, generation, stores = args
        words.store(seq, generation << 32)  # a seqlock word with no writer
        words.write_begin(seq)
        for offset, value in stores:
            words.store(offset, value)
        words.write_end(seq)
        return words.snapshot(seq, [offset for offset, _ in stores])
    return getattr(words, name)(*args)


def _outcome(words: Any, op: tuple[Any, ...]) -> Any:
    try:
        result = _apply(words, op)
    except (ValueError, OverflowError) as exc:
        return type(exc)
    # doubles compare as bit patterns: a NaN (read from integer bits, or inf - inf) equals itself
    return struct.pack("=d", result) if isinstance(result, float) else result


@pytest.mark.skipif(COMPILED is None, reason=NOT_BUILT)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, max_size=40))
def test_compiled_and_pure_agree(sequence: list[tuple[Any, ...]]) -> None:
    assert COMPILED is not None
    pure_buffer, compiled_buffer = bytearray(256), bytearray(256)
    pure, compiled = atomic.Atomics(pure_buffer), COMPILED.Atomics(compiled_buffer)
    for op in sequence:
        assert _outcome(pure, op) == _outcome(compiled, op), op
    assert pure_buffer == compiled_buffer
