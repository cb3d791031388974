from __future__ import annotations

from collections.abc import Iterator

import pytest

from ccr_fast.mock import MockProvider, run_in_thread


@pytest.fixture(scope="session")
def mock_provider() -> Iterator[MockProvider]:
    """One real mock provider (own thread and event loop) shared by the tests; reset per test."""
    provider, stop = run_in_thread()
    try:
        yield provider
    finally:
        stop()


@pytest.fixture
def mock(mock_provider: MockProvider) -> Iterator[MockProvider]:
    mock_provider.reset()
    yield mock_provider
    mock_provider.reset()
