"""Retrying one deployment: the policy, backoff delays, ``retry-after`` and the retry budget.

Everything takes its clock and its randomness as arguments, so every delay sequence is reproducible in a
test. Retries only ever happen before the first byte of an answer reaches the client; the planner in
``failover.py`` applies this policy, the gateway enforces the first-byte rule.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ccr_fast.config.errors import Problem
from ccr_fast.config.reader import child, describe
from ccr_fast.protocol.errors import TYPE_TO_STATUS
from ccr_fast.resilience._config import FRACTION_HINT, Reader
from ccr_fast.resilience.outcome import NETWORK, TIMEOUT, AttemptResult
from ccr_fast.resilience.store import RollingCounts, StateStore

Strategy = Literal["exponential", "linear", "fibonacci", "decorrelated-jitter"]
STRATEGIES: Mapping[str, Strategy] = {
    "exponential": "exponential",
    "linear": "linear",
    "fibonacci": "fibonacci",
    "decorrelated-jitter": "decorrelated-jitter",
}
DEFAULT_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})

_SECONDS = re.compile(r"\s*[0-9]+(?:\.[0-9]+)?\s*")
#: Past this many doublings the exponential delay is far above any sensible cap; stop computing it.
_MAX_DOUBLINGS = 64
_RETRY_KEYS = frozenset(
    {
        "maxAttempts",
        "maxRetries",
        "baseDelay",
        "maxDelay",
        "strategy",
        "jitter",
        "retryOn",
        "deadline",
        "budget",
    }
)
_BUDGET_KEYS = frozenset({"ratio", "minPerSecond", "window"})
_ERROR_TYPES = frozenset(TYPE_TO_STATUS)


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """How many retries the recent traffic pays for: ``ratio`` of the requests, plus a trickle.

    A retry budget is what keeps retries from tripling the load on a provider that is already failing:
    with the defaults, retries add at most 20% to the requests of the last ``window`` seconds, plus
    ``min_per_second`` so that a quiet gateway can still retry at all.
    """

    ratio: float = 0.2
    min_per_second: float = 1.0
    window: float = 10.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how soon to send a failed request to the same deployment again."""

    #: attempts at one deployment, the first included (1 turns retries off)
    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    strategy: Strategy = "exponential"
    retry_on_status: frozenset[int] = DEFAULT_RETRY_STATUSES
    retry_on_timeout: bool = True
    retry_on_network: bool = True
    #: upstream Anthropic error types that are retried whatever their status (``"overloaded_error"``)
    retry_on_errors: frozenset[str] = frozenset()
    #: seconds from the start of the request after which no new attempt starts
    deadline: float = 60.0
    #: draw each delay from ``[d/2, d]`` so clients that failed together do not retry together
    jitter: bool = True
    #: None turns the budget off
    budget: BudgetConfig | None = field(default_factory=BudgetConfig)

    @classmethod
    def from_config(
        cls, value: object, path: str = "retry", warnings: list[Problem] | None = None
    ) -> RetryPolicy:
        """Read the ``retry`` section; ``false`` turns retries off. Raises ``ConfigError`` listing every
        problem, each with its key path; unknown keys are appended to ``warnings``."""
        reader = Reader()
        policy = cls.read(reader, value, path)
        reader.finish(warnings)
        return policy

    @classmethod
    def read(cls, reader: Reader, value: object, path: str) -> RetryPolicy:
        """Like :meth:`from_config`, collecting problems into ``reader``."""
        if value is False:
            return cls(max_attempts=1)
        defaults = cls()
        found = reader.section(path, value, _RETRY_KEYS)
        if found is None:
            return defaults
        attempts = reader.integer(
            child(path, "maxAttempts"), found.get("maxAttempts"), defaults.max_attempts, 1, 20
        )
        if found.get("maxRetries") is not None:
            if found.get("maxAttempts") is not None:
                reader.error(child(path, "maxRetries"), "give maxAttempts or maxRetries, not both")
            attempts = reader.integer(child(path, "maxRetries"), found.get("maxRetries"), 2, 0, 19) + 1
        base = reader.duration(child(path, "baseDelay"), found.get("baseDelay"), defaults.base_delay)
        cap = reader.duration(child(path, "maxDelay"), found.get("maxDelay"), max(defaults.max_delay, base))
        if cap < base:
            reader.error(child(path, "maxDelay"), f"must be at least baseDelay ({base:g}s)")
        statuses, on_timeout, on_network, errors = _retry_on(
            reader, child(path, "retryOn"), found.get("retryOn")
        )
        return cls(
            max_attempts=attempts,
            base_delay=base,
            max_delay=max(cap, base),
            strategy=reader.choice(
                child(path, "strategy"), found.get("strategy"), defaults.strategy, STRATEGIES
            ),
            retry_on_status=statuses,
            retry_on_timeout=on_timeout,
            retry_on_network=on_network,
            retry_on_errors=errors,
            deadline=reader.duration(
                child(path, "deadline"), found.get("deadline"), defaults.deadline, 0.001
            ),
            jitter=reader.boolean(child(path, "jitter"), found.get("jitter"), defaults.jitter),
            budget=_budget(reader, child(path, "budget"), found.get("budget")),
        )

    def retryable(self, result: AttemptResult) -> bool:
        """Whether sending the same request to the same deployment again may succeed.

        An upstream's ``x-should-retry`` header (Anthropic and OpenAI send it) overrides the tables: the
        server knows whether its failure was transient better than a status code says.
        """
        verdict = upstream_should_retry(result.headers)
        return self.transient(result) if verdict is None else verdict

    def transient(self, result: AttemptResult) -> bool:
        """Whether the failure is one ``retryOn`` lists, whatever the upstream says about retrying it.

        A failure the upstream asked us not to retry may still be worth sending to another deployment.
        """
        if result.error == TIMEOUT:
            return self.retry_on_timeout
        if result.error == NETWORK:
            return self.retry_on_network
        if result.error is not None and result.error in self.retry_on_errors:
            return True
        return result.status is not None and result.status in self.retry_on_status


def _retry_on(reader: Reader, path: str, value: object) -> tuple[frozenset[int], bool, bool, frozenset[str]]:
    """``retryOn``: status codes, ``"timeout"``, ``"network"`` and Anthropic error types, in one list."""
    if value is None:
        return DEFAULT_RETRY_STATUSES, True, True, frozenset()
    statuses: set[int] = set()
    errors: set[str] = set()
    on_timeout = on_network = False
    for i, item in enumerate(reader.sequence(path, value, "a list of status codes and error kinds")):
        if item == TIMEOUT:
            on_timeout = True
        elif item == NETWORK:
            on_network = True
        elif isinstance(item, str) and item in _ERROR_TYPES:
            errors.add(item)
        elif isinstance(item, int | str) and not isinstance(item, bool) and str(item).strip().isdigit():
            status = int(str(item))
            if 400 <= status <= 599:
                statuses.add(status)
            else:
                reader.error(child(path, i), f"expected an error status 400-599, got {describe(item)}")
        else:
            reader.error(
                child(path, i),
                f'expected a status code, "timeout", "network" or an error type such as '
                f'"overloaded_error", got {describe(item)}',
            )
    return frozenset(statuses), on_timeout, on_network, frozenset(errors)


def _budget(reader: Reader, path: str, value: object) -> BudgetConfig | None:
    if value is False:
        return None
    defaults = BudgetConfig()
    found = reader.section(path, value, _BUDGET_KEYS)
    if found is None:
        return defaults
    return BudgetConfig(
        ratio=reader.number(
            child(path, "ratio"), found.get("ratio"), defaults.ratio, 0.0, 1.0, FRACTION_HINT
        ),
        min_per_second=reader.number(
            child(path, "minPerSecond"), found.get("minPerSecond"), defaults.min_per_second, 0.0
        ),
        window=reader.duration(child(path, "window"), found.get("window"), defaults.window, 0.001),
    )


def backoff_delay(policy: RetryPolicy, attempt: int, prev_delay: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    * ``exponential``: ``base * 2**(attempt-1)``;
    * ``linear``: ``base * attempt``;
    * ``fibonacci``: ``base * F`` with F = 1, 2, 3, 5, 8, ...;
    * ``decorrelated-jitter``: uniform in ``[base, 3 * prev_delay]`` (prev_delay 0 counts as base), which
      is random by construction and ignores ``jitter``.

    Every delay is capped at ``max_delay``; with ``jitter`` the capped delay ``d`` becomes uniform in
    ``[d/2, d]`` (half fixed, so a retry never fires immediately; half random, so clients spread out).
    """
    if attempt < 1:
        raise ValueError("retry numbers start at 1")
    base, cap = policy.base_delay, policy.max_delay
    if policy.strategy == "decorrelated-jitter":
        high = max(base, 3.0 * (prev_delay if prev_delay > 0 else base))
        return min(cap, rng.uniform(base, high))
    if policy.strategy == "linear":
        delay = base * attempt
    elif policy.strategy == "fibonacci":
        delay = base * _fibonacci(attempt, cap / base if base > 0 else 1.0)
    else:
        delay = base * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS)
    delay = min(cap, delay)
    if policy.jitter:
        return rng.uniform(delay / 2.0, delay)
    return delay


def _fibonacci(n: int, enough: float) -> float:
    """The n-th term of 1, 2, 3, 5, 8, ...; stops early once past ``enough`` (the cap applies anyway)."""
    term, following = 1.0, 2.0
    for _ in range(n - 1):
        if term > enough:
            break
        term, following = following, term + following
    return term


def parse_retry_after(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Seconds the upstream asked us to wait, or None when it did not say (or said nonsense).

    ``retry-after-ms`` (OpenAI, Anthropic) wins over ``retry-after``, which is either seconds or an HTTP
    date (RFC 9110), compared with ``now_epoch`` (wall-clock seconds). A date in the past means "now".
    Header names are lower-case, as the upstream transport delivers them.
    """
    millis = _seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now_epoch)


def _seconds(value: str | None) -> float | None:
    if value is None or not _SECONDS.fullmatch(value):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) else None


def upstream_should_retry(headers: Mapping[str, str]) -> bool | None:
    """The upstream's ``x-should-retry`` verdict: True, False, or None when absent or unreadable."""
    value = headers.get("x-should-retry")
    if value is None:
        return None
    value = value.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


class RetryBudget:
    """Caps retries at a share of recent traffic so that retries cannot amplify an outage.

    Each fresh attempt at a deployment deposits (``record_request``), each retry withdraws
    (``record_retry``); a retry is allowed while ``retries + 1 <= ratio * requests + min_per_second *
    window`` over the last ``window`` seconds. Counts live in the state store, so the budget is shared by
    every worker and by every request to the same provider.
    """

    __slots__ = ("_config", "_counts", "_floor")

    def __init__(self, config: BudgetConfig, store: StateStore, key: str) -> None:
        self._config = config
        self._counts = RollingCounts(store, f"rb:{key}", ("requests", "retries"), config.window)
        self._floor = config.min_per_second * config.window

    def record_request(self, now: float) -> None:
        self._counts.add(0, now)

    def record_retry(self, now: float) -> None:
        self._counts.add(1, now)

    def can_retry(self, now: float) -> bool:
        requests, retries = self._counts.totals(now)
        return retries + 1.0 <= self._config.ratio * requests + self._floor

    def snapshot(self, now: float) -> dict[str, Any]:
        requests, retries = self._counts.totals(now)
        return {
            "requests": int(requests),
            "retries": int(retries),
            "allowance": self._config.ratio * requests + self._floor,
        }
