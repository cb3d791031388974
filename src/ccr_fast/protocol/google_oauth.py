"""Google OAuth 2.0 for service accounts, without I/O: the key, the JWT-bearer grant, the token answer.

A service-account key (the JSON file Google Cloud hands out) is exchanged for an access token by posting a
JWT signed with the key's private key to the key's ``token_uri`` (RFC 7523, ``grant_type`` =
``urn:ietf:params:oauth:grant-type:jwt-bearer``). The token lasts about an hour and is sent to Vertex AI
as ``Authorization: Bearer``. Signing needs RSA, which ``google-auth`` does; the rest is here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import orjson

#: the scope Vertex AI needs
CLOUD_PLATFORM_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI: Final = "https://oauth2.googleapis.com/token"
#: the longest lifetime Google accepts for the signed assertion
ASSERTION_LIFETIME_S: Final = 3600
#: a token is refreshed this long before it expires (google-auth uses 3m45s), or a quarter of its
#: lifetime for short-lived tokens
REFRESH_MARGIN_S: Final = 300.0


class CredentialsError(ValueError):
    """A service-account key that cannot be used; the message says why, without any secret in it."""


@dataclass(frozen=True, slots=True)
class ServiceAccountKey:
    client_email: str
    private_key: str
    token_uri: str
    private_key_id: str | None = None
    project_id: str | None = None

    @classmethod
    def from_info(cls, info: Any) -> ServiceAccountKey:
        """Validate a parsed key file (``type`` ``service_account``); CredentialsError names what is wrong."""
        if not isinstance(info, Mapping):
            raise CredentialsError("a service-account key must be a JSON object")
        kind = info.get("type", "service_account")
        if kind != "service_account":
            raise CredentialsError(
                f"expected a service-account key (type 'service_account'), got type {kind!r}"
            )
        email = info.get("client_email")
        if not isinstance(email, str) or not email:
            raise CredentialsError("the service-account key has no 'client_email'")
        private_key = info.get("private_key")
        if not isinstance(private_key, str) or "PRIVATE KEY" not in private_key:
            raise CredentialsError("the service-account key has no PEM 'private_key'")
        token_uri = info.get("token_uri") or DEFAULT_TOKEN_URI
        if not isinstance(token_uri, str) or urlsplit(token_uri).scheme not in ("http", "https"):
            raise CredentialsError(
                f"the service-account key's 'token_uri' is not an http(s) URL: {token_uri!r}"
            )
        key_id = info.get("private_key_id")
        project = info.get("project_id")
        return cls(
            client_email=email,
            # keys pasted into JSON config often carry their newlines escaped (CCR unescapes them too)
            private_key=private_key.replace("\\n", "\n"),
            token_uri=token_uri,
            private_key_id=key_id if isinstance(key_id, str) and key_id else None,
            project_id=project if isinstance(project, str) and project else None,
        )

    @property
    def identity(self) -> tuple[str, str, str]:
        """What tells two keys apart (tokens are cached per key), with no secret in it."""
        fingerprint = self.private_key_id or hashlib.sha256(self.private_key.encode()).hexdigest()[:16]
        return (self.client_email, fingerprint, self.token_uri)


def parse_key_json(text: str | bytes) -> Any:
    """The JSON of a key file or of an inline key; CredentialsError when it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CredentialsError(f"the service-account key is not valid JSON ({exc})") from None


def assertion_claims(key: ServiceAccountKey, now: int, scope: str = CLOUD_PLATFORM_SCOPE) -> dict[str, Any]:
    """The claims of the JWT a service account signs to ask for an access token (``now`` in epoch s)."""
    return {
        "iss": key.client_email,
        "scope": scope,
        "aud": key.token_uri,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_S,
    }


def token_request_body(assertion: str) -> bytes:
    """The form body of the JWT-bearer grant."""
    return urlencode({"grant_type": JWT_BEARER_GRANT, "assertion": assertion}).encode()


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    #: seconds the token is valid for, from when it was issued
    lifetime: float
    #: ``time.monotonic()`` at which it expires
    expires_at: float

    def usable(self, now: float) -> bool:
        """Still valid, with a few seconds to spare for the request it goes out with."""
        return now < self.expires_at - min(5.0, self.lifetime / 10)

    def fresh(self, now: float) -> bool:
        """Not yet due for a refresh."""
        return now < self.expires_at - min(REFRESH_MARGIN_S, self.lifetime / 4)


class TokenRefused(Exception):
    """The token endpoint answered without a token. ``refused`` is True when it rejected the credentials
    (a 4xx other than 408/429: trying again will not help), False when it failed (5xx, 429, garbage)."""

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused


def parse_token_response(status: int, body: bytes, now: float) -> AccessToken:
    """A token endpoint's answer (RFC 6749 §5) as an AccessToken; TokenRefused otherwise."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if status == 200 and isinstance(data, dict):
        token = data.get("access_token")
        expires_in = data.get("expires_in", 3600)
        if isinstance(token, str) and token and isinstance(expires_in, int | float) and expires_in > 0:
            return AccessToken(token, float(expires_in), now + float(expires_in))
        raise TokenRefused("the token endpoint answered 200 without an access_token", refused=False)
    refused = 400 <= status < 500 and status not in (408, 429)
    reason = f"HTTP {status}"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # Google's API error shape
            error = error.get("status") or error.get("message")
        description = data.get("error_description")
        if isinstance(error, str) and error:
            reason += f" {error}"
        if isinstance(description, str) and description:
            reason += f": {description}"
    raise TokenRefused(f"the token endpoint answered {reason}", refused=refused)
