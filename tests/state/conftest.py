"""Fixtures for the shared-memory state tests: both atomics twins, throwaway segments, forked processes.

Every twin-sensitive test takes the ``impl`` fixture, so it runs against the pure twin and the compiled
``ccr_fast._ext.shm_atomic``; the compiled run is skipped, with the reason shown, when it has not been built.
Multi-process tests fork real processes (the way Granian starts workers) through ``procs``, which kills
anything a failing test left running.
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
