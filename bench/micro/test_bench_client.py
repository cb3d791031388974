"""Upstream clients: FastTransport against AiohttpTransport, requests per second against the mock provider.

Run with ``pytest bench/micro/test_bench_client.py --benchmark-enable`` and compare the ``fast`` and
``aiohttp`` rows of each group; requests/s = BATCH / mean. ``extra_info`` (in ``--benchmark-json``) also
holds ``requests_per_s`` and ``cpu_us_per_request``: the client process's CPU time per request, the
number that decides gateway throughput per core (the mock runs in its own process, so its CPU is not
counted). The target is the fast client at half of aiohttp's CPU per request or less.

Each round is BATCH requests on a uvloop loop, ``concurrency`` at a time over pooled keep-alive
connections: a small non-streaming chat completion, or a 10-chunk stream read to the end.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import uvloop
from pytest_benchmark.fixture import BenchmarkFixture

from ccr_fast.upstream.aiohttp_transport import AiohttpTransport
from ccr_fast.upstream.fast_transport import FastTransport
from ccr_fast.upstream.transport import Transport, UpstreamRequest

BATCH = 2000
ROUNDS = 5
CLIENTS: dict[str, Callable[[], Transport]] = {"fast": FastTransport, "aiohttp": AiohttpTransport}
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-0123456789abcdef"}


@pytest.fixture(scope="module")
def mock_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The mock provider in its own process, so its CPU time stays out of the client's."""
    port_file = tmp_path_factory.mktemp("mock") / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccr_fast.mock", "--port-file", str(port_file), "--log-size", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not _port(port_file):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the mock provider did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{_port(port_file)}"
    finally:
        proc.terminate()
        proc.wait(10)


def _port(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def request(url: str, stream: bool) -> UpstreamRequest:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello."}], "stream": stream}
    return UpstreamRequest("POST", url + "/v1/chat/completions", HEADERS, orjson.dumps(body), 60.0, stream)


async def exchange(transport: Transport, req: UpstreamRequest) -> int:
    resp = await transport.send(req)
    if not req.stream:
        return len(await resp.read())
    size = 0
    async for chunk in resp.iter_chunks():
        size += len(chunk)
    resp.close()
    return size


async def batch(transport: Transport, req: UpstreamRequest, concurrency: int) -> int:
    """BATCH exchanges, ``concurrency`` workers pulling from one counter; returns the bytes received."""
    left = BATCH

    async def worker() -> int:
        nonlocal left
        size = 0
        while left > 0:
            left -= 1
            size += await exchange(transport, req)
        return size

    return sum(await asyncio.gather(*(worker() for _ in range(concurrency))))


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("concurrency", [1, 16])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_throughput(
    benchmark: BenchmarkFixture, mock_url: str, client: str, concurrency: int, stream: bool
) -> None:
    benchmark.group = f"upstream client: {'stream' if stream else 'non-stream'}, concurrency {concurrency}"
    loop = uvloop.new_event_loop()
    transport = CLIENTS[client]()
    req = request(mock_url, stream)
    cpu: list[float] = []

    def run() -> int:
        started = time.process_time()
        size = loop.run_until_complete(batch(transport, req, concurrency))
        cpu.append(time.process_time() - started)
        return size

    try:
        loop.run_until_complete(batch(transport, req, concurrency))  # warm-up: connections, caches
        size = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)  # type: ignore[no-untyped-call]
        assert size > BATCH * (200 if stream else 100), "every exchange returned its body"
        if benchmark.stats is not None:
            benchmark.extra_info["requests_per_s"] = round(BATCH / benchmark.stats.stats.mean)
        benchmark.extra_info["cpu_us_per_request"] = round(min(cpu) / BATCH * 1e6, 1)
    finally:
        loop.run_until_complete(transport.aclose())
        loop.close()
