"""A ``redis-server`` for the Redis feature variant: loopback, an ephemeral port, no persistence.

Also the two numbers the variant is read with: how many commands Redis processed (to prove the gateway
really used it) and the bare round trip of a ``PING`` from this machine (the feature target allows for it).
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from bench.loadgen import percentile
from bench.peers import LOOPBACK, Server, free_port, spawn

REDIS_SERVER = shutil.which("redis-server")


def start_redis(workdir: Path, cpus: set[int] | None) -> Server:
    """Start ``redis-server`` and wait until it answers PING; raises RuntimeError when it cannot."""
    if REDIS_SERVER is None:
        raise RuntimeError("redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)")
    port = free_port()
    data = workdir / "redis"
    data.mkdir(exist_ok=True)
    args = [
        REDIS_SERVER,
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data),
    ]
    server = spawn("redis", args, port=port, workdir=workdir, cpus=cpus)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        if _command(port, b"PING\r\n").startswith(b"+PONG"):
            return server
        time.sleep(0.02)
    server.stop()
    raise RuntimeError(f"redis-server did not start:\n{server.tail()}")


def _command(port: int, raw: bytes) -> bytes:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1) as conn:
            conn.sendall(raw)
            return conn.recv(1 << 16)
    except OSError:
        return b""


def commands_processed(port: int) -> int:
    """Redis' ``total_commands_processed`` (``INFO stats``); -1 when it cannot be read."""
    reply = _command(port, b"INFO stats\r\n").decode(errors="replace")
    for line in reply.splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":", 1)[1])
    return -1


def ping_round_trip(port: int, count: int = 2000) -> dict[str, float]:
    """p50 and p99 (ms) of ``count`` PINGs sent back to back on one connection."""
    times: list[float] = []
    with socket.create_connection((LOOPBACK, port), timeout=2) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            t0 = time.perf_counter()
            conn.sendall(b"PING\r\n")
            if not conn.recv(64).startswith(b"+PONG"):
                raise RuntimeError("redis-server did not answer PING")
            times.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "count": float(count)}
