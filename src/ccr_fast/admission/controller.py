"""The one object the gateway asks, per request, whether and where the request may go.

Two calls, because they belong to two moments of a request:

* ``check_client(ctx)`` before routing: the IP rules, then the per-IP, per-key, per-session and global
  limits, all or nothing (a limit that took a unit gives it back when a later one refuses).  It is plain
  synchronous code, a few GCRA steps on shared memory: a refusal is a ``GatewayError`` the gateway answers
  with (403 ``permission_error`` for a blacklisted address, 429 ``rate_limit_error`` with ``retry-after``).
* ``acquire_provider(ctx)`` after routing, once the provider is known: the provider's own limits, which
  hold a request back (in the queue) rather than send it into the upstream's 429.  It returns a ``Ticket``
  the gateway keeps until the request ends, to book the real token usage and release the rest.  When the
  request was sent somewhere else (spillover, backpressure redirect) the ticket's ``route`` says where.

``admit(ctx)`` does both, for callers that know the provider up front.  With nothing configured
``enabled`` is False and the gateway can skip admission; ``acquire_provider`` for a provider without limits
and a request without token budgets returns the shared no-op ticket without touching shared memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from ccr_fast.admission.config import AdmissionConfig, Overflow, PressureAction
from ccr_fast.admission.ipfilter import IPRules, Verdict
from ccr_fast.admission.limits import (
    NOOP_TICKET,
    Pace,
    Refusal,
    Scope,
    SharedLimits,
    Ticket,
    reserved,
    retry_after,
)
from ccr_fast.admission.queue import (
    Attempt,
    Clock,
    MonotonicClock,
    QueueDepth,
    QueueFull,
    QueueTimeout,
    WaitQueue,
)
from ccr_fast.protocol.errors import GatewayError
from ccr_fast.state.shared import SharedState

__all__ = ["AdmissionContext", "AdmissionController"]


@dataclass(slots=True)
class AdmissionContext:
    """What admission needs to know about one request."""

    client_ip: str
    session_id: str | None = None
    #: the id of the API key the client authenticated with (not the key itself)
    api_key_id: str | None = None
    #: the routed provider and model (``acquire_provider`` needs the provider)
    provider: str | None = None
    model: str | None = None
    #: the value of the priority header, if the client sent one
    priority: str | None = None
    #: input tokens plus ``max_tokens``, reserved against a provider's ``tokensPerMinute``
    estimated_tokens: int = 0


def _rate_limited(refusal: Refusal) -> GatewayError:
    after = retry_after(refusal.wait_ns)
    return GatewayError(
        429,
        f"rate limit exceeded: {refusal.reason}; retry after {after} s",
        "rate_limit_error",
        {"retry-after": after},
    )


def _overloaded(message: str, wait_ns: int) -> GatewayError:
    return GatewayError(529, message, "overloaded_error", {"retry-after": retry_after(wait_ns)})


def _drain_ns(scope: Scope, requests: int, tokens: int) -> int:
    """About how long the provider takes to serve ``requests`` more: their count times its slowest step."""
    steps = [pace.step_ns for pace in scope.requests]
    if scope.tokens is not None:
        steps.append(scope.tokens.step_ns * max(1, reserved(scope.tokens, tokens)))
    return max(1, requests) * max(steps)


class AdmissionController:
    """Admission for one worker and one config snapshot, over the server's shared state."""

    __slots__ = (
        "_budgeted",
        "_clock",
        "_default_rank",
        "_global",
        "_global_base",
        "_ip",
        "_ip_rules",
        "_key",
        "_key_ranks",
        "_key_scopes",
        "_level_ranks",
        "_limits",
        "_per_model",
        "_providers",
        "_queue",
        "_session",
        "config",
    )

    def __init__(self, config: AdmissionConfig, state: SharedState, *, clock: Clock | None = None) -> None:
        self.config = config
        self._clock = clock or MonotonicClock()
        self._limits = SharedLimits(state.table)
        limits = config.rate_limit
        self._global = Scope("the gateway", "adm/g", limits.global_limits)
        self._global_base = self._limits.slot(self._global.prefix) if self._global else None
        self._session = Scope("this session", "adm/s/", limits.per_session)
        self._ip = Scope("this client address", "adm/ip/", limits.per_ip)
        self._key = Scope("this API key", "adm/k/", limits.per_key)
        self._key_scopes = {
            key_id: Scope("this API key", "adm/k/", found) for key_id, found in limits.key_overrides.items()
        }
        self._ip_rules = (
            IPRules(limits.blacklist, limits.whitelist, limits.ipv6_prefix)
            if limits.blacklist or limits.whitelist or limits.per_ip
            else None
        )
        self._providers = {
            name: Scope(f"provider {name}", f"adm/p/{name}", found, reserve_tokens=True)
            for name, found in limits.providers.items()
            if found
        }
        self._per_model = any("," in name for name in self._providers)
        self._budgeted = any(
            scope.tokens is not None for scope in (self._session, self._key, *self._key_scopes.values())
        )
        queue = config.queue
        self._level_ranks = {level.lower(): rank for rank, level in enumerate(queue.levels)}
        self._default_rank = queue.levels.index(queue.default_level)
        self._key_ranks = {
            key_id: queue.levels.index(level) for key_id, level in queue.key_priorities.items()
        }
        self._queue: WaitQueue | None = None
        if self._providers:
            depth = QueueDepth(state.table, state.claim_worker_slot())
            self._queue = WaitQueue(depth, self._clock, queue.max_size)

    #: False: the limits live in this server's shared memory and ``check_client`` is synchronous; True
    #: (``ClusterAdmissionController``): they live in Redis and the gateway awaits ``check_client_remote``
    remote = False

    @property
    def enabled(self) -> bool:
        """Whether any limit or IP rule is configured (when not, every call here admits at once)."""
        return self.config.enabled

    @property
    def queued(self) -> int:
        """Requests waiting for a provider slot in this worker."""
        return 0 if self._queue is None else len(self._queue)

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a provider slot in every worker."""
        return 0 if self._queue is None else self._queue.depth

    def queue_counts(self) -> tuple[int, int]:
        """(requests waiting now, requests that ever waited) across the workers, for metrics."""
        queue = self._queue
        return (0, 0) if queue is None else (queue.depth, queue.entered)

    def priority_rank(self, ctx: AdmissionContext) -> int:
        """The request's level, as an index into ``Queue.levels`` (0 = highest).

        The header picks the level; an API key with a level in ``keyPriorities`` gets that level by default
        and cannot ask for a higher one (the header is the client's word, the key is authenticated).
        """
        asked = None if ctx.priority is None else self._level_ranks.get(ctx.priority.strip().lower())
        ceiling = None if ctx.api_key_id is None else self._key_ranks.get(ctx.api_key_id)
        if ceiling is None:
            return self._default_rank if asked is None else asked
        return ceiling if asked is None else max(asked, ceiling)

    async def admit(self, ctx: AdmissionContext) -> Ticket:
        """``check_client`` and ``acquire_provider`` in one call."""
        self.check_client(ctx)
        return await self.acquire_provider(ctx)

    def check_client(self, ctx: AdmissionContext) -> None:
        """IP rules and the client-side limits; raises ``GatewayError`` (403 or 429) when refused."""
        steps: list[tuple[Scope, str]] = []
        rules = self._ip_rules
        if rules is not None:
            client = rules.lookup(ctx.client_ip)
            if client.verdict is Verdict.BLOCKED:
                raise GatewayError(403, "requests from this address are not allowed", "permission_error")
            if self._ip and client.verdict is Verdict.NEUTRAL and client.limit_key is not None:
                steps.append((self._ip, self._ip.prefix + client.limit_key))
        if ctx.api_key_id is not None:
            key = self._key_scopes.get(ctx.api_key_id, self._key)
            if key:
                steps.append((key, key.prefix + ctx.api_key_id))
        if ctx.session_id is not None and self._session:
            steps.append((self._session, self._session.prefix + ctx.session_id))
        if not steps and self._global_base is None:
            return
        limits = self._limits
        now = self._clock.now_ns()
        admitted: list[tuple[Scope, int]] = []
        for scope, key_name in steps:
            base = limits.slot(key_name)
            if base is not None:
                refusal = limits.admit(scope, base, now)
                if refusal is not None:
                    self._give_back(admitted)
                    raise _rate_limited(refusal)
                admitted.append((scope, base))
        if self._global_base is not None:
            refusal = limits.admit(self._global, self._global_base, now)
            if refusal is not None:
                self._give_back(admitted)
                raise _rate_limited(refusal)

    async def check_client_remote(self, ctx: AdmissionContext) -> None:
        """``check_client`` for callers that await it (limits in Redis override this with a round trip)."""
        self.check_client(ctx)

    def _give_back(self, admitted: list[tuple[Scope, int]]) -> None:
        for scope, base in admitted:
            self._limits.give_back(scope, base)

    async def acquire_provider(self, ctx: AdmissionContext) -> Ticket:
        """The provider's limits: a ticket at once, after waiting in the queue, or for another route.

        Raises ``GatewayError``: 429 when the provider is at its limit and ``overflow`` is ``reject``;
        529 ``overloaded_error`` when the queue is full, the wait timed out, or backpressure refused.
        """
        budgets = self._budgets(ctx)
        lane = self._lane(ctx)
        if lane is None:
            return NOOP_TICKET if not budgets else Ticket(self._limits, self._clock.now_ns, budgets=budgets)
        scope = self._providers[lane]
        queue = self._queue
        assert queue is not None  # built whenever a provider has limits
        config = self.config.queue
        tokens = ctx.estimated_tokens
        rank = self.priority_rank(ctx)
        paused = 0.0
        if config.backpressure is not None:
            paused, redirect = self._pressure(queue, scope, rank, tokens)
            if paused > 0:
                await queue.pause(paused)
            elif redirect is not None:
                ticket = self._elsewhere(redirect, budgets, tokens)
                if ticket is not None:
                    return ticket

        base = self._limits.slot(scope.prefix)
        if base is None:
            return Ticket(self._limits, self._clock.now_ns, budgets=budgets, waited=paused)
        # nobody queues in reject mode; otherwise a newcomer never overtakes the requests already waiting here
        if config.overflow is Overflow.REJECT or not queue.waiting(lane):
            refusal = self._limits.admit(scope, base, self._clock.now_ns(), tokens)
            if refusal is None:
                return self._ticket(lane, base, budgets, tokens, waited=paused)
            if config.overflow is Overflow.REJECT:
                raise _rate_limited(refusal)
        if config.overflow is Overflow.SPILLOVER:
            for route in config.spillover:
                ticket = self._elsewhere(route, budgets, tokens, waited=paused)
                if ticket is not None:
                    return ticket

        def attempt(now: int) -> int:
            found = self._limits.admit(scope, base, now, tokens)
            return 0 if found is None else found.wait_ns

        waited = await self._wait(queue, lane, scope, rank, tokens, attempt)
        return self._ticket(lane, base, budgets, tokens, waited=paused + waited)

    def _pressure(self, queue: WaitQueue, scope: Scope, rank: int, tokens: int) -> tuple[float, str | None]:
        """Backpressure on a new request: (seconds to pause, route to redirect to); raises on ``reject``."""
        config = self.config.queue
        pressure = config.backpressure
        assert pressure is not None
        depth = queue.depth
        threshold = pressure.threshold * config.max_size
        if depth < threshold:
            return 0.0, None
        if pressure.action is PressureAction.SLOW:
            span = config.max_size - threshold
            return pressure.max_delay * (1.0 if span <= 0 else min(1.0, (depth - threshold) / span)), None
        if pressure.action is PressureAction.REJECT:
            if rank > 0:
                raise _overloaded(
                    f"the gateway is overloaded ({depth} requests waiting); only "
                    f"{config.levels[0]!r} priority requests are queued",
                    _drain_ns(scope, depth - math.ceil(threshold) + 1, tokens),
                )
            return 0.0, None
        return 0.0, pressure.redirect_to

    async def _wait(
        self, queue: WaitQueue, lane: str, scope: Scope, rank: int, tokens: int, attempt: Attempt
    ) -> float:
        """Wait in ``lane`` until ``attempt`` gets a slot; the queue's refusals as ``GatewayError`` 529."""
        config = self.config.queue
        try:
            return await queue.wait(lane, rank, config.timeout, attempt)
        except QueueFull:
            raise _overloaded(
                f"too many requests are waiting ({config.max_size}); provider {lane} is at its rate limit",
                _drain_ns(scope, queue.depth, tokens),
            ) from None
        except QueueTimeout as timeout:
            raise _overloaded(
                f"provider {lane} had no capacity within {config.timeout:g} s",
                timeout.wait_ns or _drain_ns(scope, 1, tokens),
            ) from None

    def _lane(self, ctx: AdmissionContext) -> str | None:
        """The key of the provider limits that apply: ``"provider,model"`` when listed, else the provider."""
        provider = ctx.provider
        if provider is None or not self._providers:
            return None
        if self._per_model and ctx.model is not None:
            route = f"{provider},{ctx.model}"
            if route in self._providers:
                return route
        return provider if provider in self._providers else None

    def _budgets(self, ctx: AdmissionContext) -> tuple[tuple[int, Pace], ...]:
        """The token budgets the request's usage is charged to: its session's and its API key's."""
        if not self._budgeted:
            return ()
        found: list[tuple[int, Pace]] = []
        pairs: list[tuple[Scope, str | None]] = [(self._session, ctx.session_id)]
        if ctx.api_key_id is not None:
            pairs.append((self._key_scopes.get(ctx.api_key_id, self._key), ctx.api_key_id))
        for scope, name in pairs:
            if scope.tokens is not None and name is not None:
                base = self._limits.slot(scope.prefix + name)
                if base is not None:
                    found.append((base, scope.tokens))
        return tuple(found)

    def _ticket(
        self,
        lane: str,
        base: int,
        budgets: tuple[tuple[int, Pace], ...],
        tokens: int,
        *,
        route: str | None = None,
        waited: float = 0.0,
    ) -> Ticket:
        """The ticket of a request ``admit`` let through on ``lane``, holding its token reservation."""
        pace = self._providers[lane].tokens
        if pace is None:
            return Ticket(self._limits, self._clock.now_ns, budgets=budgets, route=route, waited=waited)
        queue = self._queue
        return Ticket(
            self._limits,
            self._clock.now_ns,
            budgets=budgets,
            provider=(base, pace),
            reserved_tokens=reserved(pace, tokens),
            on_refund=None if queue is None else partial(queue.nudge, lane),
            route=route,
            waited=waited,
        )

    def _elsewhere(
        self, route: str, budgets: tuple[tuple[int, Pace], ...], tokens: int, *, waited: float = 0.0
    ) -> Ticket | None:
        """A ticket for ``route`` if its provider has room now (and nobody here waits for it), else None."""
        provider = route.partition(",")[0].strip()
        lane = route if route in self._providers else provider
        scope = self._providers.get(lane)
        base = None if scope is None else self._limits.slot(scope.prefix)
        if scope is None or base is None:
            return Ticket(self._limits, self._clock.now_ns, budgets=budgets, route=route, waited=waited)
        if self._queue is not None and self._queue.waiting(lane):
            return None
        if self._limits.admit(scope, base, self._clock.now_ns(), tokens) is not None:
            return None
        return self._ticket(lane, base, budgets, tokens, route=route, waited=waited)
