"""Google's service-account OAuth without I/O: the key, the grant's claims and body, the token answer."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from ccr_fast.protocol.google_oauth import (
    ASSERTION_LIFETIME_S,
    CLOUD_PLATFORM_SCOPE,
    DEFAULT_TOKEN_URI,
    JWT_BEARER_GRANT,
    AccessToken,
    CredentialsError,
    ServiceAccountKey,
    TokenRefused,
    assertion_claims,
    parse_key_json,
    parse_token_response,
    token_request_body,
)

PEM = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"


def info(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": "abc",
        "private_key": PEM,
        "client_email": "sa@proj.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.example.test/token",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_a_key_file_gives_every_field() -> None:
    key = ServiceAccountKey.from_info(info())
    assert key.client_email == "sa@proj.iam.gserviceaccount.com"
    assert key.private_key == PEM
    assert key.private_key_id == "abc"
    assert key.project_id == "proj"
    assert key.token_uri == "https://oauth2.example.test/token"


def test_defaults_and_escaped_newlines() -> None:
    escaped = PEM.replace("\n", "\\n")
    key = ServiceAccountKey.from_info(
        info(type=None, token_uri=None, private_key_id=None, project_id=None, private_key=escaped)
    )
    assert key.private_key == PEM
    assert key.token_uri == DEFAULT_TOKEN_URI
    assert key.private_key_id is None and key.project_id is None


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([1, 2], "JSON object"),
        (info(type="authorized_user"), "type 'authorized_user'"),
        (info(client_email=None), "client_email"),
        (info(client_email=""), "client_email"),
        (info(private_key="not a key"), "private_key"),
        (info(private_key=None), "private_key"),
        (info(token_uri="ftp://x/token"), "token_uri"),
    ],
)
def test_unusable_keys_say_what_is_wrong(data: Any, fragment: str) -> None:
    with pytest.raises(CredentialsError, match=fragment):
        ServiceAccountKey.from_info(data)


def test_the_error_never_echoes_the_private_key() -> None:
    with pytest.raises(CredentialsError) as caught:
        ServiceAccountKey.from_info(info(private_key="secret-material-without-marker"))
    assert "secret-material" not in str(caught.value)


def test_identity_tells_keys_apart_without_the_secret() -> None:
    a = ServiceAccountKey.from_info(info())
    b = ServiceAccountKey.from_info(info(private_key_id="other"))
    no_id = ServiceAccountKey.from_info(info(private_key_id=None))
    assert a.identity != b.identity
    assert a.identity == ServiceAccountKey.from_info(info()).identity
    assert PEM not in "".join(no_id.identity) and "MIIB" not in "".join(no_id.identity)


def test_parse_key_json() -> None:
    assert parse_key_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(CredentialsError, match="not valid JSON"):
        parse_key_json("{nope")


def test_assertion_claims() -> None:
    key = ServiceAccountKey.from_info(info())
    claims = assertion_claims(key, 1_700_000_000)
    assert claims == {
        "iss": key.client_email,
        "scope": CLOUD_PLATFORM_SCOPE,
        "aud": key.token_uri,
        "iat": 1_700_000_000,
        "exp": 1_700_000_000 + ASSERTION_LIFETIME_S,
    }


def test_token_request_body_is_the_jwt_bearer_grant() -> None:
    form = parse_qs(token_request_body("a.b.c").decode())
    assert form == {"grant_type": [JWT_BEARER_GRANT], "assertion": ["a.b.c"]}


def test_a_token_answer() -> None:
    body = orjson.dumps({"access_token": "ya29.x", "expires_in": 3599, "token_type": "Bearer"})
    token = parse_token_response(200, body, now=100.0)
    assert token == AccessToken("ya29.x", 3599.0, 3699.0)


@pytest.mark.parametrize(
    ("status", "body", "refused", "fragment"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
            True,
            "invalid_grant",
        ),
        (401, {"error": "unauthorized_client"}, True, "HTTP 401 unauthorized_client"),
        (403, {"error": {"code": 403, "status": "PERMISSION_DENIED"}}, True, "PERMISSION_DENIED"),
        (429, {"error": "rate_limited"}, False, "HTTP 429"),
        (503, b"<html>unavailable</html>", False, "HTTP 503"),
        (200, {"token_type": "Bearer"}, False, "without an access_token"),
        (200, {"access_token": "t", "expires_in": 0}, False, "without an access_token"),
    ],
)
def test_answers_without_a_token(status: int, body: Any, refused: bool, fragment: str) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(TokenRefused) as caught:
        parse_token_response(status, raw, now=0.0)
    assert caught.value.refused is refused
    assert fragment in caught.value.message


def test_refresh_timing() -> None:
    hour = AccessToken("t", 3600.0, 3600.0)
    assert hour.fresh(3000.0) and not hour.fresh(3301.0)  # refreshed five minutes early
    assert hour.usable(3590.0) and not hour.usable(3596.0)
    short = AccessToken("t", 4.0, 4.0)  # a test's short-lived token: a quarter of its life to spare
    assert short.fresh(2.9) and not short.fresh(3.1)
    assert short.usable(3.5) and not short.usable(3.7)
