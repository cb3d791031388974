"""Metrics through real servers: totals across workers add up exactly; the JSON views and live feed work."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccr_fast.mock import MockProvider
from tests.e2e.conftest import gateway_config
from tests.servers import run_ccr_fast

pytestmark = pytest.mark.e2e

BODY = {"model": "claude-sonnet-5", "max_tokens": 20, "messages": [{"role": "user", "content": "x"}]}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _total(text: str, name: str) -> float:
    return sum(v for (n, _), v in _samples(text).items() if n == name)


def test_request_totals_add_up_across_workers(mock: MockProvider, tmp_path: Path) -> None:
    with run_ccr_fast(gateway_config(mock.url), tmp_path, workers=2) as server:
        n_ok, n_err, n_threads = 40, 5, 8
        mock.script([{"text": "ok", "usage": {"prompt_tokens": 10, "completion_tokens": 3}}] * n_ok)

        def work(count: int, body: dict) -> None:
            with httpx.Client(timeout=10) as http:
                for _ in range(count):
                    http.post(server.url + "/v1/messages", json=body)

        threads = [threading.Thread(target=work, args=(n_ok // n_threads, BODY)) for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        work(n_err, dict(BODY, model="dead,m"))  # unreachable upstream: 502s
        text = httpx.get(server.url + "/metrics").text
        assert _total(text, "ccr_requests_total") == n_ok + n_err
        by_route = {
            labels: v for (name, labels), v in _samples(text).items() if name == "ccr_provider_requests_total"
        }
        assert sum(v for labels, v in by_route.items() if ("provider", "oai") in labels) == n_ok
        assert sum(v for labels, v in by_route.items() if ("provider", "dead") in labels) == n_err
        assert re.search(r"ccr_overhead_us_bucket", text)
        assert _total(text, "ccr_latency_ms_count") >= n_ok
        summary = httpx.get(server.url + "/api/metrics/summary").json()
        assert summary
        providers = httpx.get(server.url + "/api/metrics/providers").json()
        assert any(p.get("provider") == "oai" for p in providers)
        with (
            httpx.Client(timeout=10) as http,
            http.stream("GET", server.url + "/api/metrics/stream?interval=0.2") as r,
        ):
            assert r.headers["content-type"].startswith("text/event-stream")
            first = next(r.iter_lines())
            assert first.startswith(("data:", "event:", "id:", ":"))
