"""APIKEY checks: where the key may be presented, which paths stay public, and the 401s."""

from __future__ import annotations

import hmac

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


KEYS = {"ci-bot": "sk-ci-0001", "alice": "sk-alice-0002", "default": KEY}


@pytest.mark.parametrize(("name", "key"), list(KEYS.items()))
def test_each_named_key_answers_its_name(name: str, key: str) -> None:
    auth = ApiKeyAuth(KEYS)
    assert auth.check({"x-api-key": key}) == name
    assert auth.check({"authorization": f"Bearer {key}"}) == name


def test_a_single_key_is_named_default() -> None:
    assert ApiKeyAuth(KEY).check({"x-api-key": KEY}) == "default"
    assert ApiKeyAuth(KEY).names == ("default",)


@pytest.mark.parametrize("presented", [*KEYS.values(), "sk-nobody", "sk-ci-000", ""])
def test_every_key_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch, presented: str) -> None:
    """No early exit: the number and size of comparisons is the same for any key, right or wrong."""
    auth = ApiKeyAuth(KEYS)
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    try:
        auth.check({"x-api-key": presented})
    except GatewayError as err:
        assert err.status == 401
    if presented:
        assert compared == [(32, 32)] * len(KEYS)


@pytest.mark.parametrize("keys", [{}, {"a": "same", "b": "same"}, {"a": ""}])
def test_keys_must_exist_and_differ(keys: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        ApiKeyAuth(keys)
