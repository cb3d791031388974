"""Anthropic's error shape, the status/type tables, and mapping upstream errors of every dialect."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ccr_fast.protocol.errors import (
    STATUS_TO_TYPE,
    TYPE_TO_STATUS,
    GatewayError,
    error_body,
    error_dict,
    error_event,
    error_type_for_status,
    from_upstream,
    map_upstream_status,
    upstream_error_message,
)
from ccr_fast.protocol.sse import SSEDecoder

# --- tables ---------------------------------------------------------------------------------------------


def test_status_and_type_tables_are_inverse() -> None:
    assert len(TYPE_TO_STATUS) == len(STATUS_TO_TYPE)
    for status, etype in STATUS_TO_TYPE.items():
        assert TYPE_TO_STATUS[etype] == status


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (502, "api_error"),
        (599, "api_error"),
        (405, "invalid_request_error"),
        (418, "invalid_request_error"),
    ],
)
def test_error_type_for_status(status: int, etype: str) -> None:
    assert error_type_for_status(status) == etype


# --- GatewayError and the wire shapes -------------------------------------------------------------------


def test_gateway_error_defaults_its_type_from_the_status() -> None:
    err = GatewayError(429, "slow down")
    assert (err.status, err.message, err.error_type, err.headers) == (
        429,
        "slow down",
        "rate_limit_error",
        {},
    )
    assert str(err) == "slow down"


def test_gateway_error_keeps_an_explicit_type_and_headers() -> None:
    err = GatewayError(400, "nope", "permission_error", {"retry-after": "3"})
    assert err.error_type == "permission_error" and err.headers == {"retry-after": "3"}


def test_error_body_is_anthropics_shape() -> None:
    body = orjson.loads(GatewayError(404, "no such model").body())
    assert body == {"type": "error", "error": {"type": "not_found_error", "message": "no such model"}}


def test_error_body_carries_the_request_id_when_given() -> None:
    body = orjson.loads(GatewayError(500, "boom").body("req_123"))
    assert body == {
        "type": "error",
        "error": {"type": "api_error", "message": "boom"},
        "request_id": "req_123",
    }
    assert "request_id" not in error_dict("api_error", "x", "")


def test_error_body_escapes_whatever_the_message_holds() -> None:
    message = 'quote " backslash \\ newline \n unicode é \u2028'
    assert orjson.loads(error_body("api_error", message))["error"]["message"] == message


def test_error_event_is_one_well_formed_sse_frame() -> None:
    raw = GatewayError(529, "Overloaded").event()
    assert raw == error_event("overloaded_error", "Overloaded")
    assert raw.startswith(b"event: error\ndata: ") and raw.endswith(b"\n\n")
    decoder = SSEDecoder()
    events = decoder.feed(raw)
    assert decoder.close() == []
    assert len(events) == 1
    name, data = events[0]
    assert name == b"error"
    assert orjson.loads(data) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_error_event_stays_one_frame_for_multiline_messages() -> None:
    raw = error_event("api_error", "line one\nline two\n\nline four")
    assert raw.count(b"\n\n") == 1
    (event,) = SSEDecoder().feed(raw)
    assert orjson.loads(event[1])["error"]["message"] == "line one\nline two\n\nline four"


# --- upstream status mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        (400, (400, "invalid_request_error")),
        (422, (400, "invalid_request_error")),
        (401, (401, "authentication_error")),
        (402, (402, "billing_error")),
        (403, (403, "permission_error")),
        (404, (404, "not_found_error")),
        (408, (504, "timeout_error")),
        (413, (413, "request_too_large")),
        (429, (429, "rate_limit_error")),
        (500, (500, "api_error")),
        (502, (529, "overloaded_error")),
        (503, (529, "overloaded_error")),
        (504, (504, "timeout_error")),
        (529, (529, "overloaded_error")),
        (501, (500, "api_error")),
        (520, (500, "api_error")),
        (409, (400, "invalid_request_error")),
        (302, (400, "invalid_request_error")),
    ],
)
def test_map_upstream_status(upstream: int, expected: tuple[int, str]) -> None:
    assert map_upstream_status(upstream) == expected


# --- upstream messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "OpenAI says no", "type": "invalid_request_error"}}', "OpenAI says no"),
        (b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}', "Overloaded"),
        (
            b'[{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}]',
            "Quota exceeded",
        ),
        (b'{"error": "plain string error"}', "plain string error"),
        (b'{"message": "top-level message"}', "top-level message"),
        (b'{"detail": "something else"}', "upstream returned HTTP 418"),
        (b'{"error": {"message": ""}}', "upstream returned HTTP 418"),
        (b"[]", "upstream returned HTTP 418"),
        (b"  <html>Bad Gateway</html>\n", "<html>Bad Gateway</html>"),
        (b"", "upstream returned HTTP 418"),
        (b"   \n", "upstream returned HTTP 418"),
        (b"caf\xc3\xa9 \xff broken", "café \ufffd broken"),
    ],
)
def test_upstream_error_message(body: bytes, expected: str) -> None:
    assert upstream_error_message(body, 418) == expected


def test_a_huge_non_json_error_body_is_cut_to_4k() -> None:
    assert len(upstream_error_message(b"x" * 100_000, 500)) == 4096


# --- from_upstream --------------------------------------------------------------------------------------


def test_from_upstream_refuses_success_statuses() -> None:
    for status in (200, 204, 299):
        with pytest.raises(ValueError):
            from_upstream(status, b"{}")


def test_openai_error_maps_status_and_message() -> None:
    err = from_upstream(400, b'{"error": {"message": "bad tool schema", "type": "invalid_request_error"}}')
    assert (err.status, err.error_type, err.message) == (400, "invalid_request_error", "bad tool schema")


def test_anthropic_error_keeps_its_exact_type() -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "permission_error", "message": "not allowed"}})
    err = from_upstream(400, body)
    assert (err.status, err.error_type, err.message) == (400, "permission_error", "not allowed")


def test_anthropic_error_with_an_unknown_type_gets_the_mapped_one() -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "weird_error", "message": "m"}})
    assert from_upstream(503, body).error_type == "overloaded_error"


@pytest.mark.parametrize(
    ("google_status", "expected"),
    [
        ("RESOURCE_EXHAUSTED", (429, "rate_limit_error")),
        ("UNAVAILABLE", (529, "overloaded_error")),
        ("DEADLINE_EXCEEDED", (504, "timeout_error")),
        ("PERMISSION_DENIED", (403, "permission_error")),
        ("INVALID_ARGUMENT", (400, "invalid_request_error")),
    ],
)
def test_google_errors_map_by_their_status_name(google_status: str, expected: tuple[int, str]) -> None:
    body: Any = [{"error": {"code": 400, "message": "gemini says", "status": google_status}}]
    err = from_upstream(400, orjson.dumps(body))
    assert (err.status, err.error_type) == expected
    assert err.message == "gemini says"


def test_retry_after_headers_are_kept_and_nothing_else() -> None:
    headers = {
        "retry-after": "12",
        "retry-after-ms": "12000",
        "x-ratelimit-remaining": "0",
        "set-cookie": "a",
    }
    err = from_upstream(429, b'{"error": {"message": "rate limited"}}', headers)
    assert (err.status, err.error_type) == (429, "rate_limit_error")
    assert err.headers == {"retry-after": "12", "retry-after-ms": "12000"}


def test_non_json_error_body_uses_its_text() -> None:
    err = from_upstream(503, b"upstream connect error or disconnect/reset before headers")
    assert (err.status, err.error_type) == (529, "overloaded_error")
    assert err.message == "upstream connect error or disconnect/reset before headers"
    assert err.headers == {}


def test_the_client_facing_body_of_a_mapped_error() -> None:
    err = from_upstream(502, b"")
    assert orjson.loads(err.body("req_1")) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "upstream returned HTTP 502"},
        "request_id": "req_1",
    }
