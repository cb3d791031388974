"""The mock provider's Google routes on their own: the token endpoint, Vertex AI, and Gemini's countTokens."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from google.auth import crypt, jwt
from tests.google_keys import ServiceAccount, new_service_account

from ccr_fast.mock import MockProvider
from ccr_fast.mock.vertex import word_count

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PREFIX = "/v1/projects/p/locations/us-east5/publishers"


@pytest.fixture(scope="module")
def account() -> ServiceAccount:
    return new_service_account("http://placeholder/token")


@pytest.fixture
def trusted(mock: MockProvider, account: ServiceAccount) -> ServiceAccount:
    mock.oauth.trust(account.public_pem)
    return account


def assertion(account: ServiceAccount, aud: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": account.info["client_email"], "scope": SCOPE, "aud": aud, "iat": now, "exp": now + 600}
    payload.update(claims)
    signer = crypt.RSASigner.from_string(account.info["private_key"], key_id="key-1")
    return jwt.encode(signer, payload).decode()


def grant(mock: MockProvider, **form: str) -> httpx.Response:
    return httpx.post(mock.url + "/token", data=form, timeout=10)


def token(mock: MockProvider, account: ServiceAccount) -> str:
    resp = grant(mock, grant_type=JWT_BEARER, assertion=assertion(account, mock.url + "/token"))
    assert resp.status_code == 200, resp.text
    value: str = resp.json()["access_token"]
    return value


def post(mock: MockProvider, path: str, body: Any, bearer: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.post(mock.url + path, content=orjson.dumps(body), headers=headers, timeout=10)


# --- the token endpoint ----------------------------------------------------------------------------------


def test_a_signed_assertion_gets_a_token(mock: MockProvider, trusted: ServiceAccount) -> None:
    mock.oauth.lifetime = 120
    resp = grant(mock, grant_type=JWT_BEARER, assertion=assertion(trusted, mock.url + "/token"))
    assert resp.status_code == 200
    data = resp.json()
    assert data["expires_in"] == 120 and data["token_type"] == "Bearer"
    assert data["access_token"].startswith("ya29.")
    assert mock.oauth.granted == 1


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": JWT_BEARER, "assertion": "not.a.jwt"}, "invalid_grant"),
    ],
)
def test_malformed_grants(
    mock: MockProvider, trusted: ServiceAccount, form: dict[str, str], error: str
) -> None:
    resp = grant(mock, **form)
    assert resp.status_code == 400 and resp.json()["error"] == error


def test_a_key_nobody_trusted_is_refused(mock: MockProvider) -> None:
    stranger = new_service_account("x")
    resp = grant(mock, grant_type=JWT_BEARER, assertion=assertion(stranger, mock.url + "/token"))
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"aud": "https://oauth2.googleapis.com/token"}, "invalid_grant"),
        ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "invalid_scope"),
        ({"iat": 1_000, "exp": 1_600}, "invalid_grant"),  # expired assertion
    ],
)
def test_claims_are_checked(
    mock: MockProvider, trusted: ServiceAccount, claims: dict[str, Any], error: str
) -> None:
    aud = claims.pop("aud", mock.url + "/token")
    resp = grant(mock, grant_type=JWT_BEARER, assertion=assertion(trusted, aud, **claims))
    assert resp.status_code == 400 and resp.json()["error"] == error


def test_refresh_token_grants(mock: MockProvider) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": "1//r", "client_id": "c", "client_secret": "s"}
    assert grant(mock, **form).json()["error"] == "invalid_grant"
    mock.oauth.trust_refresh_token("1//r")
    assert grant(mock, **form).status_code == 200


def test_scripted_failure_and_recovery(mock: MockProvider, trusted: ServiceAccount) -> None:
    mock.oauth.fail(503, "backend_error", "try later")
    resp = grant(mock, grant_type=JWT_BEARER, assertion=assertion(trusted, mock.url + "/token"))
    assert resp.status_code == 503
    assert resp.json() == {"error": "backend_error", "error_description": "try later"}
    mock.oauth.recover()
    assert token(mock, trusted)


def test_reset_forgets_the_script_but_not_keys_or_tokens(mock: MockProvider, trusted: ServiceAccount) -> None:
    mock.oauth.lifetime = 60
    mock.oauth.fail(503)
    mock.reset()
    issued = token(mock, trusted)  # the failure is gone, the key still trusted
    mock.reset()
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert post(mock, f"{PREFIX}/google/models/g:generateContent", body, issued).status_code == 200
    assert mock.oauth.lifetime == 3600 and mock.oauth.granted == 0


# --- Vertex AI -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bearer", [None, "ya29.made-up"])
def test_vertex_wants_a_token_the_endpoint_issued(mock: MockProvider, bearer: str | None) -> None:
    resp = post(mock, f"{PREFIX}/google/models/gemini-x:generateContent", {"contents": []}, bearer)
    assert resp.status_code == 401
    assert resp.json()["error"]["status"] == "UNAUTHENTICATED"


def test_an_expired_token_is_refused(mock: MockProvider, trusted: ServiceAccount) -> None:
    mock.oauth.lifetime = 1
    issued = token(mock, trusted)
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert post(mock, f"{PREFIX}/google/models/g:generateContent", body, issued).status_code == 200
    time.sleep(1.05)
    resp = post(mock, f"{PREFIX}/google/models/g:generateContent", body, issued)
    assert resp.status_code == 401 and "expired" in resp.json()["error"]["message"]


def test_gemini_on_vertex(mock: MockProvider, trusted: ServiceAccount) -> None:
    issued = token(mock, trusted)
    mock.script([{"text": "from vertex"}])
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    resp = post(mock, f"{PREFIX}/google/models/gemini-x:generateContent", body, issued)
    assert resp.json()["candidates"][0]["content"]["parts"][0]["text"] == "from vertex"
    stream = httpx.post(
        mock.url + f"{PREFIX}/google/models/gemini-x:streamGenerateContent?alt=sse",
        content=orjson.dumps(body),
        headers={"authorization": f"Bearer {issued}"},
    )
    assert stream.headers["content-type"].startswith("text/event-stream") and "data: " in stream.text


def test_claude_on_vertex(mock: MockProvider, trusted: ServiceAccount) -> None:
    issued = token(mock, trusted)
    body: dict[str, Any] = {
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    mock.script([{"text": "claude here"}])
    resp = post(mock, f"{PREFIX}/anthropic/models/claude-x@2025:rawPredict", body, issued)
    data = resp.json()
    assert data["content"][0]["text"] == "claude here" and data["model"] == "claude-x@2025"
    resp = post(
        mock, f"{PREFIX}/anthropic/models/claude-x:streamRawPredict", {**body, "stream": True}, issued
    )
    assert "event: message_stop" in resp.text


@pytest.mark.parametrize(
    ("method", "changes", "fragment"),
    [
        ("rawPredict", {"model": "claude-x"}, "model: Extra inputs"),
        ("rawPredict", {"anthropic_version": "2023-06-01"}, "anthropic_version"),
        ("rawPredict", {"stream": True}, "does not match"),
        ("streamRawPredict", {}, "does not match"),
    ],
)
def test_what_vertex_refuses_in_a_claude_body(
    mock: MockProvider, trusted: ServiceAccount, method: str, changes: dict[str, Any], fragment: str
) -> None:
    body = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 10, "messages": [], **changes}
    resp = post(mock, f"{PREFIX}/anthropic/models/claude-x:{method}", body, token(mock, trusted))
    assert resp.status_code == 400 and fragment in resp.json()["error"]["message"]


def test_vertex_counts(mock: MockProvider, trusted: ServiceAccount) -> None:
    issued = token(mock, trusted)
    gemini = {
        "contents": [{"role": "user", "parts": [{"text": "one two three"}]}],
        "systemInstruction": {"parts": [{"text": "four five"}]},
    }
    resp = post(mock, f"{PREFIX}/google/models/g:countTokens", gemini, issued)
    assert resp.json()["totalTokens"] == 5
    wrapped = {"generateContentRequest": {"model": "models/g", **gemini}, "contents": []}
    assert post(mock, f"{PREFIX}/google/models/g:countTokens", wrapped, issued).status_code == 400
    claude = {"model": "claude-x", "messages": [{"role": "user", "content": "six seven"}]}
    resp = post(mock, f"{PREFIX}/anthropic/models/count-tokens:rawPredict", claude, issued)
    assert resp.json() == {"input_tokens": 2}


def test_gemini_api_count_tokens(mock: MockProvider) -> None:
    body = {"generateContentRequest": {"contents": [{"role": "user", "parts": [{"text": "a b c d"}]}]}}
    path = mock.url + "/v1beta/models/gemini-x:countTokens"
    resp = httpx.post(path, content=orjson.dumps(body), headers={"x-goog-api-key": "k"})
    assert resp.json() == {"totalTokens": 4}
    assert httpx.post(path, content=orjson.dumps(body)).status_code == 401


def test_word_count_skips_roles_types_and_models() -> None:
    body = {"model": "m x", "messages": [{"role": "user", "content": [{"type": "text", "text": "a  b\nc"}]}]}
    assert word_count(body) == 3
