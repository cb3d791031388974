"""Server lifecycle with real Granian processes: disconnects, graceful shutdown, worker respawn, ASGI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import anthropic
import httpx
import orjson
import pytest

from ccr_fast.mock import MockProvider
from tests.e2e.conftest import gateway_config
from tests.servers import RunningServer, run_ccr_fast

pytestmark = pytest.mark.e2e

BODY = {
    "model": "claude-sonnet-5",
    "max_tokens": 50,
    "stream": True,
    "messages": [{"role": "user", "content": "x"}],
}


def _wait_for(pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


@pytest.mark.parametrize("body_model", ["claude-sonnet-5", "claude-haiku-4-5"])
def test_client_disconnect_cancels_upstream(
    gateway: RunningServer, mock: MockProvider, body_model: str
) -> None:
    """Translated and pass-through streams: closing the client connection closes the upstream one."""
    mock.script([{"text": "word " * 60, "chunks": 60, "chunk_delay_ms": 100}])
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", gateway.url + "/v1/messages", json=dict(BODY, model=body_model)) as resp,
    ):
        assert resp.status_code == 200
        first = next(resp.iter_bytes())
        assert b"message_start" in first
    # the upstream stream would take ~6 s; the abort must reach it right away
    assert _wait_for(lambda: mock.stats.get("client_aborts", 0) >= 1, timeout=2.0), mock.stats


def test_disconnect_while_waiting_for_first_byte(gateway: RunningServer, mock: MockProvider) -> None:
    mock.script([{"text": "late", "latency_ms": 5000, "ttft_ms": 5000}])
    body = dict(BODY, stream=False)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.url + "/v1/messages", json=body, timeout=0.5)
    assert _wait_for(lambda: mock.stats.get("client_aborts", 0) >= 1, timeout=2.0), mock.stats


@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_before_the_watcher_is_armed(
    gateway: RunningServer, mock: MockProvider, stream: bool
) -> None:
    """A client gone within the first milliseconds (before a watcher is armed) still cancels the upstream."""
    mock.script([{"text": "late", "latency_ms": 5000, "ttft_ms": 5000}])
    payload = orjson.dumps(dict(BODY, stream=stream))
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(head + payload)
        assert _wait_for(lambda: mock.stats.get("/v1/chat/completions", 0) >= 1, timeout=2.0), mock.stats
    assert _wait_for(lambda: mock.stats.get("client_aborts", 0) >= 1, timeout=1.0), mock.stats


def test_graceful_shutdown_lets_streams_finish(mock: MockProvider, tmp_path: Path) -> None:
    with run_ccr_fast(gateway_config(mock.url, SHUTDOWN_TIMEOUT_MS=10000), tmp_path) as server:
        mock.script([{"text": "tick " * 15, "chunks": 15, "chunk_delay_ms": 80}])
        received = bytearray()
        with (
            httpx.Client(timeout=10) as http,
            http.stream("POST", server.url + "/v1/messages", json=BODY) as resp,
        ):
            it = resp.iter_bytes()
            received += next(it)
            server.proc.send_signal(signal.SIGTERM)
            for chunk in it:
                received += chunk
        assert b"event: message_stop" in received
        assert server.proc.wait(15) == 0
        # and it no longer accepts connections
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/health", timeout=1)


def test_failed_worker_is_respawned(mock: MockProvider, tmp_path: Path) -> None:
    with run_ccr_fast(gateway_config(mock.url), tmp_path, workers=2) as server:
        workers = _children(server.proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        assert _wait_for(lambda: len(set(_children(server.proc.pid)) - {workers[0]}) == 2, timeout=15), (
            _children(server.proc.pid)
        )
        mock.script([{"text": "still here"}] * 4)
        for _ in range(4):
            r = httpx.post(server.url + "/v1/messages", json=dict(BODY, stream=False), timeout=10)
            assert r.status_code == 200
            assert r.json()["content"][0]["text"] == "still here"


@pytest.fixture(scope="module")
def asgi_gateway(mock_provider: MockProvider, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with run_ccr_fast(
        gateway_config(mock_provider.url), tmp_path_factory.mktemp("asgi"), interface="asgi"
    ) as s:
        yield s


def test_asgi_interface_serves_the_same(asgi_gateway: RunningServer, mock: MockProvider) -> None:
    client = anthropic.Anthropic(base_url=asgi_gateway.url, api_key="x", max_retries=0)
    mock.script([{"text": "via asgi"}, {"text": "streamed via asgi", "chunks": 5}])
    assert (
        client.messages.create(
            model="claude-sonnet-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        .content[0]
        .text
        == "via asgi"
    )
    with client.messages.stream(
        model="claude-sonnet-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        assert stream.get_final_text() == "streamed via asgi"
    big = b'{"model":"x","messages":[],"pad":"' + b"a" * (33 * 1024 * 1024) + b'"}'
    r = httpx.post(asgi_gateway.url + "/v1/messages", content=big, timeout=15)
    assert r.status_code == 413


def test_asgi_disconnect_cancels_upstream(asgi_gateway: RunningServer, mock: MockProvider) -> None:
    mock.script([{"text": "word " * 60, "chunks": 60, "chunk_delay_ms": 100}])
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", asgi_gateway.url + "/v1/messages", json=BODY) as resp,
    ):
        next(resp.iter_bytes())
    assert _wait_for(lambda: mock.stats.get("client_aborts", 0) >= 1, timeout=2.0), mock.stats


def test_concurrent_streams_two_workers(mock: MockProvider, tmp_path: Path) -> None:
    with run_ccr_fast(gateway_config(mock.url), tmp_path, workers=2) as server:
        mock.script([{"text": f"reply {i}", "chunks": 3, "chunk_delay_ms": 20} for i in range(20)])
        results: list[str] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                c = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
                with c.messages.stream(
                    model="claude-sonnet-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                ) as s:
                    results.append(s.get_final_text())
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert sorted(results) == sorted(f"reply {i}" for i in range(20))


def test_pings_keep_a_silent_stream_alive(mock: MockProvider, tmp_path: Path) -> None:
    """A long upstream silence (slow time to first token) is bridged by `event: ping` frames."""
    with run_ccr_fast(gateway_config(mock.url, STREAM_KEEPALIVE_MS=300), tmp_path) as server:
        for model in ("claude-sonnet-5", "claude-haiku-4-5"):  # translated and pass-through
            mock.script([{"text": "after the wait", "ttft_ms": 1200, "chunks": 2}])
            r = httpx.post(server.url + "/v1/messages", json=dict(BODY, model=model), timeout=10)
            assert r.status_code == 200
            events = [line for line in r.text.splitlines() if line.startswith("event: ")]
            assert events.count("event: ping") >= 2, events
            assert events[-1] == "event: message_stop"
            client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
            mock.script([{"text": "after the wait", "ttft_ms": 800, "chunks": 2}])
            with client.messages.stream(
                model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}]
            ) as s:
                assert s.get_final_text() == "after the wait"


def test_api_timeout_ms_is_the_upstream_timeout(mock: MockProvider, tmp_path: Path) -> None:
    with run_ccr_fast(gateway_config(mock.url, API_TIMEOUT_MS=600), tmp_path) as server:
        mock.script([{"text": "too late", "latency_ms": 3000}])
        r = httpx.post(server.url + "/v1/messages", json=dict(BODY, stream=False), timeout=10)
        assert r.status_code == 504, r.text
        assert r.json()["error"]["type"] == "timeout_error"
        # a stream whose upstream goes silent mid-way ends with a timeout error event
        mock.script([{"text": "a b c d", "chunks": 4, "chunk_delay_ms": 2500}])
        r = httpx.post(server.url + "/v1/messages", json=BODY, timeout=10)
        assert r.status_code == 200
        assert "event: error" in r.text and "timeout_error" in r.text
        assert "event: message_stop" not in r.text
