"""Several machines: two ccr-fast instances sharing one real Redis enforce every limit together, wait on one
provider bucket, add up their metrics, and follow the configured fail mode when Redis is killed."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from ccr_fast.mock import MockProvider
from tests.e2e.conftest import gateway_config
from tests.redis_server import REDIS_SERVER, RedisServer
from tests.servers import RunningServer, run_ccr_fast

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server not installed (make test installs it)"),
]

BODY = {"model": "claude-sonnet-5", "max_tokens": 20, "messages": [{"role": "user", "content": "x"}]}
MAIN_KEY = "sk-main-0000"
KEYS = [{"name": "ci-bot", "key": "sk-ci-1111"}, {"name": "budget-bot", "key": "sk-budget-2222"}]
_addresses = (f"198.51.100.{i}" for i in itertools.cycle(range(1, 255)))


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as running:
        yield running


def cluster_config(mock_url: str, redis_url: str, fail_mode: str = "closed", **extra: Any) -> dict[str, Any]:
    """Both instances' config: named keys, addresses from X-Forwarded-For (each test request says which
    client it is), and the state in Redis with a short metrics interval."""
    return gateway_config(
        mock_url,
        APIKEY=MAIN_KEY,
        APIKEYS=KEYS,
        TRUSTED_PROXIES=["127.0.0.1"],
        State={
            "backend": "redis",
            "redis": {"url": redis_url, "failMode": fail_mode, "timeoutMs": 500, "metricsIntervalMs": 200},
        },
        **extra,
    )


class Answer:
    def __init__(self, status: int, message: str, headers: httpx.Headers) -> None:
        self.status = status
        self.message = message
        self.headers = headers

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.message!r})"


def ask(
    server: RunningServer,
    *,
    key: str = MAIN_KEY,
    ip: str | None = None,
    session: str | None = None,
    timeout: float = 20,
) -> Answer:
    """One request through the Anthropic SDK, as client ``ip`` (a fresh address unless given)."""
    client = anthropic.Anthropic(
        base_url=server.url,
        api_key=key,
        max_retries=0,
        timeout=timeout,
        default_headers={"x-forwarded-for": ip or next(_addresses)},
    )
    metadata: Any = {"user_id": f"user_abc_account__session_{session}"} if session else anthropic.NOT_GIVEN
    try:
        raw = client.messages.with_raw_response.create(
            model=BODY["model"], max_tokens=20, messages=BODY["messages"], metadata=metadata
        )
    except anthropic.APIStatusError as err:
        return Answer(err.status_code, err.message, err.response.headers)
    finally:
        client.close()
    return Answer(raw.status_code, "", raw.headers)


def cluster_view(server: RunningServer, view: str = "summary") -> dict[str, Any]:
    r = httpx.get(
        f"{server.url}/api/metrics/{view}?scope=cluster", headers={"x-api-key": MAIN_KEY}, timeout=10
    )
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def _status(server: RunningServer, path: str) -> int:
    return httpx.get(server.url + path, headers={"x-api-key": MAIN_KEY}, timeout=10).status_code


def eventually(read: Callable[[], Any], wanted: Callable[[Any], bool], seconds: float = 10.0) -> Any:
    """``read()`` until ``wanted`` holds (cluster numbers come one publish interval later); the last read."""
    deadline = time.monotonic() + seconds
    value = read()
    while not wanted(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def test_every_client_limit_and_a_token_budget_hold_across_two_instances(
    mock: MockProvider, redis: RedisServer, tmp_path: Path
) -> None:
    cfg = cluster_config(
        mock.url,
        redis.url,
        RateLimit={
            "perSession": {"requestsPerMinute": 3},
            "perIP": {"requestsPerMinute": 4},
            "perKey": {
                "requestsPerMinute": 100,
                "keys": {"ci-bot": {"requestsPerMinute": 2}, "budget-bot": {"tokenBudget": 50}},
            },
        },
    )
    with run_ccr_fast(cfg, tmp_path / "a", workers=2) as a, run_ccr_fast(cfg, tmp_path / "b") as b:
        # per key: ci-bot may send 2 a minute, wherever they land
        assert [ask(s, key="sk-ci-1111").status for s in (a, b)] == [200, 200]
        refused = ask(a, key="sk-ci-1111")
        assert refused.status == 429 and "this API key allows 2 requests per minute" in refused.message
        assert 1 <= int(refused.headers["retry-after"]) <= 30

        # per session: 3 a minute across both instances
        assert [ask(s, session="s-1").status for s in (a, b, a)] == [200, 200, 200]
        refused = ask(b, session="s-1")
        assert refused.status == 429 and "this session allows 3 requests per minute" in refused.message
        assert ask(b, session="s-2").status == 200  # another session is not affected

        # per client address: 4 a minute across both instances
        assert [ask(s, ip="203.0.113.9").status for s in (a, b, a, b)] == [200] * 4
        refused = ask(a, ip="203.0.113.9")
        assert refused.status == 429 and "this client address allows 4 requests per minute" in refused.message

        # a token budget of 50 a minute, charged with each response's real usage
        mock.script([{"text": "ok", "usage": {"prompt_tokens": 300, "completion_tokens": 100}}] * 10)
        assert ask(a, key="sk-budget-2222").status == 200  # let in: the budget was not overdrawn yet
        answer = eventually(lambda: ask(b, key="sk-budget-2222"), lambda found: found.status == 429)
        assert "this API key allows 50 tokens per minute" in answer.message, answer
        assert int(answer.headers["retry-after"]) > 60  # 400 tokens used at 50 a minute
        assert ask(b, key="sk-ci-1111").status == 429  # and nothing above gave ci-bot its units back


def test_a_provider_limit_and_its_queue_are_shared_by_the_instances(
    mock: MockProvider, redis: RedisServer, tmp_path: Path
) -> None:
    cfg = cluster_config(
        mock.url,
        redis.url,
        RateLimit={"providers": {"oai": {"requestsPerMinute": 2}}},
        Queue={"timeoutMs": 5000},
    )
    with run_ccr_fast(cfg, tmp_path / "a") as a, run_ccr_fast(cfg, tmp_path / "b", workers=2) as b:
        assert [ask(a).status, ask(a).status] == [200, 200]  # the provider's 2 a minute, taken on a
        answers: list[Answer] = []
        waiting = [threading.Thread(target=lambda: answers.append(ask(b))) for _ in range(3)]
        for thread in waiting:
            thread.start()
        # b's requests wait for the cluster-wide bucket, and every instance sees them waiting
        seen = eventually(lambda: cluster_view(a, "realtime"), lambda view: view["queueDepth"] == 3)
        assert seen["queueDepth"] == 3, seen
        assert {i["queueDepth"] for i in seen["instances"]} == {0, 3} and len(seen["instances"]) == 2
        assert (
            httpx.get(f"{a.url}/api/metrics/realtime", headers={"x-api-key": MAIN_KEY}).json()["queueDepth"]
            == 0
        )
        for thread in waiting:
            thread.join(20)
        assert [answer.status for answer in answers] == [529, 529, 529]
        assert all("provider oai had no capacity within 5 s" in answer.message for answer in answers)
        summary = eventually(lambda: cluster_view(b), lambda view: view["queueDepth"] == 0)
        assert summary["queuedTotal"] == 3 and summary["rateLimitedByScope"] == {"provider": 3}


def test_cluster_totals_add_up_the_requests_of_both_instances(
    mock: MockProvider, redis: RedisServer, tmp_path: Path
) -> None:
    cfg = cluster_config(mock.url, redis.url, RateLimit={"global": {"requestsPerMinute": 8}})
    with run_ccr_fast(cfg, tmp_path / "a", workers=2) as a, run_ccr_fast(cfg, tmp_path / "b") as b:
        sent = [ask(a) for _ in range(5)] + [ask(b, key="sk-ci-1111") for _ in range(5)]
        statuses = [answer.status for answer in sent]
        assert statuses.count(200) == 8 and statuses.count(429) == 2, statuses
        summary = eventually(lambda: cluster_view(a), lambda view: view["totalRequests"] == 10)
        assert summary["totalRequests"] == 10
        assert summary["apiKeys"] == {"ci-bot": 5, "default": 5}
        assert summary["rateLimitedByScope"] == {"client": 2}
        assert summary["statusCodeDistribution"]["2xx_success"] == 8
        (oai,) = [p for p in summary["providers"] if p["provider"] == "oai"]
        assert oai["requests"] == 8 and oai["inputTokens"] > 0 and oai["outputTokens"] > 0
        assert summary["totalInputTokens"] == oai["inputTokens"]
        assert len(summary["instances"]) == 2
        # Prometheus stays per instance: each scrape reports its own machine
        metrics = httpx.get(f"{a.url}/metrics", headers={"x-api-key": MAIN_KEY}).text
        assert "ccr_requests_total 5" in metrics
        assert 'ccr_api_key_requests_total{key="default"} 5' in metrics
        bad = httpx.get(f"{a.url}/api/metrics/summary?scope=world", headers={"x-api-key": MAIN_KEY})
        assert bad.status_code == 400 and "unknown scope" in bad.json()["error"]["message"]
        redis.kill()
        down = httpx.get(f"{a.url}/api/metrics/summary?scope=cluster", headers={"x-api-key": MAIN_KEY})
        assert down.status_code == 503 and "Redis" in down.json()["error"]["message"]


def test_fail_open_lets_traffic_through_while_redis_is_down(
    mock: MockProvider, redis: RedisServer, tmp_path: Path
) -> None:
    cfg = cluster_config(mock.url, redis.url, "open", RateLimit={"perSession": {"requestsPerMinute": 3}})
    with run_ccr_fast(cfg, tmp_path / "a") as a, run_ccr_fast(cfg, tmp_path / "b") as b:
        assert [ask(s, session="s-1").status for s in (a, b, a, b)] == [200, 200, 200, 429]
        redis.kill()
        # nothing can be counted: a session over its limit gets through...
        assert [ask(s, session="s-2").status for s in (a, b, a, b, a)] == [200] * 5
        # ...except where a refusal Redis already announced is remembered (it was exact, and still is)
        assert ask(b, session="s-1").status == 429
        assert ask(a, session="s-1").status == 200
        redis.restart()  # empty: counting starts again, once the instance has reached it
        reached = eventually(
            lambda: _status(a, "/api/metrics/summary?scope=cluster"), lambda code: code == 200
        )
        assert reached == 200
        assert [ask(a, session="s-3").status for _ in range(4)] == [200, 200, 200, 429]


def test_fail_closed_refuses_while_redis_is_down(
    mock: MockProvider, redis: RedisServer, tmp_path: Path
) -> None:
    cfg = cluster_config(mock.url, redis.url, "closed", RateLimit={"global": {"requestsPerMinute": 40}})
    with run_ccr_fast(cfg, tmp_path / "a", workers=2) as a, run_ccr_fast(cfg, tmp_path / "b", workers=2) as b:
        codes: list[int] = []
        lock = threading.Lock()

        def hammer(url: str) -> None:
            with httpx.Client(timeout=10) as http:
                for _ in range(20):
                    code = http.post(
                        url + "/v1/messages",
                        json=BODY,
                        headers={"x-api-key": MAIN_KEY, "x-forwarded-for": next(_addresses)},
                    ).status_code
                    with lock:
                        codes.append(code)

        started = time.monotonic()
        threads = [threading.Thread(target=hammer, args=(s.url,)) for s in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - started
        ok = codes.count(200)
        # one limit for both machines: 40 at once, plus one every 1.5 s while the burst lasts
        assert 40 <= ok <= 40 + math.ceil(elapsed / 1.5) + 1, (ok, elapsed)
        assert codes.count(429) == len(codes) - ok
        time.sleep(2)  # a unit refills, and the refusals remembered on each machine run out

        redis.kill()  # Redis goes away: failMode "closed" refuses instead of letting traffic through
        for server in (a, b):
            refused = ask(server)
            assert refused.status == 429 and "Redis" in refused.message, refused
            assert refused.headers["retry-after"] == "1"
        redis.restart()
        assert eventually(lambda: ask(a).status, lambda status: status == 200) == 200
