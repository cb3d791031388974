"""The controller in one worker: client limits and IP rules, provider limits through the queue, tickets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ccr_fast.admission import NOOP_TICKET, AdmissionConfig, AdmissionContext, AdmissionController, Ticket
from ccr_fast.protocol.errors import GatewayError
from ccr_fast.state.shared import SharedState

from .conftest import FakeClock, settle

Make = Callable[..., AdmissionController]
SECOND = 10**9


@pytest.fixture
def make(state: SharedState, clock: FakeClock) -> Make:
    def build(**sections: Any) -> AdmissionController:
        return AdmissionController(AdmissionConfig.from_config(sections), state, clock=clock)

    return build


def _ctx(ip: str = "192.0.2.1", **fields: Any) -> AdmissionContext:
    return AdmissionContext(ip, **fields)


def _refused(controller: AdmissionController, ctx: AdmissionContext) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        controller.check_client(ctx)
    return caught.value


def _admitted(controller: AdmissionController, ctx: AdmissionContext, attempts: int) -> int:
    admitted = 0
    for _ in range(attempts):
        try:
            controller.check_client(ctx)
        except GatewayError:
            continue
        admitted += 1
    return admitted


async def _acquire_error(controller: AdmissionController, ctx: AdmissionContext) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await controller.acquire_provider(ctx)
    return caught.value


# --- nothing configured ---------------------------------------------------------------------------------


async def test_with_nothing_configured_admission_touches_nothing(make: Make, state: SharedState) -> None:
    controller = make()
    used = state.table.used()
    assert not controller.enabled
    for _ in range(100):
        controller.check_client(_ctx(session_id="s", api_key_id="k"))
        assert await controller.acquire_provider(_ctx(provider="deepseek")) is NOOP_TICKET
    assert state.table.used() == used
    assert controller.queued == 0 and controller.queue_depth == 0


async def test_an_unlimited_provider_gets_the_noop_ticket(make: Make) -> None:
    controller = make(
        RateLimit={"global": {"requestsPerSecond": 5}, "providers": {"groq": {"requestsPerSecond": 1}}}
    )
    assert controller.enabled
    assert await controller.acquire_provider(_ctx(provider="deepseek")) is NOOP_TICKET
    assert await controller.acquire_provider(_ctx()) is NOOP_TICKET


# --- client limits ----------------------------------------------------------------------------------------


async def test_the_global_limit_refuses_with_anthropics_429(make: Make, clock: FakeClock) -> None:
    controller = make(RateLimit={"global": {"requestsPerSecond": 10}})
    assert _admitted(controller, _ctx(), 10) == 10
    error = _refused(controller, _ctx("198.51.100.1"))
    assert (error.status, error.error_type) == (429, "rate_limit_error")
    assert error.headers == {"retry-after": "1"}
    assert error.message == "rate limit exceeded: the gateway allows 10 requests per second; retry after 1 s"
    assert error.body().startswith(b'{"type":"error","error":{"type":"rate_limit_error"')
    await clock.advance(0.1)
    assert _admitted(controller, _ctx(), 5) == 1


def test_per_minute_and_per_second_limits_both_hold(make: Make, clock: FakeClock) -> None:
    controller = make(RateLimit={"global": {"requestsPerSecond": 5, "requestsPerMinute": 8}})
    assert _admitted(controller, _ctx(), 20) == 5
    clock.now += SECOND
    assert _admitted(controller, _ctx(), 20) == 3
    error = _refused(controller, _ctx())
    assert "8 requests per minute" in error.message
    assert error.headers == {"retry-after": "7"}  # a slot every 7.5 s, counted from the first request


def test_sessions_are_limited_separately(make: Make) -> None:
    controller = make(RateLimit={"perSession": {"requestsPerMinute": 3}})
    assert _admitted(controller, _ctx(session_id="a"), 5) == 3
    assert _admitted(controller, _ctx(session_id="b"), 5) == 3
    assert _admitted(controller, _ctx(), 5) == 5  # no session id: no per-session limit
    assert "this session allows 3 requests per minute" in _refused(controller, _ctx(session_id="a")).message


def test_ips_are_limited_separately_and_ipv6_by_network(make: Make) -> None:
    controller = make(RateLimit={"perIP": {"requestsPerMinute": 2}})
    assert _admitted(controller, _ctx("192.0.2.1"), 5) == 2
    assert _admitted(controller, _ctx("::ffff:192.0.2.1"), 5) == 0  # the same client
    assert _admitted(controller, _ctx("192.0.2.2"), 5) == 2
    assert (
        _admitted(controller, _ctx("2001:db8:0:1::1"), 1) + _admitted(controller, _ctx("2001:db8:0:1::2"), 5)
        == 2
    )
    assert _admitted(controller, _ctx("2001:db8:0:2::1"), 5) == 2
    assert _admitted(controller, _ctx("unix-socket"), 5) == 5
    assert "this client address" in _refused(controller, _ctx("192.0.2.1")).message


def test_blacklisted_addresses_get_403_and_whitelisted_skip_ip_limits_only(make: Make) -> None:
    controller = make(
        RateLimit={
            "global": {"requestsPerSecond": 4},
            "perIP": {"requestsPerMinute": 1, "blacklist": ["203.0.113.0/24"], "whitelist": ["10.0.0.0/8"]},
        }
    )
    error = _refused(controller, _ctx("203.0.113.50"))
    assert (error.status, error.error_type, error.headers) == (403, "permission_error", {})
    assert error.message == "requests from this address are not allowed"
    assert _admitted(controller, _ctx("10.1.1.1"), 10) == 4  # past the per-IP limit, not the global one


def test_a_blacklist_alone_refuses_without_counting(make: Make, state: SharedState) -> None:
    controller = make(RateLimit={"perIP": {"blacklist": ["2001:db8::/32"]}})
    used = state.table.used()
    assert _refused(controller, _ctx("2001:db8::7")).status == 403
    assert _admitted(controller, _ctx("2001:db9::7"), 50) == 50
    assert state.table.used() == used


def test_keys_get_the_default_limit_or_their_own(make: Make) -> None:
    controller = make(
        RateLimit={"perKey": {"requestsPerMinute": 5, "keys": {"ci": {"requestsPerMinute": 2}}}}
    )
    assert _admitted(controller, _ctx(api_key_id="alice"), 10) == 5
    assert _admitted(controller, _ctx(api_key_id="ci"), 10) == 2
    assert _admitted(controller, _ctx(), 10) == 10
    assert "this API key allows 2 requests per minute" in _refused(controller, _ctx(api_key_id="ci")).message


def test_a_request_refused_by_one_limit_costs_nothing_on_the_others(make: Make, clock: FakeClock) -> None:
    controller = make(RateLimit={"global": {"requestsPerSecond": 1}, "perIP": {"requestsPerMinute": 2}})
    assert _admitted(controller, _ctx(), 1) == 1
    assert _admitted(controller, _ctx(), 10) == 0  # the global limit refuses; the IP keeps its second unit
    clock.now += SECOND
    assert _admitted(controller, _ctx(), 1) == 1
    clock.now += SECOND
    assert "this client address" in _refused(controller, _ctx()).message


async def test_token_budget_is_charged_from_real_usage_then_enforced(make: Make, clock: FakeClock) -> None:
    controller = make(RateLimit={"perSession": {"tokenBudget": 6000}})  # 100 tokens a second
    ctx = _ctx(session_id="s", provider="deepseek")
    controller.check_client(ctx)
    ticket = await controller.acquire_provider(ctx)
    assert ticket is not NOOP_TICKET
    ticket.charge_tokens(4000)
    ticket.release()
    controller.check_client(ctx)  # 4000 of 6000 used: still within the budget
    ticket = await controller.acquire_provider(ctx)
    ticket.charge_tokens(2500)  # 6500: 500 over
    ticket.release()
    error = _refused(controller, ctx)
    assert error.status == 429 and error.headers == {"retry-after": "5"}
    assert "this session allows 6000 tokens per minute" in error.message
    controller.check_client(_ctx(session_id="other"))  # another session's budget is untouched
    await clock.advance(5.0)
    controller.check_client(ctx)


async def test_key_budgets_are_charged_too(make: Make) -> None:
    controller = make(RateLimit={"perKey": {"tokenBudget": 1000}})
    ticket = await controller.admit(_ctx(api_key_id="k"))
    ticket.charge_tokens(1001)
    assert _refused(controller, _ctx(api_key_id="k")).status == 429
    controller.check_client(_ctx(api_key_id="j"))


# --- priorities -------------------------------------------------------------------------------------------


def test_priority_comes_from_the_header_capped_by_the_key(make: Make) -> None:
    controller = make(
        Queue={"levels": ["high", "normal", "low"], "keyPriorities": {"ci": "low", "ops": "high"}}
    )
    rank = controller.priority_rank
    assert rank(_ctx()) == 1
    assert rank(_ctx(priority=" HIGH ")) == 0
    assert rank(_ctx(priority="urgent")) == 1  # unknown levels are ignored
    assert rank(_ctx(api_key_id="ci")) == 2
    assert rank(_ctx(api_key_id="ci", priority="high")) == 2  # a key's level is a ceiling
    assert rank(_ctx(api_key_id="ops")) == 0
    assert rank(_ctx(api_key_id="ops", priority="low")) == 2  # asking for less is fine


# --- provider limits and the queue ------------------------------------------------------------------------

PROVIDER_RPS = {"providers": {"deepseek": {"requestsPerSecond": 1}}}


def _spawn(controller: AdmissionController, **fields: Any) -> asyncio.Future[Ticket]:
    return asyncio.ensure_future(controller.acquire_provider(_ctx(provider="deepseek", **fields)))


async def test_a_provider_at_its_limit_makes_requests_wait_not_fail(make: Make, clock: FakeClock) -> None:
    controller = make(RateLimit=PROVIDER_RPS)
    first = await controller.acquire_provider(_ctx(provider="deepseek"))
    assert first.waited == 0.0 and first.route is None
    second, third = _spawn(controller), _spawn(controller)
    await settle()
    assert controller.queued == 2 and controller.queue_depth == 2
    await clock.advance(1.0)
    assert second.done() and not third.done()
    assert second.result().waited == 1.0
    await clock.advance(1.0)
    assert third.result().waited == 2.0
    assert controller.queued == 0 and controller.queue_depth == 0


async def test_the_queue_serves_by_priority(make: Make, clock: FakeClock) -> None:
    controller = make(RateLimit=PROVIDER_RPS)
    await controller.acquire_provider(_ctx(provider="deepseek"))
    order: list[str] = []

    async def request(name: str, level: str) -> None:
        await controller.acquire_provider(_ctx(provider="deepseek", priority=level))
        order.append(name)

    levels = [("low", "low"), ("normal1", "normal"), ("high", "high"), ("normal2", "normal")]
    tasks = [asyncio.ensure_future(request(name, level)) for name, level in levels]
    await clock.advance(4.0)
    assert all(task.done() for task in tasks)
    assert order == ["high", "normal1", "normal2", "low"]


async def test_a_newcomer_queues_behind_waiters_even_when_a_slot_is_free(
    make: Make, clock: FakeClock
) -> None:
    controller = make(RateLimit=PROVIDER_RPS)
    await controller.acquire_provider(_ctx(provider="deepseek"))
    waiting = _spawn(controller, priority="high")
    await settle()
    clock.now += SECOND  # the slot is free, but its timer has not fired yet
    late = _spawn(controller, priority="low")
    await settle()
    assert not late.done() and controller.queued == 2
    await clock.advance(0.0)
    assert waiting.done() and not late.done()


async def test_a_wait_times_out_with_529(make: Make, clock: FakeClock) -> None:
    controller = make(
        RateLimit={"providers": {"deepseek": {"requestsPerMinute": 1}}}, Queue={"timeoutMs": 2000}
    )
    await controller.acquire_provider(_ctx(provider="deepseek"))
    task = _spawn(controller)
    await clock.advance(2.0)
    error = task.exception()
    assert isinstance(error, GatewayError)
    assert (error.status, error.error_type) == (529, "overloaded_error")
    assert error.message == "provider deepseek had no capacity within 2 s"
    assert error.headers == {"retry-after": "58"}
    assert controller.queue_depth == 0


async def test_a_full_queue_refuses_with_529(make: Make, clock: FakeClock) -> None:
    controller = make(RateLimit=PROVIDER_RPS, Queue={"maxSize": 2})
    await controller.acquire_provider(_ctx(provider="deepseek"))
    waiting = [_spawn(controller), _spawn(controller)]
    await settle()
    error = await _acquire_error(controller, _ctx(provider="deepseek"))
    assert (error.status, error.error_type, error.headers) == (529, "overloaded_error", {"retry-after": "2"})
    assert "too many requests are waiting (2)" in error.message
    await clock.advance(2.0)
    assert all(task.done() for task in waiting)


async def test_a_client_that_goes_away_leaves_the_queue_at_once(
    make: Make, clock: FakeClock, state: SharedState
) -> None:
    controller = make(RateLimit={"providers": {"deepseek": {"requestsPerSecond": 1, "tokensPerMinute": 600}}})
    await controller.acquire_provider(_ctx(provider="deepseek", estimated_tokens=10))
    token_word = state.table.slot("adm/p/deepseek") + 16
    before = state.table.atomics.load(token_word)
    gone = _spawn(controller, estimated_tokens=100)
    behind = _spawn(controller, estimated_tokens=100)
    await settle()
    assert controller.queue_depth == 2
    gone.cancel()  # what the gateway does when the client disconnects
    await asyncio.sleep(0)
    assert controller.queued == 1 and controller.queue_depth == 1
    assert state.table.atomics.load(token_word) == before  # nothing was reserved for it
    await clock.advance(1.0)
    assert behind.done() and controller.queue_depth == 0


async def test_tokens_per_minute_reserve_the_estimate_and_settle_on_release(
    make: Make, clock: FakeClock
) -> None:
    controller = make(RateLimit={"providers": {"deepseek": {"tokensPerMinute": 600}}})  # 10 a second
    first = await controller.acquire_provider(_ctx(provider="deepseek", estimated_tokens=600))
    waiting = _spawn(controller, estimated_tokens=100)
    await settle()
    assert not waiting.done()  # the whole minute's tokens are reserved
    first.charge_tokens(200)
    first.release()  # 400 reserved tokens come back, and the waiter is told at once
    await settle()
    assert waiting.done() and waiting.result().waited == 0.0


async def test_per_model_limits_take_precedence(make: Make, clock: FakeClock) -> None:
    controller = make(
        RateLimit={
            "providers": {"openai": {"requestsPerSecond": 100}, "openai,gpt-4o": {"requestsPerSecond": 1}}
        }
    )
    await controller.acquire_provider(_ctx(provider="openai", model="gpt-4o"))
    slow = asyncio.ensure_future(controller.acquire_provider(_ctx(provider="openai", model="gpt-4o")))
    await controller.acquire_provider(_ctx(provider="openai", model="gpt-4o-mini"))
    await settle()
    assert not slow.done()
    await clock.advance(1.0)
    assert slow.done()


async def test_overflow_reject_answers_429_at_once(make: Make) -> None:
    controller = make(RateLimit=PROVIDER_RPS, Queue={"overflow": "reject"})
    await controller.acquire_provider(_ctx(provider="deepseek"))
    error = await _acquire_error(controller, _ctx(provider="deepseek"))
    assert (error.status, error.error_type, error.headers) == (429, "rate_limit_error", {"retry-after": "1"})
    assert "provider deepseek allows 1 request per second" in error.message
    assert controller.queue_depth == 0


async def test_overflow_spillover_takes_the_first_route_with_room(make: Make, clock: FakeClock) -> None:
    controller = make(
        RateLimit={"providers": {"deepseek": {"requestsPerSecond": 1}, "groq": {"requestsPerSecond": 1}}},
        Queue={"overflow": "spillover", "spilloverProviders": ["groq,llama", "openrouter,any"]},
    )
    assert (await controller.acquire_provider(_ctx(provider="deepseek"))).route is None
    assert (await controller.acquire_provider(_ctx(provider="deepseek"))).route == "groq,llama"
    assert (await controller.acquire_provider(_ctx(provider="deepseek"))).route == "openrouter,any"


async def test_overflow_spillover_waits_when_no_route_has_room(make: Make, clock: FakeClock) -> None:
    controller = make(
        RateLimit={"providers": {"deepseek": {"requestsPerSecond": 1}, "groq": {"requestsPerSecond": 1}}},
        Queue={"overflow": "spillover", "spilloverProviders": ["groq,llama"]},
    )
    await controller.acquire_provider(_ctx(provider="deepseek"))
    await controller.acquire_provider(_ctx(provider="deepseek"))  # spilled to groq
    task = _spawn(controller)
    await settle()
    assert controller.queued == 1
    await clock.advance(1.0)
    assert task.result().route is None


async def _fill(controller: AdmissionController, waiters: int) -> list[asyncio.Future[Ticket]]:
    await controller.acquire_provider(_ctx(provider="deepseek"))
    tasks = [_spawn(controller) for _ in range(waiters)]
    await settle()
    assert controller.queue_depth == waiters
    return tasks


LIMITED = {"providers": {"deepseek": {"requestsPerMinute": 1}, "groq": {"requestsPerSecond": 100}}}


async def test_backpressure_slow_pauses_new_requests_more_as_the_queue_fills(
    make: Make, clock: FakeClock
) -> None:
    controller = make(
        RateLimit=LIMITED,
        Queue={"maxSize": 4, "backpressure": {"threshold": 0.5, "action": "slow", "delayMs": 1000}},
    )
    await _fill(controller, 2)
    assert (await controller.acquire_provider(_ctx(provider="groq"))).waited == 0.0  # at the threshold
    _spawn(controller)
    await settle()  # three waiting: half way from the threshold to full
    slowed = asyncio.ensure_future(controller.acquire_provider(_ctx(provider="groq")))
    await clock.advance(0.4)
    assert not slowed.done()
    await clock.advance(0.1)
    assert slowed.result().waited == 0.5
    assert await controller.acquire_provider(_ctx(provider="other")) is NOOP_TICKET  # unlimited: untouched


async def test_backpressure_reject_keeps_room_for_the_highest_level(make: Make) -> None:
    controller = make(
        RateLimit=LIMITED, Queue={"maxSize": 4, "backpressure": {"threshold": 0.5, "action": "reject"}}
    )
    await _fill(controller, 2)
    error = await _acquire_error(controller, _ctx(provider="groq"))
    assert (error.status, error.error_type) == (529, "overloaded_error")
    assert "only 'high' priority requests are queued" in error.message
    high = _spawn(controller, priority="high")
    await settle()
    assert not high.done() and controller.queue_depth == 3


async def test_backpressure_redirect_sends_new_requests_elsewhere(make: Make) -> None:
    controller = make(
        RateLimit=LIMITED,
        Queue={
            "maxSize": 4,
            "backpressure": {"threshold": 0.5, "action": "redirect", "redirectTo": "groq,llama"},
        },
    )
    await _fill(controller, 1)
    assert controller.queue_depth == 1
    below = _spawn(controller)
    await settle()
    assert not below.done()  # below the threshold: it waits like the others
    ticket = await controller.acquire_provider(_ctx(provider="deepseek"))
    assert ticket.route == "groq,llama" and ticket.waited == 0.0


async def test_admit_checks_the_client_then_the_provider(make: Make) -> None:
    controller = make(RateLimit={"perIP": {"blacklist": ["192.0.2.0/24"]}, **PROVIDER_RPS})
    with pytest.raises(GatewayError) as caught:
        await controller.admit(_ctx("192.0.2.9", provider="deepseek"))
    assert caught.value.status == 403
    assert controller.queue_depth == 0
    ticket = await controller.admit(_ctx("198.51.100.9", provider="deepseek"))
    ticket.charge_tokens(10)
    ticket.release()


async def test_on_the_real_clock_waiters_are_woken_by_loop_timers(state: SharedState) -> None:
    raw = {"RateLimit": {"providers": {"deepseek": {"requestsPerSecond": 50}}}}
    controller = AdmissionController(AdmissionConfig.from_config(raw), state)
    tickets = await asyncio.gather(
        *[controller.acquire_provider(_ctx(provider="deepseek")) for _ in range(52)]
    )
    assert [ticket.waited > 0 for ticket in tickets] == [False] * 50 + [True] * 2
    assert controller.queue_depth == 0
