"""Planning the attempts of one request: retries of a deployment, then failover along the route chain.

A request's route chain is its routed ``provider,model``, the same model on the ``retryProviders``, the CCR
v2 ``fallback`` list of its scenario and the ``fallbackModel`` (:func:`failover_routes`); each route is a
group of deployments ordered by the balancer when the plan reaches it (so late routes are ordered on fresh
state, and not at all when an early one answers). :class:`AttemptPlan` walks the chain:

* a retryable failure (``RetryPolicy.retryable``) is retried on the same deployment while it has attempts
  left, the delay fits the deadline, the provider's retry budget allows it and its breaker admits it;
  ``retry-after`` replaces the backoff delay, and when it exceeds ``max_delay`` while another deployment
  is available (or exceeds the remaining deadline) the plan fails over instead of waiting;
* otherwise a retryable failure (including one the upstream's ``x-should-retry: false`` kept from being
  retried in place), or one that is the deployment's own (401/402/403: its key or account; 404: it does
  not serve the model), fails over to the next deployment whose breaker admits it. Failover
  is not charged to the retry budget: it moves load away from the failing deployment rather than adding
  to it;
* a context-window error fails over to the long-context route, when there is one and it was not tried;
* any other failure (a bad request), a cancellation, or the deadline stops the plan.

The plan records every attempt's outcome in the breakers, passive health and the balancer, so the caller
only reports results. Retrying and failing over are only possible before the first byte of an answer has
reached the client; the caller enforces that by calling :meth:`AttemptPlan.finish` (never
:meth:`AttemptPlan.next_attempt`) once anything was sent.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ccr_fast.config.errors import Problem
from ccr_fast.config.reader import child
from ccr_fast.resilience._config import Reader
from ccr_fast.resilience.balancer import Balancer, Deployment, DeploymentGroup, PickContext
from ccr_fast.resilience.circuit import Admission
from ccr_fast.resilience.outcome import CANCELLED, AttemptResult, is_context_window_error
from ccr_fast.resilience.retry import RetryBudget, RetryPolicy, backoff_delay, parse_retry_after

#: Failures that are the deployment's own: another deployment may well answer the same request.
FAILOVER_STATUSES = frozenset({401, 402, 403, 404})
#: CCR's scenarios with a ``fallback`` list; the others (explicit model, subagent tag, custom router)
#: use the ``default`` list, as CCR does.
_FALLBACK_SCENARIOS = frozenset({"default", "background", "think", "longContext", "webSearch", "image"})
_KEYS = frozenset({"enabled", "retryProviders", "fallbackModel", "contextWindowFallback"})


@dataclass(frozen=True, slots=True)
class FailoverConfig:
    enabled: bool = True
    #: providers to try the routed model on after the route's own deployments
    retry_providers: tuple[str, ...] = ()
    #: the last ``provider,model`` to try, for every scenario
    fallback_model: str | None = None
    #: on a context-window error, try the ``Router.longContext`` route
    context_window_fallback: bool = True

    @classmethod
    def from_config(
        cls, value: object, path: str = "failover", warnings: list[Problem] | None = None
    ) -> FailoverConfig:
        """Read the ``failover`` section (``false`` turns failover off); raises ``ConfigError``."""
        reader = Reader()
        config = cls.read(reader, value, path)
        reader.finish(warnings)
        return config

    @classmethod
    def read(cls, reader: Reader, value: object, path: str) -> FailoverConfig:
        if value is False:
            return cls(enabled=False, context_window_fallback=False)
        found = reader.section(path, value, _KEYS)
        if found is None:
            return cls()
        providers_path = child(path, "retryProviders")
        providers = [
            reader.text(child(providers_path, i), p)
            for i, p in enumerate(
                reader.sequence(providers_path, found.get("retryProviders"), "a list of providers")
            )
        ]
        return cls(
            enabled=reader.boolean(child(path, "enabled"), found.get("enabled"), True),
            retry_providers=tuple(p for p in providers if p is not None),
            fallback_model=reader.route(child(path, "fallbackModel"), found.get("fallbackModel")),
            context_window_fallback=reader.boolean(
                child(path, "contextWindowFallback"), found.get("contextWindowFallback"), True
            ),
        )


def failover_routes(
    primary: str,
    config: FailoverConfig,
    scenario: str = "default",
    fallback: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The routes to try for a request routed to ``primary`` in ``scenario``, in order, without repeats."""
    if not config.enabled:
        return [primary]
    _, _, model = primary.partition(",")
    chain = [primary, *(f"{provider},{model}" for provider in config.retry_providers)]
    if fallback:
        chain += fallback.get(scenario if scenario in _FALLBACK_SCENARIOS else "default", ())
    if config.fallback_model is not None:
        chain.append(config.fallback_model)
    return list(dict.fromkeys(chain))


class AttemptKind(enum.Enum):
    FIRST = "first"
    #: the same deployment again
    RETRY = "retry"
    #: another deployment
    FAILOVER = "failover"


class StopReason(enum.Enum):
    """Why a plan gave no further attempt."""

    #: the failure is the request's (or the upstream said not to retry) and nothing else can help
    NOT_RETRYABLE = "not_retryable"
    #: every deployment of every route was tried or is unavailable
    EXHAUSTED = "exhausted"
    DEADLINE = "deadline"
    #: no deployment admitted even the first attempt (every breaker open)
    UNAVAILABLE = "unavailable"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Attempt:
    deployment: Deployment
    #: the route whose group the deployment came from
    route: str
    #: 1 for the first attempt of the request
    number: int
    kind: AttemptKind
    #: seconds to wait before sending
    delay: float
    #: the breaker's admission, recorded with the outcome
    admission: Admission


class AttemptPlan:
    """The attempts of one request; see the module docstring for the rules.

    Use::

        attempt = plan.first(now)
        while attempt is not None:
            ...wait attempt.delay, send to attempt.deployment...
            if it answered (or anything reached the client): plan.finish(result, now); break
            attempt = plan.next_attempt(result, now, time.time())
        if attempt is None: answer with the last error (or 529 when plan.stop_reason is UNAVAILABLE),
            adding plan.client_headers()

    ``finish`` must also be called when the request is abandoned (client gone), with ``error=CANCELLED``,
    so the in-flight counts and half-open probe slots are released.
    """

    __slots__ = (
        "_balancer",
        "_budgets",
        "_candidates",
        "_ctx",
        "_current",
        "_deadline",
        "_groups",
        "_long_context",
        "_number",
        "_policy",
        "_prev_delay",
        "_rng",
        "_route",
        "_routes_seen",
        "_same",
        "_tried",
        "stop_reason",
    )

    def __init__(
        self,
        groups: Sequence[DeploymentGroup],
        policy: RetryPolicy,
        balancer: Balancer,
        now: float,
        rng: random.Random,
        *,
        ctx: PickContext | None = None,
        budgets: Callable[[str], RetryBudget | None] | None = None,
        long_context: DeploymentGroup | None = None,
    ) -> None:
        self._policy = policy
        self._balancer = balancer
        self._rng = rng
        self._ctx = ctx or PickContext()
        self._budgets = budgets
        self._long_context = long_context
        self._groups = deque(groups)
        self._candidates: deque[Deployment] = deque()
        self._route = ""
        self._routes_seen: set[str] = set()
        self._tried: set[str] = set()
        self._deadline = now + policy.deadline
        self._current: Attempt | None = None
        self._number = 0
        self._same = 0
        self._prev_delay = 0.0
        self.stop_reason: StopReason | None = None

    @property
    def attempts(self) -> int:
        """Attempts issued so far."""
        return self._number

    @property
    def tried(self) -> frozenset[str]:
        return frozenset(self._tried)

    def remaining(self, now: float) -> float:
        """Seconds left before the deadline (to cap an attempt's time to first byte)."""
        return max(0.0, self._deadline - now)

    def client_headers(self) -> dict[str, str]:
        """Headers for the client's error response: once we retried, the client should not retry too."""
        return {"x-should-retry": "false"} if self._number > 1 else {}

    def first(self, now: float) -> Attempt | None:
        if self._number or self.stop_reason is not None:
            raise RuntimeError("first() starts a plan and was already called")
        return self._next_deployment(now, AttemptKind.FIRST)

    def next_attempt(self, result: AttemptResult, now: float, now_epoch: float) -> Attempt | None:
        """Record the failed current attempt and choose the next one, or None (see ``stop_reason``).

        ``now_epoch`` is wall-clock time, needed to read a ``retry-after`` given as an HTTP date.
        """
        attempt = self._current
        if attempt is None:
            raise RuntimeError("next_attempt() needs an attempt in flight")
        if result.ok:
            raise ValueError("a successful attempt is over: call finish()")
        self._record(attempt, result, now)
        if result.error == CANCELLED:
            self.stop_reason = StopReason.CANCELLED
            return None
        if now >= self._deadline:
            self.stop_reason = StopReason.DEADLINE
            return None
        if is_context_window_error(result.status, result.message):
            longer = self._long_context
            if longer is None or longer.route in self._routes_seen:
                self.stop_reason = StopReason.NOT_RETRYABLE
                return None
            self._long_context = None
            self._candidates.clear()  # the same model elsewhere has the same window
            self._groups.appendleft(longer)
            return self._next_deployment(now, AttemptKind.FAILOVER)
        retryable = self._policy.retryable(result)
        if retryable and self._same < self._policy.max_attempts:
            retry = self._retry(attempt, result, now, now_epoch)
            if retry is not None:
                return retry
        if retryable or self._policy.transient(result) or result.status in FAILOVER_STATUSES:
            return self._next_deployment(now, AttemptKind.FAILOVER)
        self.stop_reason = StopReason.NOT_RETRYABLE
        return None

    def finish(self, result: AttemptResult, now: float) -> None:
        """Record the final outcome of the current attempt (answered, failed after the first byte, or
        abandoned). Does nothing when no attempt is in flight."""
        if self._current is not None:
            self._record(self._current, result, now)

    def _retry(self, attempt: Attempt, result: AttemptResult, now: float, now_epoch: float) -> Attempt | None:
        policy, d = self._policy, attempt.deployment
        delay = parse_retry_after(result.headers, now_epoch)
        if delay is None:
            delay = backoff_delay(policy, self._same, self._prev_delay, self._rng)
        if now + delay >= self._deadline or (delay > policy.max_delay and self._has_alternative()):
            return None
        budget = self._budgets(d.provider) if self._budgets is not None else None
        if budget is not None and not budget.can_retry(now):
            return None
        admission = self._admit(d, now)
        if not admission:
            return None
        return self._issue(d, attempt.route, AttemptKind.RETRY, delay, admission, now)

    def _has_alternative(self) -> bool:
        return bool(self._groups) or any(d.name not in self._tried for d in self._candidates)

    def _next_deployment(self, now: float, kind: AttemptKind) -> Attempt | None:
        while True:
            while self._candidates:
                d = self._candidates.popleft()
                if d.name in self._tried:
                    continue
                admission = self._admit(d, now)
                if admission:
                    return self._issue(d, self._route, kind, 0.0, admission, now)
            if not self._groups:
                self.stop_reason = StopReason.EXHAUSTED if self._number else StopReason.UNAVAILABLE
                return None
            group = self._groups.popleft()
            self._route = group.route
            self._routes_seen.add(group.route)
            ctx = replace(self._ctx, exclude=self._ctx.exclude | self._tried) if self._tried else self._ctx
            self._candidates = deque(self._balancer.pick(group, now, ctx))

    def _admit(self, d: Deployment, now: float) -> Admission:
        breakers = self._balancer.breakers
        return breakers.allow(d.name, now) if breakers is not None else Admission.ALLOWED

    def _issue(
        self, d: Deployment, route: str, kind: AttemptKind, delay: float, admission: Admission, now: float
    ) -> Attempt:
        self._number += 1
        self._same = self._same + 1 if kind is AttemptKind.RETRY else 1
        self._prev_delay = delay
        self._tried.add(d.name)
        self._balancer.record_start(d)
        budget = self._budgets(d.provider) if self._budgets is not None else None
        if budget is not None:
            if kind is AttemptKind.RETRY:
                budget.record_retry(now)
            else:
                budget.record_request(now)
        self._current = Attempt(d, route, self._number, kind, delay, admission)
        return self._current

    def _record(self, attempt: Attempt, result: AttemptResult, now: float) -> None:
        self._current = None
        d, outcome = attempt.deployment, result.outcome
        self._balancer.record_end(d, result.ok, result.latency, result.ttft)
        if self._balancer.breakers is not None:
            self._balancer.breakers.record(d.name, outcome, now, attempt.admission)
        if self._balancer.health is not None:
            self._balancer.health.record(d.name, outcome, now)
