from __future__ import annotations

import pytest

from ccr_fast.resilience.store import InProcessStore, RollingCounts, update


def test_absent_keys_read_as_zero() -> None:
    assert InProcessStore().get("nothing") == 0.0


def test_set_add_and_cas() -> None:
    store = InProcessStore()
    store.set("a", 2.5)
    assert store.add("a", 1.5) == 4.0
    assert store.add("fresh", -1.0) == -1.0
    assert not store.cas("a", 1.0, 9.0)
    assert store.get("a") == 4.0
    assert store.cas("a", 4.0, 9.0)
    assert store.get("a") == 9.0
    assert store.cas("never-written", 0.0, 1.0)


def test_update_applies_the_change() -> None:
    store = InProcessStore()
    store.set("x", 3.0)
    assert update(store, "x", lambda old: old * 2) == 6.0
    assert store.get("x") == 6.0


class _ContendedStore(InProcessStore):
    """Every CAS loses, as if another worker always wrote first."""

    def cas(self, key: str, expected: float, new: float) -> bool:
        return False


def test_update_gives_up_racing_and_writes() -> None:
    store = _ContendedStore()
    assert update(store, "x", lambda old: old + 5) == 5.0
    assert store.get("x") == 5.0


def test_rolling_counts_sum_within_the_window() -> None:
    counts = RollingCounts(InProcessStore(), "w", ("requests", "failures"), window=10.0)
    counts.add(0, 100.0)
    counts.add(0, 101.0)
    counts.add(1, 101.5, 2.0)
    counts.add(0, 108.0)
    assert counts.totals(108.5) == [3.0, 2.0]


def test_rolling_counts_forget_old_buckets() -> None:
    counts = RollingCounts(InProcessStore(), "w", ("n",), window=10.0, buckets=10)
    counts.add(0, 100.0)
    counts.add(0, 105.0)
    assert counts.totals(109.9) == [2.0]
    assert counts.totals(110.0) == [1.0]  # the bucket of t=100 left the window
    assert counts.totals(115.0) == [0.0]


def test_rolling_counts_reuse_a_slot_from_scratch() -> None:
    counts = RollingCounts(InProcessStore(), "w", ("n",), window=10.0, buckets=10)
    counts.add(0, 100.0, 7.0)
    counts.add(0, 110.0)  # same slot, one lap later: the old 7 must not survive
    assert counts.totals(110.0) == [1.0]


def test_rolling_counts_are_shared_through_the_store() -> None:
    store = InProcessStore()
    worker_a = RollingCounts(store, "w", ("n",), window=5.0)
    worker_b = RollingCounts(store, "w", ("n",), window=5.0)
    worker_a.add(0, 1.0)
    worker_b.add(0, 1.2)
    assert worker_a.totals(1.3) == worker_b.totals(1.3) == [2.0]


def test_rolling_counts_clear() -> None:
    counts = RollingCounts(InProcessStore(), "w", ("a", "b"), window=5.0)
    counts.add(0, 1.0)
    counts.add(1, 1.0)
    counts.clear()
    assert counts.totals(1.0) == [0.0, 0.0]


@pytest.mark.parametrize(
    ("window", "buckets", "fields"), [(0.0, 10, ("n",)), (5.0, 0, ("n",)), (5.0, 10, ())]
)
def test_rolling_counts_reject_degenerate_shapes(
    window: float, buckets: int, fields: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError):
        RollingCounts(InProcessStore(), "w", fields, window, buckets)
