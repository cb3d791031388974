"""Admission for several machines: the same limits and queue as ``AdmissionController``, kept in Redis.

With ``State.backend: "redis"`` the gateway builds a ``ClusterAdmissionController`` instead of the
shared-memory one.  Every limit then holds across every machine on the Redis: ``global``, ``perSession``,
``perIP``, ``perKey`` (requests and token budgets) and each provider's requests and tokens per minute.

* ``check_client_remote(ctx)`` (awaited, before routing) applies the IP rules locally and takes the
  client limits that apply (IP, key, session, global) from Redis in one round trip, all or nothing;
  refusals Redis already announced are answered from shared memory without a round trip
  (``ClusterLimits``).
* ``acquire_provider(ctx)`` (after routing) takes the provider's limits from Redis the same way; a
  request that finds the provider at its limit waits in this worker's queue, whose head asks Redis again
  when the cluster-wide bucket says a slot frees up.  So requests on every machine wait on one bucket.
* The ticket books real token usage against the budgets and gives back the unused part of a provider
  reservation through ``Settlements`` (coalesced, off the request path).

What stays per machine: the queue itself (each worker orders its own waiters; ``maxSize`` and
backpressure count this machine's waiters), and the IP rules (they are configuration).  The queue
depth of every machine is published for display by ``ccr_fast.observe.cluster``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ccr_fast.admission.cluster_limits import Admitted, ClusterLimits, Settlements, Want, bucket_key
from ccr_fast.admission.config import AdmissionConfig, Overflow
from ccr_fast.admission.controller import AdmissionContext, AdmissionController, _rate_limited
from ccr_fast.admission.ipfilter import Verdict
from ccr_fast.admission.limits import NOOP_TICKET, Pace, Refusal, Ticket, reserved
from ccr_fast.admission.queue import Clock
from ccr_fast.protocol.errors import GatewayError
from ccr_fast.state.shared import SharedState

__all__ = ["ClusterAdmissionController", "ClusterTicket"]

Budgets = tuple[tuple[bytes, Pace], ...]


def _no_clock() -> int:
    return 0


class ClusterTicket(Ticket):
    """A ``Ticket`` whose bookings go to Redis: usage charged to budgets and the provider, unused
    reservations given back (``Settlements`` sends them, many per round trip)."""

    __slots__ = ("_provider_key", "_remote_budgets", "_settle")

    def __init__(
        self,
        settle: Settlements,
        *,
        budgets: Budgets = (),
        provider: tuple[bytes, Pace] | None = None,
        reserved_tokens: int = 0,
        on_refund: Callable[[], None] | None = None,
        route: str | None = None,
        waited: float = 0.0,
    ) -> None:
        super().__init__(None, _no_clock, on_refund=on_refund, route=route, waited=waited)
        self._settle = settle
        self._remote_budgets = budgets
        self._provider_key = provider
        self._credit = reserved_tokens if provider is not None else 0

    def charge_tokens(self, n: int) -> None:
        if n <= 0:
            return
        settle = self._settle
        for key, pace in self._remote_budgets:
            settle.add(key, pace, n)
        if self._provider_key is not None:
            covered = min(n, self._credit)
            self._credit -= covered
            key, pace = self._provider_key
            settle.add(key, pace, n - covered)

    def release(self) -> None:
        if self._provider_key is not None and self._credit:
            key, pace = self._provider_key
            credit, self._credit = self._credit, 0
            self._settle.add(key, pace, -credit, self._on_refund)


class ClusterAdmissionController(AdmissionController):
    """Admission whose limits are GCRA buckets in Redis, shared by every machine (see the module doc)."""

    __slots__ = ("_cluster", "_settle")

    remote = True

    def __init__(
        self,
        config: AdmissionConfig,
        state: SharedState,
        limits: ClusterLimits,
        settlements: Settlements,
        *,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(config, state, clock=clock)
        self._cluster = limits
        self._settle = settlements

    @property
    def settlements(self) -> Settlements:
        return self._settle

    def check_client(self, ctx: AdmissionContext) -> None:
        raise TypeError("the client limits are in Redis: await check_client_remote(ctx)")

    async def check_client_remote(self, ctx: AdmissionContext) -> None:
        """IP rules, then the client limits in one round trip; raises ``GatewayError`` (403 or 429)."""
        wants: list[Want] = []
        rules = self._ip_rules
        if rules is not None:
            client = rules.lookup(ctx.client_ip)
            if client.verdict is Verdict.BLOCKED:
                raise GatewayError(403, "requests from this address are not allowed", "permission_error")
            if self._ip and client.verdict is Verdict.NEUTRAL and client.limit_key is not None:
                wants.append(Want(self._ip, self._ip.prefix + client.limit_key))
        if ctx.api_key_id is not None:
            key = self._key_scopes.get(ctx.api_key_id, self._key)
            if key:
                wants.append(Want(key, key.prefix + ctx.api_key_id))
        if ctx.session_id is not None and self._session:
            wants.append(Want(self._session, self._session.prefix + ctx.session_id))
        if self._global:
            wants.append(Want(self._global, self._global.prefix))
        if not wants:
            return
        found = await self._cluster.admit(wants)
        if isinstance(found, Refusal):
            raise _rate_limited(found)

    async def admit(self, ctx: AdmissionContext) -> Ticket:
        """``check_client_remote`` and ``acquire_provider`` in one call."""
        await self.check_client_remote(ctx)
        return await self.acquire_provider(ctx)

    async def acquire_provider(self, ctx: AdmissionContext) -> Ticket:
        """The provider's limits, cluster-wide: a ticket at once, after waiting in the queue, or for
        another route; the same errors as ``AdmissionController.acquire_provider``."""
        budgets = self._remote_budgets(ctx)
        lane = self._lane(ctx)
        if lane is None:
            return NOOP_TICKET if not budgets else ClusterTicket(self._settle, budgets=budgets)
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
                ticket = await self._elsewhere_remote(redirect, budgets, tokens)
                if ticket is not None:
                    return ticket

        wants = (Want(scope, scope.prefix, tokens),)
        if config.overflow is Overflow.REJECT or not queue.waiting(lane):
            found = await self._cluster.admit(wants)
            if isinstance(found, Admitted):
                return self._remote_ticket(lane, budgets, tokens, found, waited=paused)
            if config.overflow is Overflow.REJECT:
                raise _rate_limited(found)
        if config.overflow is Overflow.SPILLOVER:
            for route in config.spillover:
                ticket = await self._elsewhere_remote(route, budgets, tokens, waited=paused)
                if ticket is not None:
                    return ticket

        outcome: list[Admitted] = []

        async def attempt(now: int) -> int:
            found = await self._cluster.admit(wants)
            if isinstance(found, Refusal):
                return found.wait_ns
            outcome.append(found)
            return 0

        waited = await self._wait(queue, lane, scope, rank, tokens, attempt)
        return self._remote_ticket(lane, budgets, tokens, outcome[-1], waited=paused + waited)

    def _remote_budgets(self, ctx: AdmissionContext) -> Budgets:
        """The Redis buckets of the token budgets the request's usage is charged to."""
        if not self._budgeted:
            return ()
        found: list[tuple[bytes, Pace]] = []
        if ctx.session_id is not None and self._session.tokens is not None:
            found.append(
                (
                    bucket_key(self._session.prefix + ctx.session_id, self._session.tokens),
                    self._session.tokens,
                )
            )
        if ctx.api_key_id is not None:
            key = self._key_scopes.get(ctx.api_key_id, self._key)
            if key.tokens is not None:
                found.append((bucket_key(key.prefix + ctx.api_key_id, key.tokens), key.tokens))
        return tuple(found)

    def _remote_ticket(
        self,
        lane: str,
        budgets: Budgets,
        tokens: int,
        admitted: Admitted,
        *,
        route: str | None = None,
        waited: float = 0.0,
    ) -> Ticket:
        """The ticket of a request admitted on ``lane``, holding its token reservation (if one was made:
        a fail-open admission reserved nothing, so it has nothing to give back)."""
        scope = self._providers[lane]
        pace = scope.tokens
        if pace is None or not admitted.counted:
            return ClusterTicket(self._settle, budgets=budgets, route=route, waited=waited)
        queue = self._queue
        return ClusterTicket(
            self._settle,
            budgets=budgets,
            provider=(bucket_key(scope.prefix, pace), pace),
            reserved_tokens=reserved(pace, tokens),
            on_refund=None if queue is None else partial(queue.nudge, lane),
            route=route,
            waited=waited,
        )

    async def _elsewhere_remote(
        self, route: str, budgets: Budgets, tokens: int, *, waited: float = 0.0
    ) -> Ticket | None:
        """A ticket for ``route`` if its provider has room now (and nobody here waits for it), else None."""
        provider = route.partition(",")[0].strip()
        lane = route if route in self._providers else provider
        scope = self._providers.get(lane)
        if scope is None:
            return ClusterTicket(self._settle, budgets=budgets, route=route, waited=waited)
        if self._queue is not None and self._queue.waiting(lane):
            return None
        found = await self._cluster.admit((Want(scope, scope.prefix, tokens),))
        if isinstance(found, Refusal):
            return None
        return self._remote_ticket(lane, budgets, tokens, found, route=route, waited=waited)
