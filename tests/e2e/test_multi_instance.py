"""Several machines: two ccr-fast instances sharing one real Redis enforce one global limit together."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import httpx
import pytest

from ccr_fast.mock import MockProvider
from tests.e2e.conftest import gateway_config
from tests.redis_server import REDIS_SERVER, RedisServer
from tests.servers import run_ccr_fast

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server not installed (make test installs it)"),
]

BODY = {"model": "claude-sonnet-5", "max_tokens": 20, "messages": [{"role": "user", "content": "x"}]}


def test_two_instances_share_one_global_limit(mock: MockProvider, tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as redis:
        cfg = gateway_config(
            mock.url,
            RateLimit={"global": {"requestsPerMinute": 40}},
            State={"backend": "redis", "redis": {"url": redis.url, "failMode": "closed", "leaseSize": 1}},
        )
        with (
            run_ccr_fast(cfg, tmp_path / "a", workers=2) as a,
            run_ccr_fast(cfg, tmp_path / "b", workers=2) as b,
        ):
            codes: list[int] = []
            lock = threading.Lock()

            def hammer(url: str) -> None:
                with httpx.Client(timeout=10) as http:
                    for _ in range(20):
                        code = http.post(url + "/v1/messages", json=BODY).status_code
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
            # Redis goes away: failMode "closed" refuses instead of letting traffic through unlimited
            redis.kill()
            r = httpx.post(a.url + "/v1/messages", json=BODY, timeout=10)
            assert r.status_code == 429
            assert 1 <= int(r.headers["retry-after"]) <= 2
