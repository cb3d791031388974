"""APIKEY checks: where the key may be presented, which paths stay public, and the 401s."""

from __future__ import annotations

import pytest

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.server.auth import ApiKeyAuth, is_public, presented_key

KEY = "sk-local-1234"


@pytest.mark.parametrize("path", ["/", "/health", "/ui", "/ui/", "/ui/index.html", "/ui/assets/app.js"])
def test_public_paths(path: str) -> None:
    assert is_public(path)


@pytest.mark.parametrize(
    "path", ["/v1/messages", "/api/config", "/api/transformers", "/uix", "/healthz", "/ui-admin", ""]
)
def test_everything_else_needs_the_key(path: str) -> None:
    assert not is_public(path)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-api-key": KEY}, KEY),
        ({"authorization": f"Bearer {KEY}"}, KEY),
        ({"authorization": f"bearer {KEY}"}, KEY),
        ({"authorization": f"BEARER   {KEY}  "}, KEY),
        ({"x-api-key": KEY, "authorization": "Bearer other"}, KEY),
        ({"x-api-key": "", "authorization": f"Bearer {KEY}"}, KEY),
        ({"authorization": f"Basic {KEY}"}, None),
        ({"authorization": KEY}, None),
        ({"authorization": "Bearer"}, None),
        ({}, None),
    ],
)
def test_presented_key(headers: dict[str, str], expected: str | None) -> None:
    assert presented_key(headers) == expected


def test_the_right_key_passes_either_way() -> None:
    auth = ApiKeyAuth(KEY)
    auth.check({"x-api-key": KEY})
    auth.check({"authorization": f"Bearer {KEY}"})


def test_missing_key_is_a_401_authentication_error() -> None:
    with pytest.raises(GatewayError) as caught:
        ApiKeyAuth(KEY).check({"authorization": "Basic abc"})
    err = caught.value
    assert (err.status, err.error_type) == (401, "authentication_error")
    assert "missing API key" in err.message


@pytest.mark.parametrize("wrong", ["sk-local-123", "sk-local-12345", "SK-LOCAL-1234", "x", "ключ"])
def test_wrong_key_is_a_401_that_does_not_echo_the_key(wrong: str) -> None:
    with pytest.raises(GatewayError) as caught:
        ApiKeyAuth(KEY).check({"x-api-key": wrong})
    err = caught.value
    assert (err.status, err.error_type, err.message) == (401, "authentication_error", "invalid API key")
    assert KEY not in err.body().decode() and wrong not in err.body().decode()
