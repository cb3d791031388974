"""Bad input gets a clear Anthropic-shaped error with the right status, a request id, and no trace."""

from __future__ import annotations

import httpx
import pytest

from ccr_fast.mock import MockProvider
from tests.servers import RunningServer

pytestmark = pytest.mark.e2e


def _post(
    gw: RunningServer, content: bytes | str, path: str = "/v1/messages", **kw: object
) -> httpx.Response:
    return httpx.post(
        gw.url + path, content=content, headers={"content-type": "application/json"}, timeout=15, **kw
    )  # type: ignore[arg-type]


def _assert_error(r: httpx.Response, status: int, etype: str, needle: str = "") -> None:
    assert r.status_code == status, r.text
    data = r.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == etype
    assert needle in data["error"]["message"]
    assert r.headers["request-id"].startswith("req_")
    assert data["request_id"] == r.headers["request-id"]
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "malformed JSON"),
        (b"", "empty"),
        (b"[1,2]", "JSON object"),
        (b'{"messages": []}', "model: field required"),
        (b'{"model": "x"}', "messages: field required"),
        (b'{"model": 5, "messages": []}', "model: expected a non-empty string"),
        (b'{"model": "x", "messages": "hi"}', "messages: expected an array"),
        (b'{"model": "x", "messages": [{"role": "bot", "content": "a"}]}', "messages[0].role"),
        (b'{"model": "x", "messages": [{"role": "user", "content": 3}]}', "messages[0].content"),
        (b'{"model": "x", "max_tokens": "ten", "messages": []}', "max_tokens"),
        (b'{"model": "x", "stream": "yes", "messages": []}', "stream"),
        (b'{"model": "x", "tools": {}, "messages": []}', "tools"),
    ],
)
def test_invalid_bodies(gateway: RunningServer, body: bytes, needle: str) -> None:
    _assert_error(_post(gateway, body), 400, "invalid_request_error", needle)


def test_unknown_provider_is_404(gateway: RunningServer) -> None:
    r = _post(
        gateway, b'{"model": "nope,some-model", "max_tokens": 5, "messages": [{"role":"user","content":"x"}]}'
    )
    _assert_error(r, 404, "not_found_error", "nope")


def test_body_over_limit_is_413(gateway: RunningServer) -> None:
    big = b'{"model":"x","messages":[],"pad":"' + b"a" * (33 * 1024 * 1024) + b'"}'
    r = _post(gateway, big)
    _assert_error(r, 413, "request_too_large")


def test_upstream_unreachable(gateway: RunningServer) -> None:
    r = _post(gateway, b'{"model": "dead,m", "max_tokens": 5, "messages": [{"role":"user","content":"x"}]}')
    _assert_error(r, 502, "api_error", "unreachable")


def test_upstream_500_maps_to_api_error(gateway: RunningServer, mock: MockProvider) -> None:
    mock.script([{"error": {"status": 500, "message": "boom"}}])
    r = _post(gateway, b'{"model": "claude-x", "max_tokens": 5, "messages": [{"role":"user","content":"x"}]}')
    _assert_error(r, 500, "api_error", "boom")


def test_upstream_503_maps_to_overloaded(gateway: RunningServer, mock: MockProvider) -> None:
    mock.script([{"error": {"status": 503, "message": "unavailable"}}])
    r = _post(gateway, b'{"model": "claude-x", "max_tokens": 5, "messages": [{"role":"user","content":"x"}]}')
    _assert_error(r, 529, "overloaded_error")


def test_unknown_route_is_404(gateway: RunningServer) -> None:
    _assert_error(httpx.get(gateway.url + "/v2/whatever"), 404, "not_found_error")


def test_wrong_method_is_405(gateway: RunningServer) -> None:
    _assert_error(httpx.get(gateway.url + "/v1/messages"), 405, "invalid_request_error")


def test_server_survives_garbage(gateway: RunningServer) -> None:
    for _ in range(3):
        _post(gateway, b"\xff\xfe\x00garbage")
    assert httpx.get(gateway.url + "/health").status_code == 200
