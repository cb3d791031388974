"""A real nginx (Debian package) in front of two ccr-fast instances, using deploy/nginx/ccr-fast.conf."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import gateway_config
from tests.redis_server import REDIS_SERVER, RedisServer
from tests.servers import RunningServer, free_port, run_ccr_fast, wait_http

from ccr_fast.mock import MockProvider

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

BODY = {
    "model": "claude-sonnet-5",
    "max_tokens": 50,
    "stream": True,
    "messages": [{"role": "user", "content": "x"}],
}


@contextlib.contextmanager
def _with_redis_url(cfg: dict[str, object], redis: RedisServer) -> Iterator[None]:
    cfg["State"] = {"backend": "redis", "redis": {"url": redis.url, "failMode": "open"}}
    yield


def _nginx_conf(tmp: Path, listen: str, servers: list[str], prefix_location: bool) -> Path:
    site = (ROOT / "deploy" / "nginx" / "ccr-fast.conf").read_text()
    site = site.replace("__LISTEN__", listen).replace("__SERVERS__", "\n    ".join(servers))
    if prefix_location:
        # the same proxy settings, mounted under /ccr/ (ccr-fast runs with PATH_PREFIX=/ccr)
        site = site.replace("location / {", "location /ccr/ {", 1)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    {site}
}}
"""
    )
    return conf


@pytest.fixture(scope="module")
def stack(
    mock_provider: MockProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, object]]:
    if NGINX is None:
        pytest.skip("nginx is not installed (make test installs the nginx-light package)")
    tmp = tmp_path_factory.mktemp("nginx")
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    redis = RedisServer(tmp / "redis")
    # both instances share one Redis, as machines behind one nginx would (one global limit)
    cfg = gateway_config(
        mock_provider.url,
        TRUSTED_PROXIES=["127.0.0.1/32"],
        PATH_PREFIX="/ccr",
        RateLimit={"global": {"requestsPerMinute": 100000}},
        State={"backend": "redis", "redis": {"url": "", "failMode": "open"}},
    )
    sock = tmp / "b.sock"
    with (
        redis,
        _with_redis_url(cfg, redis),
        run_ccr_fast(cfg, tmp / "a") as a,
        run_ccr_fast(cfg, tmp / "b", extra_args=["--uds", str(sock)], ready_url=None) as b,
    ):
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = free_port()
        conf = _nginx_conf(
            tmp,
            f"127.0.0.1:{port}",
            [
                f"server 127.0.0.1:{a.port} max_fails=1 fail_timeout=30s;",
                f"server unix:{sock} max_fails=1 fail_timeout=30s;",
            ],
            prefix_location=True,
        )
        proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf)], stderr=subprocess.PIPE)
        try:
            wait_http(f"http://127.0.0.1:{port}/ccr/health", proc=proc)  # type: ignore[arg-type]
            yield {"url": f"http://127.0.0.1:{port}/ccr", "a": a, "b": b, "tmp": tmp}
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_stream_passes_through_unbuffered(stack: dict[str, object], mock: MockProvider) -> None:
    mock.script([{"text": "tick " * 10, "chunks": 10, "chunk_delay_ms": 200}] * 2)
    for _ in range(2):  # both instances (nginx round-robins)
        start = time.monotonic()
        first_at = None
        with (
            httpx.Client(timeout=10) as http,
            http.stream("POST", f"{stack['url']}/v1/messages", json=BODY) as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            body = b""
            for chunk in r.iter_bytes():
                if first_at is None and b"content_block_delta" in chunk:
                    first_at = time.monotonic() - start
                body += chunk
        total = time.monotonic() - start
        assert b"event: message_stop" in body
        assert first_at is not None
        # the upstream needs ~2 s for all chunks; the first delta must arrive long before that
        assert first_at < total - 1.0, (first_at, total)


def test_client_ip_from_trusted_proxy_only(stack: dict[str, object], mock: MockProvider) -> None:
    """The client connects from 127.0.0.5; it also sends a forged X-Forwarded-For."""
    mock.script([{"text": "ok"}] * 4)
    transport = httpx.HTTPTransport(local_address="127.0.0.5")
    ids = []
    with httpx.Client(transport=transport, timeout=10) as http:
        for _ in range(4):
            r = http.post(
                f"{stack['url']}/v1/messages",
                json=dict(BODY, stream=False),
                headers={"x-forwarded-for": "203.0.113.9"},
            )
            assert r.status_code == 200, r.text
            ids.append(r.headers["request-id"])

    def our_access_lines() -> list[str]:
        logs = stack["a"].log() + stack["b"].log()  # type: ignore[attr-defined]
        return [ln for ln in logs.splitlines() if "ccr_fast.access" in ln and any(i in ln for i in ids)]

    deadline = time.monotonic() + 5  # access lines are written once each response has ended
    while len(access := our_access_lines()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(access) == 4, access
    assert all(" 127.0.0.5 " in line for line in access), access
    assert not any("203.0.113.9" in line for line in access)


def test_direct_clients_cannot_forge_their_address(stack: dict[str, object], mock: MockProvider) -> None:
    a: RunningServer = stack["a"]  # type: ignore[assignment]
    mock.script([{"text": "ok"}])
    transport = httpx.HTTPTransport(local_address="127.0.0.6")
    with httpx.Client(transport=transport, timeout=10) as http:
        r = http.post(
            f"{a.url}/v1/messages", json=dict(BODY, stream=False), headers={"x-forwarded-for": "198.51.100.1"}
        )
    assert r.status_code == 200
    deadline = time.monotonic() + 5
    while "198.51.100.1" not in r.text and time.monotonic() < deadline:
        lines = [line for line in a.log().splitlines() if "ccr_fast.access" in line]
        if lines and " 127.0.0.6 " in lines[-1]:
            break
        time.sleep(0.05)
    assert " 127.0.0.6 " in lines[-1]
    assert "198.51.100.1" not in lines[-1]


def test_killed_instance_is_routed_around(stack: dict[str, object], mock: MockProvider) -> None:
    a: RunningServer = stack["a"]  # type: ignore[assignment]
    os.killpg(a.proc.pid, signal.SIGKILL)
    a.proc.wait(10)
    mock.script([{"text": f"reply {i}"} for i in range(6)])
    for i in range(6):
        r = httpx.post(f"{stack['url']}/v1/messages", json=dict(BODY, stream=False), timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["content"][0]["text"] == f"reply {i}"
