"""Fixtures for the metrics tests: a shared state on each atomics twin, and forked worker processes.

``state`` is a ``SharedState`` over a fresh segment created with the twin under test (pure, then compiled;
the compiled run is skipped with the reason shown when it has not been built), with a worker slot claimed
for the test process, as in a worker.  ``procs`` forks real processes the way Granian starts workers and
kills whatever a failing test left running.
"""

from __future__ import annotations

import multiprocessing
import secrets
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
IMPLS = [
    pytest.param(atomic, id="pure"),
    pytest.param(COMPILED, id="compiled", marks=pytest.mark.skipif(COMPILED is None, reason=NOT_BUILT)),
]


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


@pytest.fixture
def new_state(impl: ModuleType) -> Iterator[Callable[..., SharedState]]:
    """``new_state(table_capacity=...)``: a state on a segment of this test's own, removed afterwards."""
    prefix = f"ccr-test-{secrets.token_hex(4)}"
    created: list[SharedState] = []

    def make(table_capacity: int = 8192) -> SharedState:
        layout = Layout(table_capacity=table_capacity, slot_words=SLOT_WORDS)
        state = SharedState(Segment.create(layout, prefix=prefix, impl=impl))
        state.claim_worker_slot()
        created.append(state)
        return state

    yield make
    for state in created:
        state.close()
    for path in SHM_DIR.glob(f"{prefix}-*"):
        path.unlink(missing_ok=True)


@pytest.fixture
def state(new_state: Callable[..., SharedState]) -> SharedState:
    return new_state()


def attach(name: str, impl: ModuleType) -> SharedState:
    """What a worker does at start (``SharedState.attach``), with the twin under test."""
    state = SharedState(Segment.attach(name, impl=impl))
    state.claim_worker_slot()
    return state


class Procs:
    """Processes forked by one test."""

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
