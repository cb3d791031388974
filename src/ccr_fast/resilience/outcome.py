"""What one upstream attempt came to, and what that says about the deployment that answered it.

Breakers, passive health and the retry planner all judge the same attempts, so the judgement lives here
once. The rule of thumb: a failure counts against a deployment when another deployment, or the same one a
little later, could have answered. Server errors, timeouts, network errors and rate limits count; so do
401, 402 and 403, because with our own keys they mean this deployment's key or account is unusable (in an
API-key pool the other keys must take over). Other client errors (400, 404, 413, 422) are about the
request, not the deployment, and are ignored, as is a request the client cancelled.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

#: ``AttemptResult.error`` for an attempt that timed out before a complete answer
TIMEOUT: Final = "timeout"
#: ``AttemptResult.error`` for an attempt that could not connect or lost its connection
NETWORK: Final = "network"
#: ``AttemptResult.error`` for an attempt abandoned because the client went away
CANCELLED: Final = "cancelled"

#: Client-error statuses that still count against the deployment (its key, its account, its capacity).
DEPLOYMENT_FAULTS: Final = frozenset({401, 402, 403, 408, 429})

_CONTEXT_STATUSES = frozenset({400, 413, 422})
# The wording providers use when a prompt does not fit the model's context window:
# OpenAI/DeepSeek/Groq "maximum context length is", "context_length_exceeded", Anthropic "prompt is too
# long", Gemini "input token count ... exceeds the maximum", others "reduce the length of the messages".
_CONTEXT_WORDING = re.compile(
    r"context[ _]length|context window|maximum context|prompt is too long|input is too long"
    r"|token count .*exceeds|too many (?:input )?tokens|reduce the length of the messages",
    re.IGNORECASE,
)


class Outcome(enum.Enum):
    """How an attempt counts for breakers and passive health."""

    SUCCESS = "success"
    FAILURE = "failure"
    #: not the deployment's doing (a bad request, a cancelled one): counts neither way
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The facts about one finished (or abandoned) attempt that the policies need."""

    #: the upstream's HTTP status, None when no response arrived
    status: int | None = None
    #: TIMEOUT, NETWORK, CANCELLED, or the upstream's Anthropic error type (``"overloaded_error"``)
    error: str | None = None
    #: response headers with lower-case names (retry-after, retry-after-ms, x-should-retry)
    headers: Mapping[str, str] = field(default_factory=dict)
    #: the upstream's error message, used to recognise context-window errors
    message: str = ""
    #: seconds from sending to the end of the answer, when it completed
    latency: float | None = None
    #: seconds from sending to the first byte of the answer
    ttft: float | None = None

    @property
    def outcome(self) -> Outcome:
        return classify(self.status, self.error)

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400 and self.error is None


def classify(status: int | None, error: str | None = None) -> Outcome:
    """Judge an attempt by its status and error kind (see the module docstring for the rule)."""
    if error == CANCELLED:
        return Outcome.IGNORED
    if status is None:
        return Outcome.IGNORED if error is None else Outcome.FAILURE
    if error in (TIMEOUT, NETWORK) or status >= 500 or status in DEPLOYMENT_FAULTS:
        return Outcome.FAILURE
    if status < 400:
        return Outcome.SUCCESS
    return Outcome.IGNORED


def is_context_window_error(status: int | None, message: str) -> bool:
    """Whether the upstream refused the request because the prompt does not fit the model's context."""
    return status in _CONTEXT_STATUSES and _CONTEXT_WORDING.search(message) is not None
