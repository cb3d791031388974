"""GCRA limits on shared slots: all-or-nothing admission, budgets asked then charged, reservations settled."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from types import ModuleType

import pytest

from ccr_fast.admission.config import Limits, Rate
from ccr_fast.admission.limits import (
    MAX_CHARGE_NS,
    NOOP_TICKET,
    Pace,
    Scope,
    SharedLimits,
    Ticket,
    reserved,
    retry_after,
)
from ccr_fast.state.segment import Layout, Segment
from ccr_fast.state.shared import SharedState
from ccr_fast.state.table import KeyTable

from .conftest import START_NS

SECOND = 10**9
RPS = Rate(2, 1.0)  # 2 at once, then one per 500 ms
RPM = Rate(3, 60.0)  # 3 at once, then one per 20 s
TOKENS = Rate(600, 60.0, "tokens")  # 600 at once, then 10 per second


@pytest.fixture
def limits(state: SharedState) -> SharedLimits:
    return SharedLimits(state.table)


def _slot(limits: SharedLimits, key: str) -> int:
    base = limits.slot(key)
    assert base is not None
    return base


def test_pace_compiles_a_rate_to_nanosecond_steps() -> None:
    assert Pace.of(8, RPM) == Pace(8, 20 * SECOND, 3, 60 * SECOND, RPM)
    assert Pace.of(16, TOKENS).step_ns == SECOND // 10


def test_requests_pass_while_every_limit_has_room(limits: SharedLimits) -> None:
    scope = Scope("this session", "s/", Limits(RPS, RPM))
    base = _slot(limits, "s/a")
    assert [limits.admit(scope, base, START_NS) is None for _ in range(3)] == [True, True, False]
    refusal = limits.admit(scope, base, START_NS)
    assert refusal is not None
    assert refusal.reason == "this session allows 2 requests per second"
    assert refusal.wait_ns == SECOND // 2
    # half a second on, the per-second bucket has room again; the third per-minute unit is still there
    assert limits.admit(scope, base, START_NS + SECOND // 2) is None
    later = limits.admit(scope, base, START_NS + SECOND)
    assert later is not None and later.reason == "this session allows 3 requests per minute"


def test_a_refused_request_takes_nothing_from_the_limits_that_had_room(limits: SharedLimits) -> None:
    scope = Scope("this session", "s/", Limits(Rate(100, 1.0), Rate(1, 60.0)))
    base = _slot(limits, "s/a")
    assert limits.admit(scope, base, START_NS) is None
    for _ in range(500):
        assert limits.admit(scope, base, START_NS) is not None  # the per-minute limit refuses each
    # had the per-second bucket been charged for those, it would be empty for a whole five seconds
    after_a_minute = START_NS + 60 * SECOND
    assert limits.admit(scope, base, after_a_minute) is None


def test_give_back_undoes_an_admission(limits: SharedLimits) -> None:
    scope = Scope("provider p", "p/", Limits(None, Rate(1, 60.0), TOKENS), reserve_tokens=True)
    base = _slot(limits, "p/")
    assert limits.admit(scope, base, START_NS, tokens=600) is None
    assert limits.admit(scope, base, START_NS, tokens=0) is not None
    limits.give_back(scope, base, tokens=600)
    assert limits.admit(scope, base, START_NS, tokens=600) is None


def test_a_budget_is_asked_not_taken_and_blocks_once_overdrawn(limits: SharedLimits) -> None:
    scope = Scope("this session", "s/", Limits(tokens=TOKENS))
    base = _slot(limits, "s/a")
    assert scope.tokens is not None
    for _ in range(10):
        assert limits.admit(scope, base, START_NS) is None  # asking costs nothing
    limits.charge(base, scope.tokens, 600, START_NS)
    assert limits.admit(scope, base, START_NS) is None  # spent exactly the budget: not overdrawn
    limits.charge(base, scope.tokens, 50, START_NS)
    refusal = limits.admit(scope, base, START_NS)
    assert refusal is not None and refusal.wait_ns == 5 * SECOND  # 50 tokens at 10 per second
    assert refusal.reason == "this session allows 600 tokens per minute"
    assert limits.admit(scope, base, START_NS + 5 * SECOND) is None


def test_a_huge_charge_is_capped_at_a_day_of_debt(limits: SharedLimits) -> None:
    scope = Scope("this session", "s/", Limits(tokens=Rate(1, 60.0, "tokens")))
    base = _slot(limits, "s/a")
    assert scope.tokens is not None
    limits.charge(base, scope.tokens, 10**9, START_NS)
    refusal = limits.admit(scope, base, START_NS)
    assert refusal is not None
    assert refusal.wait_ns == MAX_CHARGE_NS - scope.tokens.limit_ns


def test_a_provider_reservation_is_capped_at_its_bucket(limits: SharedLimits) -> None:
    scope = Scope("provider p", "p/", Limits(tokens=TOKENS), reserve_tokens=True)
    base = _slot(limits, "p/")
    assert scope.tokens is not None and reserved(scope.tokens, 10**6) == 600
    assert limits.admit(scope, base, START_NS, tokens=10**6) is None  # a request bigger than a minute's worth
    refusal = limits.admit(scope, base, START_NS, tokens=1)
    assert refusal is not None and refusal.wait_ns == SECOND // 10


def test_ticket_charges_beyond_the_reservation_and_refunds_the_rest(
    limits: SharedLimits, state: SharedState
) -> None:
    provider = Scope("provider p", "p/", Limits(tokens=TOKENS), reserve_tokens=True)
    budget = Scope("this session", "s/", Limits(tokens=TOKENS))
    p_base, s_base = _slot(limits, "p/"), _slot(limits, "s/a")
    assert provider.tokens is not None and budget.tokens is not None
    words = state.table.atomics

    assert limits.admit(provider, p_base, START_NS, tokens=300) is None
    ticket = Ticket(
        limits,
        lambda: START_NS,
        budgets=((s_base, budget.tokens),),
        provider=(p_base, provider.tokens),
        reserved_tokens=300,
    )
    step = provider.tokens.step_ns
    assert words.load(p_base + 16) == START_NS + 300 * step
    ticket.charge_tokens(100)  # within the reservation: the provider's word does not move
    assert words.load(p_base + 16) == START_NS + 300 * step
    assert words.load(s_base + 16) == START_NS + 100 * step  # the budget is charged in full
    ticket.release()  # 200 reserved tokens were not used
    assert words.load(p_base + 16) == START_NS + 100 * step
    ticket.release()
    assert words.load(p_base + 16) == START_NS + 100 * step  # idempotent
    ticket.charge_tokens(50)  # after release, usage is charged in full
    assert words.load(p_base + 16) == START_NS + 150 * step
    assert words.load(s_base + 16) == START_NS + 150 * step


def test_ticket_charges_past_a_small_reservation(limits: SharedLimits, state: SharedState) -> None:
    provider = Scope("provider p", "p/", Limits(tokens=TOKENS), reserve_tokens=True)
    base = _slot(limits, "p/")
    assert provider.tokens is not None
    assert limits.admit(provider, base, START_NS, tokens=10) is None
    ticket = Ticket(limits, lambda: START_NS, provider=(base, provider.tokens), reserved_tokens=10)
    ticket.charge_tokens(40)
    ticket.charge_tokens(0)
    ticket.charge_tokens(-5)
    ticket.release()
    assert state.table.atomics.load(base + 16) == START_NS + 40 * provider.tokens.step_ns


def test_noop_ticket_does_nothing() -> None:
    NOOP_TICKET.charge_tokens(1000)
    NOOP_TICKET.release()
    assert NOOP_TICKET.route is None and NOOP_TICKET.waited == 0.0


def test_a_full_table_lets_requests_through_untracked(new_state: Callable[..., SharedState]) -> None:
    state = new_state(table_capacity=16)
    limits = SharedLimits(state.table)
    keys = [limits.slot(f"s/{n}") for n in range(40)]
    assert None in keys
    assert state.table.full_count > 0


@pytest.mark.parametrize(("wait_ns", "header"), [(1, "1"), (SECOND, "1"), (SECOND + 1, "2"), (0, "1")])
def test_retry_after_rounds_up_to_whole_seconds(wait_ns: int, header: str) -> None:
    assert retry_after(wait_ns) == header


def test_a_table_without_room_for_three_limits_is_refused(impl: ModuleType) -> None:
    layout = Layout(table_capacity=16, slot_words=2)
    segment = Segment.create(layout, prefix=f"ccr-test-adm-{secrets.token_hex(4)}", impl=impl)
    with segment, pytest.raises(ValueError, match="needs 3 state words per key slot, the table has 1"):
        SharedLimits(KeyTable(segment))
