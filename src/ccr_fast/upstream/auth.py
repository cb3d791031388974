"""Per-request upstream credentials: the seam between a provider's authentication and the request it signs.

Most providers take a static key, which a plan puts in its headers once (``Plan.headers``); their plan
has no auth object (``Plan.auth`` is None, the default), and the request path does nothing more for
them. A provider whose credential expires, such as the OAuth access tokens of Google Vertex AI, has an
:class:`UpstreamAuth` on its plan. The gateway awaits it right before the request goes out, on every
attempt, so a retry picks up a refreshed token.
"""

from __future__ import annotations

import enum
from typing import Protocol

from ccr_fast.protocol.errors import GatewayError
from ccr_fast.resilience.outcome import NETWORK, TIMEOUT
from ccr_fast.upstream.transport import Transport, UpstreamError, UpstreamRequest


class AuthFailure(enum.Enum):
    """Why a request could not be given credentials, which decides the status and the retry policy."""

    #: no credentials, or unusable ones (unreadable key file, bad JSON, bad key): the config needs fixing
    CONFIG = "config"
    #: the token endpoint refused the credentials (revoked or unknown key, bad signature)
    REFUSED = "refused"
    #: the token endpoint could not be reached or failed (5xx, 429): trying again may work
    UNAVAILABLE = "unavailable"
    #: the token endpoint did not answer in time
    TIMEOUT = "timeout"


class UpstreamAuthError(UpstreamError):
    """Credentials for an upstream request could not be had; ``message`` says why and what to do.

    An UpstreamError, so code that treats a failed upstream call as "no answer" (token counting, health
    probes) needs nothing more; the request path maps it to a precise status (``gateway_error``).
    """

    def __init__(self, failure: AuthFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message

    def gateway_error(self, provider: str) -> GatewayError:
        """The client's error. A config problem is the server's (500); credentials the token endpoint
        refused are reported as any upstream refusing the provider's key is (401)."""
        text = f"provider '{provider}': {self.message}"
        failure = self.failure
        if failure is AuthFailure.CONFIG:
            return GatewayError(500, text, "api_error")
        if failure is AuthFailure.REFUSED:
            return GatewayError(401, text, "authentication_error")
        if failure is AuthFailure.TIMEOUT:
            return GatewayError(504, text, "timeout_error")
        return GatewayError(502, text, "api_error")

    @property
    def attempt(self) -> tuple[int | None, str]:
        """(status, error kind) of the failed attempt, as the retry and failover policies read them.

        Unusable or refused credentials count as a 401 from the deployment: no retry (the same
        credentials fail the same way), failover to the next deployment. An unreachable or failing
        token endpoint counts as a network error or timeout: retried like one.
        """
        failure = self.failure
        if failure is AuthFailure.TIMEOUT:
            return None, TIMEOUT
        if failure is AuthFailure.UNAVAILABLE:
            return None, NETWORK
        return 401, "authentication_error"


class UpstreamAuth(Protocol):
    """Signs upstream requests with a credential that is fetched and refreshed as needed."""

    async def authorize(self, request: UpstreamRequest, transport: Transport) -> None:
        """Add the credentials to ``request.headers`` (``transport`` is there for fetching a token).

        Raises UpstreamAuthError. Must not block the event loop.
        """
        ...
