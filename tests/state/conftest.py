"""Fixtures for the shared-memory state tests: both atomics twins, throwaway segments, forked processes.

Every twin-sensitive test takes the ``impl`` fixture, so it runs against the pure twin and the compiled
``ccr_fast._ext.shm_atomic``; the compiled run is skipped, with the reason shown, when it has not been built.
Multi-process tests fork real processes (the way Granian starts workers) through ``procs``, which kills
anything a failing test left running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from ccr_fast.state.segment import Layout, Segment
from tests.redis_fixtures import admin, namespace, own_server, server
from tests.state_fixtures import impl, prefix, procs

__all__ = ["admin", "impl", "namespace", "new_segment", "own_server", "prefix", "procs", "server"]


@pytest.fixture
def new_segment(impl: ModuleType, prefix: str) -> Iterator[Callable[..., Segment]]:
    """``new_segment(layout)`` creates this test's segment with ``impl``; it is closed and unlinked after."""
    created: list[Segment] = []

    def make(layout: Layout | None = None) -> Segment:
        segment = Segment.create(layout or Layout(), prefix=prefix, impl=impl)
        created.append(segment)
        return segment

    yield make
    for segment in created:
        segment.close()
        segment.unlink()
