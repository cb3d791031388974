"""Scenario plumbing: the shared proxy config, replayed requests, response checks, wrk's script and output."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest
from bench.bodies import OPENAI_HEADERS
from bench.loadgen import HttpRequest
from bench.scenarios import (
    MOCK_TEXT,
    SCENARIOS,
    WrkOptions,
    check_response,
    direct_request,
    gateway_config,
    layouts,
    parse_wrk,
    run_wrk,
    wrk_script,
)

from ccr_fast.config import config_from_dict
from ccr_fast.mock import MockProvider

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:38457/v1/messages
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.55ms    4.09ms   1.20s    82.06%
    Req/Sec     2.55k   175.52     2.86k    74.00%
  Latency Distribution
     50%  272.00us
     75%    6.81ms
     90%   10.02ms
     99%    1.02s
  12690 requests in 5.00s, 4.89MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   2537.22
Transfer/sec:      0.98MB
"""


def test_parse_wrk() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result["rps"] == 2537.22
    assert result["requests"] == 12690
    assert result["duration_s"] == 5.0
    latency = result["latency_ms"]
    assert latency["p50"] == pytest.approx(0.272)
    assert latency["p99"] == pytest.approx(1020.0)
    assert latency["max"] == pytest.approx(1200.0)
    assert result["socket_errors"] == {"connect": 0, "read": 2, "write": 0, "timeout": 1}
    assert result["non_2xx"] == 7
    assert result["errors"] == 10


def test_parse_wrk_without_result_fails() -> None:
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_gateway_config_names_every_provider() -> None:
    config = gateway_config({"fast": 1001, "stream50": 1002, "paced": 1003}, 1004)
    by_name = {p["name"]: p for p in config["Providers"]}
    assert set(by_name) == {"fast", "stream50", "paced", "fast-anth", "capture", "capture-anth"}
    assert by_name["fast"]["api_base_url"] == "http://127.0.0.1:1001/v1/chat/completions"
    assert by_name["fast-anth"]["api_base_url"] == "http://127.0.0.1:1001/v1/messages"
    assert by_name["fast-anth"]["transformer"] == {"use": ["Anthropic"]}
    assert by_name["capture-anth"]["api_base_url"].startswith("http://127.0.0.1:1004/")
    assert config["Router"]["default"] == "fast,gpt-test"
    assert config["LOG"] is False
    for scenario in SCENARIOS.values():
        assert scenario.mock in {"fast", "stream50", "paced"}
        for model in (scenario.model, scenario.capture_model):
            if "," in model:
                assert model.split(",")[0] in by_name


def test_direct_request_replays_the_captured_request() -> None:
    captured = {
        "path": "/v1/chat/completions",
        "query": "beta=true",
        "headers": {
            "Host": "x",
            "content-length": "9",
            "authorization": "Bearer k",
            "connection": "keep-alive",
        },
        "body": {"model": "gpt-test", "stream": True},
    }
    request = direct_request(captured, 4242)
    assert request.port == 4242
    assert request.path == "/v1/chat/completions?beta=true"
    assert request.headers == (("authorization", "Bearer k"),)
    assert orjson.loads(request.body) == captured["body"]


def test_proxy_request_can_be_routed_elsewhere() -> None:
    scenario = SCENARIOS["stream-50"]
    assert orjson.loads(scenario.proxy_request(1).body)["model"] == "stream50,gpt-test"
    assert (
        orjson.loads(scenario.proxy_request(1, model="capture,gpt-test").body)["model"] == "capture,gpt-test"
    )


def test_check_response() -> None:
    non_stream = SCENARIOS["nonstream-1k"]
    anthropic = orjson.dumps({"content": [{"type": "text", "text": MOCK_TEXT}]})
    openai = orjson.dumps({"choices": [{"message": {"content": MOCK_TEXT}}]})
    assert check_response(non_stream, 200, anthropic, 0) == []
    assert check_response(non_stream, 200, openai, 0) == []
    assert check_response(non_stream, 502, b'{"error":1}', 0)[0].startswith("HTTP 502")
    assert "unexpected reply text" in check_response(non_stream, 200, orjson.dumps({"content": []}), 0)[0]
    stream = SCENARIOS["stream-50"]
    assert check_response(stream, 200, b"event: message_stop\n\n", 50) == []
    problems = check_response(stream, 200, b"data: {}\n\n", 49)
    assert len(problems) == 2


def test_wrk_script_escapes_values(tmp_path: Path) -> None:
    request = HttpRequest("127.0.0.1", 1, "/", (("x-quote", 'a"b\\c'),), b"BODY")
    script = wrk_script(request, tmp_path, "t").read_text()
    assert 'wrk.headers["x-quote"] = "a\\"b\\\\c"' in script
    assert (tmp_path / "t.body").read_bytes() == b"BODY"


def test_layouts_split_only_with_two_cpus() -> None:
    found = layouts()
    cpus = os.sched_getaffinity(0)
    assert found["shared"].sut == frozenset(cpus)
    if len(cpus) >= 2:
        split = found["split"]
        assert split.loadgen == split.mock
        assert not split.loadgen & split.sut
        assert split.loadgen | split.sut == frozenset(cpus)
    else:
        assert "split" not in found


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_one_second_of_wrk_against_the_mock(mock: MockProvider, tmp_path: Path) -> None:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    request = HttpRequest("127.0.0.1", mock.port, "/v1/chat/completions", OPENAI_HEADERS, body)
    script = wrk_script(request, tmp_path, "direct")
    result = run_wrk(
        WrkOptions(shutil.which("wrk") or "wrk", connections=2),
        script,
        request,
        1,
        frozenset(os.sched_getaffinity(0)),
    )
    assert result["rps"] > 100
    assert result["errors"] == 0


def test_pool_size_for_held_streams() -> None:
    ports = {"fast": 1001, "stream50": 1002, "paced": 1003, "hold": 1005}
    assert "UPSTREAM_POOL_SIZE" not in gateway_config(ports, 1004)  # ccr-fast's default stands
    config = gateway_config(ports, 1004, pool_size=1064)
    assert config_from_dict(config).upstream_pool_size == 1064
    hold = {p["name"]: p for p in config["Providers"]}["hold"]
    assert hold["api_base_url"] == "http://127.0.0.1:1005/v1/chat/completions"
