"""``POST /token``: Google's OAuth 2.0 token endpoint for service accounts, as the mock provider serves it.

It takes the JWT-bearer grant (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``), checks the
assertion's RS256 signature against the public keys a test trusted (``trust``), its audience (this
endpoint's URL), its scope and its times, and answers ``{access_token, expires_in, token_type}``. It
also takes the refresh-token grant of ``gcloud auth application-default login`` credentials, for
refresh tokens a test registered (``trust_refresh_token``). The Vertex AI routes then accept only the
tokens it issued, until they expire. ``fail`` makes it refuse every grant (a revoked key) or fail (an
outage), as the real endpoint can.

The signature check uses ``google-auth`` (imported on the first grant, so the mock starts as fast as ever).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Final
from urllib.parse import parse_qs

import orjson

from ccr_fast.mock.replies import JSON_TYPE, Outcome

PATH: Final = "/token"
JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"


def _oauth_error(status: int, error: str, description: str) -> Outcome:
    return Outcome(status, JSON_TYPE, orjson.dumps({"error": error, "error_description": description}))


class OAuthServer:
    """The token endpoint's state: trusted keys, issued tokens, token lifetime, scripted failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[str] = []
        self._refresh_tokens: set[str] = set()
        self._tokens: dict[str, float] = {}
        self._failure: tuple[int, str, str] | None = None
        self.lifetime = 3600
        self.granted = 0

    def trust(self, public_key_pem: str) -> None:
        """Accept assertions signed by this key (PEM ``PUBLIC KEY`` or certificate)."""
        with self._lock:
            self._keys.append(public_key_pem)

    def trust_refresh_token(self, refresh_token: str) -> None:
        """Accept the refresh-token grant for this refresh token (an ``authorized_user`` credential)."""
        self._refresh_tokens.add(refresh_token)

    def fail(self, status: int = 400, error: str = "invalid_grant", description: str = "") -> None:
        """Answer every grant with this error until ``recover`` (400 invalid_grant: a revoked key)."""
        self._failure = (status, error, description or "Invalid grant: account not found")

    def recover(self) -> None:
        self._failure = None

    def reset(self) -> None:
        """Forget the scripted failure, the lifetime and the count; trusted keys and issued tokens stay
        valid, as they would on a real server (a client's cached token outlives one test)."""
        self._failure = None
        self.lifetime = 3600
        self.granted = 0

    def problem(self, authorization: str | None) -> str | None:
        """Why an ``Authorization`` header is not a valid token of ours, or None when it is."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "Request is missing required authentication credential. Expected OAuth 2 access token."
        expires = self._tokens.get(token)
        if expires is None:
            return "Request had invalid authentication credentials. Expected OAuth 2 access token."
        if time.monotonic() >= expires:
            return "Request had invalid authentication credentials: the access token expired."
        return None

    def grant(self, body: bytes, host: str) -> Outcome:
        form = parse_qs(body.decode("utf-8", "replace"))
        if self._failure is not None:
            return _oauth_error(*self._failure)
        grant_type = form.get("grant_type", [""])[0]
        if grant_type == "refresh_token":
            if form.get("refresh_token", [""])[0] not in self._refresh_tokens:
                return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            return self._issue()
        if grant_type != JWT_BEARER_GRANT:
            return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion", [""])[0]
        claims = self._verified(assertion)
        if claims is None:
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != f"http://{host}{PATH}":
            return _oauth_error(400, "invalid_grant", "Invalid JWT: audience is not this token endpoint.")
        if CLOUD_PLATFORM_SCOPE not in str(claims.get("scope", "")).split():
            return _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return self._issue()

    def _issue(self) -> Outcome:
        token = "ya29.mock-" + os.urandom(12).hex()
        with self._lock:
            self._tokens[token] = time.monotonic() + self.lifetime
            self.granted += 1
        answer = {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}
        return Outcome(200, JSON_TYPE, orjson.dumps(answer))

    def _verified(self, assertion: str) -> dict[str, Any] | None:
        """The assertion's claims when a trusted key signed it and it is current, else None."""
        from google.auth import exceptions, jwt

        with self._lock:
            keys = list(self._keys)
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                    assertion, certs=key, verify=True
                )
            except (ValueError, exceptions.GoogleAuthError):
                continue
            return claims
        return None
