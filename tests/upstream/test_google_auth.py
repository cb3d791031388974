"""Google access tokens against the mock provider's real token endpoint: where credentials come from, the
JWT-bearer exchange, caching, one refresh at a time, and every way it can fail."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.google_keys import ServiceAccount, new_service_account

from ccr_fast.mock import MockProvider
from ccr_fast.protocol.google_oauth import AccessToken
from ccr_fast.upstream.auth import AuthFailure, UpstreamAuthError
from ccr_fast.upstream.fast_transport import FastTransport
from ccr_fast.upstream.google_auth import (
    ApplicationDefaultCredentials,
    GoogleAuth,
    ServiceAccountCredentials,
    TokenCache,
    resolve_credentials,
)
from ccr_fast.upstream.transport import Transport, UpstreamRequest


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as provider:
        yield provider


@pytest.fixture
async def transport() -> AsyncIterator[FastTransport]:
    t = FastTransport(pool_size=4, connect_timeout=5.0)
    try:
        yield t
    finally:
        await t.aclose()


@pytest.fixture
def account(mock: MockProvider) -> ServiceAccount:
    sa = new_service_account(mock.url + "/token")
    mock.oauth.trust(sa.public_pem)
    return sa


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vertex_request(mock: MockProvider) -> UpstreamRequest:
    url = f"{mock.url}/v1/projects/p/locations/us-central1/publishers/google/models/gemini-x:generateContent"
    body = b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}'
    return UpstreamRequest("POST", url, {"content-type": "application/json"}, body, timeout=10)


async def send(transport: Transport, request: UpstreamRequest) -> int:
    resp = await transport.send(request)
    try:
        await resp.read()
    finally:
        resp.close()
    return resp.status


# --- where the credentials come from -------------------------------------------------------------------


def test_the_credentials_option_as_object_text_or_path(tmp_path: Path) -> None:
    sa = new_service_account("https://oauth2.example.test/token", project="from-key")
    path = sa.write(tmp_path / "key.json")
    for given in (sa.info, json.dumps(sa.info), str(path)):
        creds = resolve_credentials({"credentials": given}, {})
        assert isinstance(creds, ServiceAccountCredentials)
        assert creds.problem is None
        assert creds.project_id == "from-key"
        assert creds.key is not None and creds.key.client_email == sa.info["client_email"]


def test_client_email_and_private_key_options() -> None:
    sa = new_service_account("https://oauth2.example.test/token")
    options = {"client_email": sa.info["client_email"], "private_key": sa.info["private_key"]}
    creds = resolve_credentials(options, {})
    assert isinstance(creds, ServiceAccountCredentials) and creds.problem is None
    assert creds.key is not None and creds.key.token_uri == "https://oauth2.googleapis.com/token"


def test_google_application_credentials_and_precedence(tmp_path: Path) -> None:
    env_key = new_service_account("https://oauth2.example.test/token", project="env")
    option_key = new_service_account("https://oauth2.example.test/token", project="option")
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(env_key.write(tmp_path / "env.json"))}
    assert resolve_credentials({}, env).project_id == "env"
    assert resolve_credentials({"credentials": option_key.info}, env).project_id == "option"


def test_other_credential_types_go_to_application_default_credentials(tmp_path: Path) -> None:
    user = {"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(user))
    creds = resolve_credentials({}, {"GOOGLE_APPLICATION_CREDENTIALS": str(path)})
    assert isinstance(creds, ApplicationDefaultCredentials) and creds.problem is None


def test_gcloud_application_default_credentials_count_as_found(tmp_path: Path) -> None:
    nothing = resolve_credentials({}, {"HOME": str(tmp_path)})
    assert isinstance(nothing, ApplicationDefaultCredentials)
    assert nothing.problem is not None and "GOOGLE_APPLICATION_CREDENTIALS" in nothing.problem
    (tmp_path / "gcloud").mkdir()
    (tmp_path / "gcloud" / "application_default_credentials.json").write_text("{}")
    found = resolve_credentials({}, {"HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")})
    assert isinstance(found, ApplicationDefaultCredentials) and found.problem is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read"),
        ("{not json", "not valid JSON"),
        ('{"type": "service_account", "client_email": "a@b"}', "private_key"),
    ],
)
async def test_unusable_key_files_are_config_errors(
    tmp_path: Path, transport: FastTransport, content: str | None, fragment: str
) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content)
    creds = resolve_credentials({}, {"GOOGLE_APPLICATION_CREDENTIALS": str(path)})
    assert creds.problem is not None and fragment in creds.problem and str(path) in creds.problem
    with pytest.raises(UpstreamAuthError) as caught:
        await creds.token(transport, None)
    assert caught.value.failure is AuthFailure.CONFIG
    assert fragment in caught.value.message


# --- the exchange against the mock's token endpoint ------------------------------------------------------


async def test_a_signed_assertion_buys_a_token_vertex_accepts(
    mock: MockProvider, transport: FastTransport, account: ServiceAccount
) -> None:
    auth = GoogleAuth(resolve_credentials({"credentials": account.info}, {}))
    unsigned = vertex_request(mock)
    assert await send(transport, unsigned) == 401  # the mock's Vertex wants a token
    request = vertex_request(mock)
    await auth.authorize(request, transport)
    assert request.headers["authorization"].startswith("Bearer ya29.mock-")
    assert await send(transport, request) == 200
    again = vertex_request(mock)
    await auth.authorize(again, transport)
    assert again.headers["authorization"] == request.headers["authorization"]
    assert mock.stats["/token"] == 1  # cached
    grant = next(r for r in mock.requests if r["path"] == "/token")
    assert grant["headers"]["content-type"] == "application/x-www-form-urlencoded"


async def test_a_key_the_endpoint_does_not_trust_is_refused(
    mock: MockProvider, transport: FastTransport
) -> None:
    stranger = new_service_account(mock.url + "/token")  # never trusted
    auth = GoogleAuth(resolve_credentials({"credentials": stranger.info}, {}))
    with pytest.raises(UpstreamAuthError) as caught:
        await auth.authorize(vertex_request(mock), transport)
    assert caught.value.failure is AuthFailure.REFUSED
    assert "invalid_grant" in caught.value.message and "Invalid JWT Signature" in caught.value.message
    assert stranger.info["client_email"] in caught.value.message


@pytest.mark.parametrize(
    ("status", "failure"),
    [(400, AuthFailure.REFUSED), (403, AuthFailure.REFUSED), (503, AuthFailure.UNAVAILABLE)],
)
async def test_token_endpoint_failures(
    mock: MockProvider,
    transport: FastTransport,
    account: ServiceAccount,
    status: int,
    failure: AuthFailure,
) -> None:
    mock.oauth.fail(status, "invalid_grant" if status < 500 else "backend_error", "scripted")
    with pytest.raises(UpstreamAuthError) as caught:
        await resolve_credentials({"credentials": account.info}, {}).token(transport, None)
    assert caught.value.failure is failure
    assert f"HTTP {status}" in caught.value.message and "scripted" in caught.value.message


async def test_an_unreachable_token_endpoint(transport: FastTransport) -> None:
    sa = new_service_account(f"http://127.0.0.1:{dead_port()}/token")
    with pytest.raises(UpstreamAuthError) as caught:
        await resolve_credentials({"credentials": sa.info}, {}).token(transport, None)
    assert caught.value.failure is AuthFailure.UNAVAILABLE
    assert "could not get an access token" in caught.value.message


async def test_a_private_key_that_cannot_be_loaded(transport: FastTransport) -> None:
    sa = new_service_account("http://127.0.0.1:9/token")
    broken = dict(sa.info, private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(UpstreamAuthError) as caught:
        await resolve_credentials({"credentials": broken}, {}).token(transport, None)
    assert caught.value.failure is AuthFailure.CONFIG
    assert "cannot be loaded" in caught.value.message and "AAAA" not in caught.value.message


async def test_an_auth_problem_stops_the_request_before_any_token(
    mock: MockProvider, transport: FastTransport, account: ServiceAccount
) -> None:
    auth = GoogleAuth(resolve_credentials({"credentials": account.info}, {}), problem="no project")
    with pytest.raises(UpstreamAuthError, match="no project"):
        await auth.authorize(vertex_request(mock), transport)
    assert "/token" not in mock.stats


async def test_an_expired_token_is_refreshed_once_for_concurrent_requests(
    mock: MockProvider, transport: FastTransport, account: ServiceAccount
) -> None:
    mock.oauth.lifetime = 1
    creds = resolve_credentials({"credentials": account.info}, {})
    first = await creds.token(transport, None)
    await asyncio.sleep(1.1)  # let it expire
    tokens = await asyncio.gather(*(creds.token(transport, None) for _ in range(12)))
    assert len(set(tokens)) == 1 and tokens[0] != first
    assert mock.stats["/token"] == 2


# --- application-default credentials (google-auth on a worker thread) ------------------------------------


async def test_application_default_credentials_refresh_through_google_auth(
    mock: MockProvider, transport: FastTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = {
        "type": "authorized_user",
        "client_id": "cid.apps.googleusercontent.com",
        "client_secret": "secret",
        "refresh_token": "1//refresh-me",
    }
    # google-auth always sends these to Google's own token endpoint; here it is the mock's
    monkeypatch.setattr("google.oauth2.credentials._GOOGLE_OAUTH2_TOKEN_ENDPOINT", mock.url + "/token")
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(user))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setattr("ccr_fast.upstream.google_auth._CACHES", {})
    creds = resolve_credentials({}, {"GOOGLE_APPLICATION_CREDENTIALS": str(path)})
    assert isinstance(creds, ApplicationDefaultCredentials)
    with pytest.raises(UpstreamAuthError) as caught:  # a refresh token the endpoint does not know
        await creds.token(transport, None)
    assert caught.value.failure is AuthFailure.REFUSED and "invalid_grant" in caught.value.message
    mock.oauth.trust_refresh_token("1//refresh-me")
    request = vertex_request(mock)
    await GoogleAuth(creds).authorize(request, transport)
    assert await send(transport, request) == 200


async def test_no_application_default_credentials_at_all(
    transport: FastTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("APPDATA", str(tmp_path))
    import google.auth.compute_engine._metadata as metadata

    monkeypatch.setattr(metadata, "_NO_GCE_CHECK", True)  # not on Google Cloud: no metadata server
    monkeypatch.setattr("ccr_fast.upstream.google_auth._CACHES", {})
    creds = resolve_credentials({}, {"HOME": str(tmp_path)})
    with pytest.raises(UpstreamAuthError) as caught:
        await creds.token(transport, None)
    assert caught.value.failure is AuthFailure.CONFIG
    assert "GOOGLE_APPLICATION_CREDENTIALS" in caught.value.message


# --- the token cache on its own ------------------------------------------------------------------------


class Fetcher:
    """A scripted token source: each call takes the next outcome (a token value or an exception)."""

    def __init__(self, *outcomes: str | Exception, lifetime: float = 3600.0) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.lifetime = lifetime
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, transport: Transport, proxy: str | None) -> AccessToken:
        self.calls += 1
        await self.release.wait()
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        loop = asyncio.get_running_loop()
        return AccessToken(outcome, self.lifetime, loop.time() + self.lifetime)


NO_TRANSPORT: Any = None


async def test_concurrent_callers_share_one_fetch_and_its_failure() -> None:
    fetch = Fetcher(UpstreamAuthError(AuthFailure.UNAVAILABLE, "down"), "tok-2")
    cache = TokenCache(fetch, "test")
    fetch.release.clear()
    waiting = [asyncio.ensure_future(cache.token(NO_TRANSPORT, None)) for _ in range(5)]
    await asyncio.sleep(0)
    fetch.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, UpstreamAuthError) for r in results)
    assert fetch.calls == 1
    assert await cache.token(NO_TRANSPORT, None) == "tok-2"  # the next request tries again
    assert fetch.calls == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_fetch_for_others() -> None:
    fetch = Fetcher("tok")
    cache = TokenCache(fetch, "test")
    fetch.release.clear()
    first = asyncio.ensure_future(cache.token(NO_TRANSPORT, None))
    second = asyncio.ensure_future(cache.token(NO_TRANSPORT, None))
    await asyncio.sleep(0)
    first.cancel()
    fetch.release.set()
    assert await second == "tok"
    assert fetch.calls == 1


async def test_a_failed_refresh_keeps_serving_a_token_that_is_still_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("ccr_fast.upstream.google_auth.time.monotonic", lambda: clock[0])
    fetch = Fetcher("old", UpstreamAuthError(AuthFailure.UNAVAILABLE, "down"), "new")

    async def fixed(transport: Transport, proxy: str | None) -> AccessToken:
        token = await fetch(transport, proxy)
        return AccessToken(token.value, 100.0, clock[0] + 100.0)

    cache = TokenCache(fixed, "test")
    assert await cache.token(NO_TRANSPORT, None) == "old"
    clock[0] += 80  # due for a refresh (last quarter), still valid
    assert await cache.token(NO_TRANSPORT, None) == "old"  # the refresh failed: the old one serves
    assert await cache.token(NO_TRANSPORT, None) == "new"
    assert fetch.calls == 3
