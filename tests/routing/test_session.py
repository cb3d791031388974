"""Session ids from every place Claude Code has put them, and the per-session usage LRU."""

from __future__ import annotations

from typing import Any

import pytest

from ccr_fast.routing.session import SessionUsage, session_id, usage_input_tokens

UUID = "3f1c9a52-7d0e-4b8a-9c61-2e5f0d4b7a19"


def body_with_user_id(user_id: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-5", "metadata": {"user_id": user_id}}


def test_older_user_id_with_session_suffix() -> None:
    user_id = f"user_9a8b7c6d5e4f3a2b1c0d_account__session_{UUID}"
    assert session_id(body_with_user_id(user_id), {}) == UUID


def test_newer_user_id_as_json_string() -> None:
    user_id = f'{{"device_id":"e1f2a3b4c5d6","account_uuid":"","session_id":"{UUID}"}}'
    assert session_id(body_with_user_id(user_id), {}) == UUID


def test_session_header() -> None:
    assert session_id({"model": "claude-sonnet-5"}, {"x-claude-code-session-id": UUID}) == UUID


def test_body_wins_over_header() -> None:
    user_id = f'{{"device_id":"d","session_id":"{UUID}"}}'
    assert session_id(body_with_user_id(user_id), {"x-claude-code-session-id": "other"}) == UUID


def test_header_used_when_user_id_has_no_session() -> None:
    body = body_with_user_id('{"device_id":"d","account_uuid":""}')
    assert session_id(body, {"x-claude-code-session-id": f"  {UUID}  "}) == UUID


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"metadata": None},
        {"metadata": "user_x_session_abc"},
        {"metadata": []},
        body_with_user_id(None),
        body_with_user_id(12345),
        body_with_user_id(""),
        body_with_user_id("user_abc_account_"),
        body_with_user_id("user_abc_account__session_"),
        body_with_user_id("{not json"),
        body_with_user_id('{"session_id": 7}'),
        body_with_user_id('{"session_id": ""}'),
        body_with_user_id("[1, 2]"),
        body_with_user_id('["_session_x"]'),
        body_with_user_id("{\ud800}"),
    ],
)
def test_garbage_yields_none(body: dict[str, Any]) -> None:
    assert session_id(body, {}) is None


@pytest.mark.parametrize("header", ["", "   "])
def test_blank_header_yields_none(header: str) -> None:
    assert session_id({}, {"x-claude-code-session-id": header}) is None


def test_usage_input_tokens_adds_cache_tokens() -> None:
    usage = {
        "input_tokens": 12,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 70000,
        "output_tokens": 500,
    }
    assert usage_input_tokens(usage) == 73012
    assert usage_input_tokens({"input_tokens": None, "cache_read_input_tokens": True}) == 0
    assert usage_input_tokens({}) == 0


def test_session_usage_records_and_reads() -> None:
    sessions = SessionUsage()
    assert sessions.get("a") is None
    sessions.record("a", 100)
    sessions.record_usage("b", {"input_tokens": 5, "cache_read_input_tokens": 61000})
    assert sessions.get("a") == 100
    assert sessions.get("b") == 61005
    sessions.record("a", 200)
    assert sessions.get("a") == 200


def test_session_usage_evicts_least_recently_used() -> None:
    sessions = SessionUsage(max_sessions=2)
    sessions.record("a", 1)
    sessions.record("b", 2)
    assert sessions.get("a") == 1  # a is now more recent than b
    sessions.record("c", 3)
    assert len(sessions) == 2
    assert sessions.get("b") is None
    assert sessions.get("a") == 1
    assert sessions.get("c") == 3
