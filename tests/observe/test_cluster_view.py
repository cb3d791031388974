"""Cluster metrics as data: what a machine publishes, and the views built from summed fields."""

from __future__ import annotations

from collections import Counter

import orjson

from ccr_fast.observe import cluster_view, metrics_api
from ccr_fast.observe.metrics import ErrorCount, StatusCount
from tests.observe.snapshots import route, snapshot

ROUTE = route(
    "deepseek",
    "deepseek-chat",
    latencies_ms=[40.0, 300.0, 1200.0],
    ttfts_ms=[20.0],
    overheads_us=[60.0, 70.0, 80.0],
    input_tokens=1500,
    output_tokens=300,
    cache_read_tokens=200,
    cost_usd=0.001234,
    stream_requests=1,
)
ODD = route("a,b", 'model "with" | odd/chars', latencies_ms=[3.0])


def machine(**fields: object) -> dict[str, object]:
    values: dict[str, object] = {
        "requests": 4,
        "routes": (ROUTE, ODD),
        "statuses": (StatusCount("deepseek", "deepseek-chat", 200, 2), StatusCount("", "", 429, 1)),
        "errors": (ErrorCount("deepseek", "deepseek-chat", "api_error", 1),),
        "scenarios": {"default": 3},
        "rate_limited": {"client": 1},
        "api_keys": {"default": 3, "ci-bot": 1},
        "queued_total": 2,
        "queue_depth": 1,
        "active_requests": 2,
        "active_streams": 1,
    }
    values.update(fields)
    return values


def test_totals_hold_every_counter_under_labels_that_round_trip() -> None:
    fields = cluster_view.totals(snapshot(**machine()))
    assert fields[orjson.dumps(["requests"]).decode()] == 4
    assert fields[orjson.dumps(["route", "deepseek", "deepseek-chat", "cost_micro_usd"]).decode()] == 1234
    assert fields[orjson.dumps(["route", "a,b", 'model "with" | odd/chars', "latency:0"]).decode()] == 1
    assert fields[orjson.dumps(["api_key", "ci-bot"]).decode()] == 1
    assert all(value > 0 for value in fields.values())  # zeros are not sent
    assert cluster_view.live(snapshot(**machine())) == {
        "queue_depth": 1,
        "active_requests": 2,
        "active_streams": 1,
    }


def test_summed_fields_read_back_as_the_sum_of_the_machines() -> None:
    one = cluster_view.totals(snapshot(**machine()))
    two = cluster_view.totals(snapshot(**machine(requests=6, api_keys={"ci-bot": 5}, routes=(ROUTE,))))
    summed = dict(Counter(one) + Counter(two))
    summed["not json"] = 5  # fields of another version are ignored
    summed[orjson.dumps(["route", "x"]).decode()] = 5
    machines = {
        "host-a/1": {"queue_depth": 1, "active_requests": 2, "active_streams": 1, "at_ms": 10},
        "host-b/2": {"queue_depth": 3, "active_requests": 0, "active_streams": 0, "at_ms": 11},
    }
    view = cluster_view.parse(summed, machines, 1234, lambda provider, model: provider == "deepseek")
    assert view.requests == 10 and view.queued_total == 4
    assert view.api_keys == {"ci-bot": 6, "default": 3}
    assert (view.queue_depth, view.active_requests, view.active_streams) == (4, 2, 1)
    deepseek = next(r for r in view.routes if r.provider == "deepseek")
    assert deepseek.requests == 6 and deepseek.input_tokens == 3000 and deepseek.priced
    assert deepseek.latency_ms.total == 2 * ROUTE.latency_ms.total
    assert deepseek.cost_usd == 0.002468 and deepseek.errors == 2
    odd = next(r for r in view.routes if r.provider == "a,b")
    assert odd.model == 'model "with" | odd/chars' and not odd.priced

    summary = cluster_view.summary(view)
    assert summary["scope"] == "cluster" and summary["totalRequests"] == 10
    assert summary["queueDepth"] == 4 and summary["queuedTotal"] == 4
    assert summary["totalInputTokens"] == 3000 and summary["totalTokens"] == 3000 + 600
    assert summary["apiKeys"] == {"ci-bot": 6, "default": 3}
    assert summary["rateLimited"] == 2 and summary["rateLimitedByScope"] == {"client": 2}
    assert summary["statusCodeDistribution"]["4xx_client_error"] == 2
    assert [i["id"] for i in summary["instances"]] == ["host-a/1", "host-b/2"]
    assert summary["providers"] == [metrics_api.provider_entry(r) for r in view.routes]
    assert cluster_view.realtime(view).items() <= summary.items()


def test_an_empty_cluster_reads_as_zeros() -> None:
    view = cluster_view.parse({}, {}, 5)
    realtime = cluster_view.realtime(view)
    assert realtime["totalRequests"] == 0 and realtime["instances"] == [] and realtime["timestamp"] == 5
    assert cluster_view.providers(view) == []
