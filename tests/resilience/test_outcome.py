from __future__ import annotations

import pytest

from ccr_fast.resilience.outcome import (
    CANCELLED,
    NETWORK,
    TIMEOUT,
    AttemptResult,
    Outcome,
    classify,
    is_context_window_error,
)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (200, None, Outcome.SUCCESS),
        (204, None, Outcome.SUCCESS),
        (500, None, Outcome.FAILURE),
        (502, None, Outcome.FAILURE),
        (529, "overloaded_error", Outcome.FAILURE),
        (429, "rate_limit_error", Outcome.FAILURE),
        (408, None, Outcome.FAILURE),
        (401, None, Outcome.FAILURE),
        (402, None, Outcome.FAILURE),
        (403, None, Outcome.FAILURE),
        (400, "invalid_request_error", Outcome.IGNORED),
        (404, None, Outcome.IGNORED),
        (413, None, Outcome.IGNORED),
        (422, None, Outcome.IGNORED),
        (None, TIMEOUT, Outcome.FAILURE),
        (None, NETWORK, Outcome.FAILURE),
        (200, TIMEOUT, Outcome.FAILURE),
        (None, CANCELLED, Outcome.IGNORED),
        (500, CANCELLED, Outcome.IGNORED),
        (None, None, Outcome.IGNORED),
    ],
)
def test_classify(status: int | None, error: str | None, expected: Outcome) -> None:
    assert classify(status, error) is expected


def test_attempt_result_ok_and_outcome() -> None:
    assert AttemptResult(status=200).ok
    assert AttemptResult(status=200).outcome is Outcome.SUCCESS
    assert not AttemptResult(status=503).ok
    assert not AttemptResult(status=200, error=TIMEOUT).ok
    assert not AttemptResult(error=NETWORK).ok
    assert AttemptResult(error=NETWORK).outcome is Outcome.FAILURE


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 65536 tokens. However, you requested 70000 tokens.",
        "prompt is too long: 210000 tokens > 200000 maximum",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        "Error code: context_length_exceeded",
        "Please reduce the length of the messages or completion.",
    ],
)
def test_context_window_errors_are_recognised(message: str) -> None:
    assert is_context_window_error(400, message)


def test_context_window_needs_a_client_error_status_and_the_wording() -> None:
    assert not is_context_window_error(400, "messages: field required")
    assert not is_context_window_error(500, "maximum context length is 8192 tokens")
    assert not is_context_window_error(None, "prompt is too long")
    assert is_context_window_error(413, "Prompt is too long")
