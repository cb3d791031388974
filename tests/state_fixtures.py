"""Fixtures for tests over the shared-memory state: both atomics twins, throwaway segments, forked processes.

The state, admission and metrics tests all run against the pure twin and the compiled
``ccr_fast._ext.shm_atomic`` (the compiled run is skipped, with the reason shown, when it has not been
built), all need segments that vanish from /dev/shm after the test, and all fork real processes the way
Granian starts workers. Their conftests import the fixtures from here so that the three suites agree on
how that is done.
"""

from __future__ import annotations

import multiprocessing
import secrets
import signal
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from types import ModuleType
from typing import Any

import pytest

from ccr_fast import _speedups
from ccr_fast.state import atomic
from ccr_fast.state.segment import SHM_DIR, Layout, Segment
from ccr_fast.state.shared import SLOT_WORDS, SharedState

COMPILED = _speedups.compiled("shm_atomic")
NOT_BUILT = "ccr_fast._ext.shm_atomic is not built (run: python setup.py build_ext --inplace)"
needs_compiled = pytest.mark.skipif(COMPILED is None, reason=NOT_BUILT)
IMPLS = [pytest.param(atomic, id="pure"), pytest.param(COMPILED, id="compiled", marks=needs_compiled)]


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


@pytest.fixture
def prefix() -> Iterator[str]:
    """A segment name prefix of this test's own; whatever it left in /dev/shm is removed afterwards."""
    value = f"ccr-test-{secrets.token_hex(4)}"
    yield value
    for path in SHM_DIR.glob(f"{value}-*"):
        path.unlink(missing_ok=True)


def make_states(impl: ModuleType, prefix: str, table_capacity: int) -> Iterator[Callable[..., SharedState]]:
    """The body of a ``new_state`` fixture: ``make(table_capacity=...)`` for as many states as a test wants.

    A segment is named after its prefix and the creating pid, so each state gets a prefix of its own under
    the test's ``prefix``; every state is closed and unlinked after the test.
    """
    made: list[SharedState] = []

    def make(table_capacity: int = table_capacity) -> SharedState:
        layout = Layout(table_capacity=table_capacity, slot_words=SLOT_WORDS)
        state = SharedState(Segment.create(layout, prefix=f"{prefix}-{len(made)}", impl=impl))
        state.claim_worker_slot()
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()
        state.unlink()


@pytest.fixture
def state(new_state: Callable[..., SharedState]) -> SharedState:
    """A state from the suite's own ``new_state`` with its default table capacity."""
    return new_state()


def attach(name: str, impl: ModuleType) -> SharedState:
    """What a worker does at start (``SharedState.attach``), with the twin under test: the segment
    attached by name and a worker slot of its own."""
    state = SharedState(Segment.attach(name, impl=impl))
    state.claim_worker_slot()
    return state


class Procs:
    """Processes forked by one test; any still running at the end are killed."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("fork")
        self._started: list[BaseProcess] = []

    def start(self, target: Callable[..., None], *args: Any) -> BaseProcess:
        process = self.ctx.Process(target=target, args=args, daemon=True)
        process.start()
        self._started.append(process)
        return process

    def run(self, target: Callable[..., None], arg_lists: list[tuple[Any, ...]]) -> None:
        """Start one process per argument tuple, all at once, and require each to exit cleanly."""
        processes = [self.start(target, *args) for args in arg_lists]
        for process in processes:
            process.join(timeout=120)
        assert [p.exitcode for p in processes] == [0] * len(processes)

    def sigkill(self, process: BaseProcess) -> None:
        """Kill ``process`` the way the OOM killer or ``kill -9`` would, and reap it."""
        process.kill()
        process.join()
        assert process.exitcode == -signal.SIGKILL

    def kill_all(self) -> None:
        for process in self._started:
            if process.is_alive():
                process.kill()
            process.join()


@pytest.fixture
def procs() -> Iterator[Procs]:
    runner = Procs()
    yield runner
    runner.kill_all()
