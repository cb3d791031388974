"""Fixtures for the metrics tests: a shared state on each atomics twin, and forked worker processes.

``state`` is a ``SharedState`` over a fresh segment created with the twin under test (pure, then compiled;
the compiled run is skipped with the reason shown when it has not been built), with a worker slot claimed
for the test process, as in a worker.  ``procs`` forks real processes the way Granian starts workers and
kills whatever a failing test left running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from ccr_fast.state.shared import SharedState
from tests.state_fixtures import impl, make_states, prefix, procs, state

__all__ = ["impl", "new_state", "prefix", "procs", "state"]


@pytest.fixture
def new_state(impl: ModuleType, prefix: str) -> Iterator[Callable[..., SharedState]]:
    """``new_state(table_capacity=...)``: a state on a segment of this test's own, removed afterwards."""
    yield from make_states(impl, prefix, table_capacity=8192)
