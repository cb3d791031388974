"""Google OAuth access tokens for Vertex AI: fetched when first needed, cached per credential, refreshed
before they expire.

Two kinds of credentials, as CCR (Google's ``GoogleAuth``) finds them:

* a **service-account key** (the transformer's ``credentials`` option, its ``client_email`` and
  ``private_key`` options, or the file ``GOOGLE_APPLICATION_CREDENTIALS`` names): ccr-fast signs the
  JWT-bearer assertion with ``google-auth`` on a worker thread and posts it to the key's ``token_uri``
  through the gateway's own async transport (pooled, and through ``PROXY_URL`` when one is set);
* anything else is **application-default credentials** (``gcloud auth application-default login``,
  workload identity, the metadata server on Google Cloud): ``google-auth`` finds and refreshes them on
  a worker thread (:mod:`ccr_fast.upstream.google_adc`).

``google-auth`` is imported only when a token is first fetched, so configs without Vertex AI never load it.
One refresh at a time per credential: concurrent requests that find the token due wait for the same fetch.
If a refresh fails while the old token is still valid, the old token is used and the failure logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from ccr_fast.protocol.google_oauth import (
    CLOUD_PLATFORM_SCOPE,
    AccessToken,
    CredentialsError,
    ServiceAccountKey,
    TokenRefused,
    assertion_claims,
    parse_key_json,
    parse_token_response,
    token_request_body,
)
from ccr_fast.upstream.auth import AuthFailure, UpstreamAuthError
from ccr_fast.upstream.transport import (
    Transport,
    UpstreamError,
    UpstreamRequest,
    UpstreamTimeout,
)

log = logging.getLogger("ccr_fast.google_auth")

ENV_CREDENTIALS: Final = "GOOGLE_APPLICATION_CREDENTIALS"
#: seconds a token request may take
TOKEN_TIMEOUT_S: Final = 20.0
#: connection-pool key for token requests (pools are per provider)
_POOL: Final = "google-oauth"
_HINT: Final = (
    "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, give the transformer a "
    "'credentials' option, or run `gcloud auth application-default login`"
)

TokenFetcher = Callable[[Transport, "str | None"], Awaitable[AccessToken]]


class TokenCache:
    """One credential's access token, shared by every provider and model that uses the credential."""

    def __init__(self, fetch: TokenFetcher, label: str) -> None:
        self._fetch = fetch
        self.label = label
        self._token: AccessToken | None = None
        self._pending: asyncio.Task[AccessToken] | None = None

    async def token(self, transport: Transport, proxy: str | None) -> str:
        current = self._token
        if current is not None and current.fresh(time.monotonic()):
            return current.value
        try:
            return (await self._refresh(transport, proxy)).value
        except UpstreamAuthError as exc:
            current = self._token
            if current is not None and current.usable(time.monotonic()):
                log.warning("refreshing the token of %s failed (%s); using the current one", self.label, exc)
                return current.value
            raise

    def _refresh(self, transport: Transport, proxy: str | None) -> Awaitable[AccessToken]:
        """The fetch in flight for this event loop, or a new one; shielded, so a caller that goes away
        does not cancel it for the others."""
        loop = asyncio.get_running_loop()
        pending = self._pending
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = loop.create_task(self._fetch_and_keep(transport, proxy))
            pending.add_done_callback(_retrieve)
            self._pending = pending
        return asyncio.shield(pending)

    async def _fetch_and_keep(self, transport: Transport, proxy: str | None) -> AccessToken:
        token = await self._fetch(transport, proxy)
        self._token = token
        log.info("got an access token for %s (valid %.0fs)", self.label, token.lifetime)
        return token


def _retrieve(task: asyncio.Task[AccessToken]) -> None:
    """Mark a failed fetch's exception as seen even when every waiter went away."""
    if not task.cancelled():
        task.exception()


#: token caches by credential identity, for the life of the process (a config reload keeps its tokens)
_CACHES: dict[tuple[str, ...], TokenCache] = {}


def _cache(identity: tuple[str, ...], fetch: TokenFetcher, label: str) -> TokenCache:
    cache = _CACHES.get(identity)
    if cache is None:
        cache = _CACHES[identity] = TokenCache(fetch, label)
    return cache


class GoogleCredentials(Protocol):
    #: the project the key belongs to, if it says
    project_id: str | None
    #: why these credentials cannot work (checked when the config is loaded), or None
    problem: str | None

    async def token(self, transport: Transport, proxy: str | None) -> str: ...


class ServiceAccountCredentials:
    """A service-account key, inline or from a file (read when the config is loaded)."""

    def __init__(self, key: ServiceAccountKey | None, origin: str, problem: str | None = None) -> None:
        self.key = key
        self.origin = origin
        self.problem = problem
        self.project_id = key.project_id if key is not None else None
        self._signer: Any = None
        self._cache: TokenCache | None = None
        if key is not None:
            self._cache = _cache(("service_account", *key.identity), self._fetch, key.client_email)

    @classmethod
    def from_info(cls, info: Any, origin: str) -> ServiceAccountCredentials:
        try:
            return cls(ServiceAccountKey.from_info(info), origin)
        except CredentialsError as exc:
            return cls(None, origin, f"{origin}: {exc}")

    async def token(self, transport: Transport, proxy: str | None) -> str:
        if self._cache is None:
            raise UpstreamAuthError(AuthFailure.CONFIG, self.problem or f"{self.origin}: no usable key")
        return await self._cache.token(transport, proxy)

    async def _fetch(self, transport: Transport, proxy: str | None) -> AccessToken:
        key = self.key
        assert key is not None
        assertion = await asyncio.to_thread(self._assertion, key, int(time.time()))
        request = UpstreamRequest(
            "POST",
            key.token_uri,
            {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
            token_request_body(assertion),
            timeout=TOKEN_TIMEOUT_S,
            provider=_POOL,
            proxy=proxy,
        )
        try:
            resp = await transport.send(request)
            try:
                raw = await resp.read()
            finally:
                resp.close()
        except UpstreamTimeout as exc:
            raise UpstreamAuthError(
                AuthFailure.TIMEOUT, f"the token endpoint {key.token_uri} did not answer in time ({exc})"
            ) from None
        except UpstreamError as exc:
            raise UpstreamAuthError(
                AuthFailure.UNAVAILABLE, f"could not get an access token from {key.token_uri}: {exc}"
            ) from None
        try:
            return parse_token_response(resp.status, raw, time.monotonic())
        except TokenRefused as exc:
            failure = AuthFailure.REFUSED if exc.refused else AuthFailure.UNAVAILABLE
            raise UpstreamAuthError(
                failure, f"{exc.message} for service account {key.client_email} ({self.origin})"
            ) from None

    def _assertion(self, key: ServiceAccountKey, now: int) -> str:
        """The signed JWT (runs on a worker thread: importing google-auth and RSA signing take a while)."""
        try:
            from google.auth import crypt, jwt
        except ImportError:
            raise UpstreamAuthError(
                AuthFailure.CONFIG, "Vertex AI needs the google-auth package: pip install google-auth"
            ) from None
        if self._signer is None:
            try:
                self._signer = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
                    key.private_key, key_id=key.private_key_id
                )
            except Exception as exc:  # cryptography raises several types for a bad key
                raise UpstreamAuthError(
                    AuthFailure.CONFIG,
                    f"{self.origin}: the private_key of {key.client_email} cannot be loaded "
                    f"({type(exc).__name__})",
                ) from None
        signed: bytes = jwt.encode(self._signer, assertion_claims(key, now))  # type: ignore[no-untyped-call]
        return signed.decode()


class ApplicationDefaultCredentials:
    """Whatever google-auth's application-default lookup finds (refreshed on a worker thread)."""

    def __init__(self, problem: str | None = None) -> None:
        self.problem = problem
        self.project_id: str | None = None
        self._credentials: Any = None
        self._cache = _cache(("application_default",), self._fetch, "application-default credentials")

    async def token(self, transport: Transport, proxy: str | None) -> str:
        return await self._cache.token(transport, proxy)

    async def _fetch(self, transport: Transport, proxy: str | None) -> AccessToken:
        from ccr_fast.upstream import google_adc

        found = await asyncio.to_thread(google_adc.refresh, self._credentials, CLOUD_PLATFORM_SCOPE, proxy)
        self._credentials = found.credentials
        return found.token


def resolve_credentials(options: Mapping[str, Any], env: Mapping[str, str]) -> GoogleCredentials:
    """The credentials a Vertex transformer's options and the environment give, in this order: the
    ``credentials`` option (a key file path, or the key itself as an object or JSON text), the
    ``client_email`` and ``private_key`` options, the file ``GOOGLE_APPLICATION_CREDENTIALS`` names,
    application-default credentials."""
    given = options.get("credentials")
    if isinstance(given, Mapping):
        return ServiceAccountCredentials.from_info(given, "the 'credentials' option")
    if isinstance(given, str) and given.strip():
        if given.lstrip().startswith("{"):
            return _from_json(given, "the 'credentials' option")
        return _from_file(given, "the 'credentials' option")
    if options.get("client_email") is not None or options.get("private_key") is not None:
        info = {k: options.get(k) for k in ("client_email", "private_key", "private_key_id", "token_uri")}
        return ServiceAccountCredentials.from_info(
            {k: v for k, v in info.items() if v is not None}, "the 'client_email'/'private_key' options"
        )
    path = env.get(ENV_CREDENTIALS)
    if path:
        return _from_file(path, ENV_CREDENTIALS, adc_other_types=True)
    if _gcloud_adc_file(env).is_file():
        return ApplicationDefaultCredentials()
    return ApplicationDefaultCredentials(
        problem=f"no Google credentials found; {_HINT} (on Google Cloud, the metadata server is used)"
    )


def _from_json(text: str, origin: str) -> ServiceAccountCredentials:
    try:
        return ServiceAccountCredentials.from_info(parse_key_json(text), origin)
    except CredentialsError as exc:
        return ServiceAccountCredentials(None, origin, f"{origin}: {exc}")


def _from_file(path: str, origin: str, *, adc_other_types: bool = False) -> GoogleCredentials:
    where = f"{origin} ({path})"
    try:
        text = Path(path).expanduser().read_bytes()
    except OSError as exc:
        return ServiceAccountCredentials(None, where, f"cannot read {where}: {exc.strerror or exc}")
    try:
        info = parse_key_json(text)
    except CredentialsError as exc:
        return ServiceAccountCredentials(None, where, f"{where}: {exc}")
    if (
        adc_other_types
        and isinstance(info, Mapping)
        and info.get("type", "service_account") != "service_account"
    ):
        # authorized_user, external_account, impersonated_service_account: google-auth knows them
        return ApplicationDefaultCredentials()
    return ServiceAccountCredentials.from_info(info, where)


def _gcloud_adc_file(env: Mapping[str, str]) -> Path:
    """Where `gcloud auth application-default login` writes its credentials."""
    config = env.get("CLOUDSDK_CONFIG")
    if config:
        return Path(config) / "application_default_credentials.json"
    if os.name == "nt":
        return Path(env.get("APPDATA", "")) / "gcloud" / "application_default_credentials.json"
    return (
        Path(env.get("HOME") or Path.home()) / ".config" / "gcloud" / "application_default_credentials.json"
    )


class GoogleAuth:
    """:class:`~ccr_fast.upstream.auth.UpstreamAuth` for Vertex AI: ``Authorization: Bearer <token>``."""

    def __init__(self, credentials: GoogleCredentials, problem: str | None = None) -> None:
        self.credentials = credentials
        #: a problem that stops every request (no project), checked before any token is fetched
        self.problem = problem

    async def authorize(self, request: UpstreamRequest, transport: Transport) -> None:
        if self.problem is not None:
            raise UpstreamAuthError(AuthFailure.CONFIG, self.problem)
        token = await self.credentials.token(transport, request.proxy)
        request.headers["authorization"] = f"Bearer {token}"
