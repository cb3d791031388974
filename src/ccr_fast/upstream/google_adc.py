"""Application-default credentials through ``google-auth``, for the worker thread that refreshes them.

Imported only when a Vertex provider without a service-account key needs its first token. ``google-auth``
is synchronous and wants a transport object; a small one on the standard library's ``urllib`` serves, so
no HTTP library is added for the few requests an hour this makes. Like every upstream call it goes through
the gateway's outbound proxy for HTTPS only (``PROXY_URL``, else ``HTTPS_PROXY``); plain-HTTP requests,
which are the metadata server's, never go through a proxy.
"""

from __future__ import annotations

import datetime
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import google.auth
import google.auth.exceptions
import google.auth.transport

from ccr_fast.protocol.google_oauth import AccessToken
from ccr_fast.upstream.auth import AuthFailure, UpstreamAuthError

_TIMEOUT_S = 20.0


class _Response(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status = status
        self._headers = headers
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class UrllibRequest(google.auth.transport.Request):
    """google-auth's transport interface on ``urllib.request``."""

    def __init__(self, proxy: str | None = None) -> None:
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"https": proxy} if proxy else {})
        )

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
        try:
            with self._opener.open(request, timeout=timeout or _TIMEOUT_S) as resp:
                return _Response(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            return _Response(exc.code, dict(exc.headers or {}), exc.read())
        except (urllib.error.URLError, OSError) as exc:
            raise google.auth.exceptions.TransportError(str(exc)) from exc  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Refreshed:
    #: google-auth's credentials object, kept for the next refresh
    credentials: Any
    token: AccessToken


def refresh(credentials: Any, scope: str, proxy: str | None = None) -> Refreshed:
    """Find the application-default credentials (first time) and refresh them. Blocking."""
    request = UrllibRequest(proxy)
    try:
        if credentials is None:
            credentials, _ = google.auth.default(scopes=[scope], request=request)
        credentials.refresh(request)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise UpstreamAuthError(
            AuthFailure.CONFIG,
            "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, give "
            "the transformer a 'credentials' option, or run `gcloud auth application-default login` "
            f"({_first_line(exc)})",
        ) from None
    except google.auth.exceptions.RefreshError as exc:
        failure = AuthFailure.UNAVAILABLE if getattr(exc, "retryable", False) else AuthFailure.REFUSED
        raise UpstreamAuthError(
            failure, f"application-default credentials could not be refreshed: {_first_line(exc)}"
        ) from None
    except google.auth.exceptions.TransportError as exc:
        raise UpstreamAuthError(
            AuthFailure.UNAVAILABLE, f"could not reach Google's token service: {_first_line(exc)}"
        ) from None
    token = credentials.token
    if not isinstance(token, str) or not token:
        raise UpstreamAuthError(AuthFailure.UNAVAILABLE, "application-default credentials gave no token")
    lifetime = _seconds_left(credentials.expiry)
    return Refreshed(credentials, AccessToken(token, lifetime, time.monotonic() + lifetime))


def _seconds_left(expiry: datetime.datetime | None) -> float:
    """google-auth's expiry is a naive UTC datetime (None: unknown, taken as the usual hour)."""
    if expiry is None:
        return 3600.0
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return max(1.0, (expiry - now).total_seconds())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
