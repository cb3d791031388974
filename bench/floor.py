"""The stack's floor: what Granian and the upstream client cost before ccr-fast does any work of its own.

``python -m bench.floor`` measures, in one run and on the same CPU, four servers answering the same
non-streaming 1 KB request under the same closed-loop load (wrk, 16 connections):

* ``mock`` — the bundled mock provider answering directly (the upstream's own cost, for scale);
* ``granian`` — a Granian RSGI worker that reads the body and answers a fixed Anthropic message: the cost of
  Granian's HTTP server and its hand-off to Python, with nothing else;
* ``relay`` — the same worker forwarding each request to the mock through ccr-fast's upstream client
  (:class:`ccr_fast.upstream.fast_transport.FastTransport`) and returning the mock's bytes: server plus
  client, the least any proxy on this stack can cost;
* ``ccr-fast`` — ccr-fast itself (routing, OpenAI translation both ways, resilience, metrics).

Each server runs one worker pinned to CPU 1 (the load generator and the mock on CPU 0 where there are two).
Reported per server: requests/s and CPU time per request (the server's process tree, from ``/proc``), which
is steadier than throughput on a shared machine. The difference between ``relay`` and ``ccr-fast`` is the
gateway's own work; ``relay`` itself is the floor that no change to ccr-fast's code can go below.

``python -m bench.floor --open-streams 1000`` measures the same floor for memory instead: the PSS Granian's
process tree grows by while that many streams, each sending a small event a second from a trivial handler,
are open at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import peers
from bench.bodies import encode, small_request
from bench.loadgen import HttpRequest
from bench.peers import MockProfile, Server, log
from bench.scenarios import wrk_script

#: the fixed answer of the ``granian`` app (an Anthropic message of the size the mock's reply translates to)
FIXED_ANSWER = (
    b'{"id":"msg_01floor","type":"message","role":"assistant","model":"m","content":[{"type":"text",'
    b'"text":"Hello from the ccr-fast mock provider."}],"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":30,"output_tokens":6}}'
)
SYSTEMS = ("mock", "granian", "relay", "ccr-fast")


class FloorApp:
    """RSGI app for the ``granian`` (fixed answer) and ``relay`` (forward to ``FLOOR_UPSTREAM``) systems."""

    def __init__(self) -> None:
        self.upstream = os.environ.get("FLOOR_UPSTREAM", "")
        self.hold = os.environ.get("FLOOR_HOLD") == "1"
        self.transport: Any = None

    def __rsgi_init__(self, loop: Any) -> None:
        if self.upstream:
            from ccr_fast.upstream.fast_transport import FastTransport

            self.transport = FastTransport()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        body = await protocol()
        if self.hold and scope.method == "POST":  # an open stream: one small event a second for 100 s
            stream = protocol.response_stream(200, [("content-type", "text/event-stream")])
            for _ in range(100):
                await stream.send_bytes(b"event: ping\ndata: {}\n\n")
                await asyncio.sleep(1)
            return
        if self.transport is None or scope.method != "POST":  # readiness probes get the fixed answer
            protocol.response_bytes(200, [("content-type", "application/json")], FIXED_ANSWER)
            return
        from ccr_fast.upstream.transport import UpstreamRequest

        request = UpstreamRequest(
            "POST",
            self.upstream,
            {"content-type": "application/json", "authorization": "Bearer floor"},
            body,
            timeout=30.0,
            provider="floor",
        )
        resp = await self.transport.send(request)
        data = await resp.read()
        protocol.response_bytes(resp.status, [("content-type", "application/json")], data)


app = FloorApp()


@dataclass
class Measured:
    requests: int
    seconds: float
    cpu_s: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s * 1e6 / max(self.requests, 1)


def wrk_run(
    wrk: str, url: str, script: Path, seconds: int, connections: int, cpus: set[int]
) -> dict[str, Any]:
    import subprocess

    args = [wrk, "-t1", "-c", str(connections), f"-d{seconds}s", "-s", str(script), url]
    out = subprocess.run(
        args, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, cpus)
    )
    text = out.stdout + out.stderr
    requests = next((int(line.split()[0]) for line in text.splitlines() if "requests in" in line), 0)
    errors = sum(
        int(part)
        for line in text.splitlines()
        if line.strip().startswith(("Non-2xx", "Socket errors"))
        for part in line.replace(",", " ").split()
        if part.isdigit()
    )
    return {"requests": requests, "errors": errors}


def measure(
    server: Server, wrk: str, script: Path, seconds: int, connections: int, cpus: set[int]
) -> Measured:
    url = server.url + "/v1/messages" if server.name != "mock" else server.url + "/v1/chat/completions"
    wrk_run(wrk, url, script, 1, connections, cpus)  # warm-up
    pids = server.pids()
    before, t0 = peers._process_ticks(pids), time.perf_counter()
    result = wrk_run(wrk, url, script, seconds, connections, cpus)
    elapsed, after = time.perf_counter() - t0, peers._process_ticks(pids)
    return Measured(result["requests"], elapsed, (after - before) / peers.CLOCK_TICKS, result["errors"])


def _script(body: bytes, workdir: Path, name: str) -> Path:
    headers = (("content-type", "application/json"), ("anthropic-version", "2023-06-01"))
    return wrk_script(HttpRequest(peers.LOOPBACK, 0, "/", headers, body), workdir, name)


def start_floor_app(name: str, env: dict[str, str], workdir: Path, cpus: set[int] | None) -> Server:
    """One Granian RSGI worker serving :data:`app` (configured by ``env``), ready to answer."""
    port = peers.free_port()
    args = [sys.executable, "-m", "granian", "--interface", "rsgi", "--loop", "uvloop", "--workers", "1"]
    args += ["--port", str(port), "--log-level", "warning", "bench.floor:app"]
    root = str(Path(__file__).resolve().parent.parent)
    server = peers.spawn(name, args, port=port, workdir=workdir, cpus=cpus, env={**env, "PYTHONPATH": root})
    try:
        peers.wait_ready(server, path="/")
    except BaseException:
        server.stop()
        raise
    return server


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = peers.ensure_wrk()
    if wrk is None:
        raise SystemExit("wrk is needed")
    ncpu = os.cpu_count() or 1
    server_cpus = {ncpu - 1}
    load_cpus = {0}  # with one CPU, everything shares it
    workdir = Path(tempfile.mkdtemp(prefix="ccr-fast-floor-"))
    anthropic_body = encode(small_request(model="m", stream=False))
    openai_body = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 100}
    ).encode()
    scripts = {
        "anthropic": _script(anthropic_body, workdir, "a"),
        "openai": _script(openai_body, workdir, "o"),
    }
    mock = peers.start_mock(
        MockProfile("floor", chunks=10), "Hello from the ccr-fast mock provider.", workdir, load_cpus
    )
    servers: dict[str, Server] = {"mock": mock}
    upstream = f"{mock.url}/v1/chat/completions"
    try:
        for name, env in (("granian", {}), ("relay", {"FLOOR_UPSTREAM": upstream})):
            servers[name] = start_floor_app(name, env, workdir, server_cpus)
        config = {
            "LOG": False,
            "LOG_LEVEL": "warn",
            "Providers": [{"name": "mock", "api_base_url": upstream, "api_key": "k", "models": ["m"]}],
            "Router": {"default": "mock,m"},
        }
        servers["ccr-fast"] = peers.start_ccr_fast(
            "ccr-fast", config, workdir, workers=1, interface="rsgi", cpus=server_cpus
        )
        peers.wait_ready(servers["ccr-fast"])
        rounds: dict[str, list[Measured]] = {name: [] for name in SYSTEMS}
        for r in range(args.rounds):
            for name in SYSTEMS:
                script = scripts["openai" if name in ("mock", "relay") else "anthropic"]
                rounds[name].append(
                    measure(servers[name], wrk, script, args.duration, args.connections, load_cpus)
                )
            log(f"round {r + 1}/{args.rounds} done")
    finally:
        peers.stop_all(servers.values())
    return summarize(rounds, args)


async def _hold_streams(port: int, streams: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(streams):
        reader, writer = await asyncio.open_connection(peers.LOOPBACK, port)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: floor\r\ncontent-length: 2\r\n\r\n{}")
        await reader.readuntil(b"\r\n\r\n")  # the head: the stream is open
        writers.append(writer)
    return writers


def open_streams_floor(streams: int) -> dict[str, Any]:
    """Granian's own memory for ``streams`` open streams from a trivial handler (PSS of its process tree)."""
    from bench.phases import raise_file_limit

    raise_file_limit(streams)
    workdir = Path(tempfile.mkdtemp(prefix="ccr-fast-floor-"))
    server = start_floor_app("granian-hold", {"FLOOR_HOLD": "1"}, workdir, None)
    port = server.port
    try:
        before = peers.memory(server.proc.pid)

        async def hold() -> dict[str, Any]:
            writers = await _hold_streams(port, streams)
            await asyncio.sleep(2)
            during = peers.memory(server.proc.pid)
            for writer in writers:
                writer.close()
            return during

        during = asyncio.run(hold())
    finally:
        server.stop()
    grown = during["pss_mb"] - before["pss_mb"]
    return {
        "streams": streams,
        "pss_before_mb": before["pss_mb"],
        "pss_open_mb": during["pss_mb"],
        "mb_per_1k": grown * 1000 / streams,
    }


def summarize(rounds: dict[str, list[Measured]], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "command": "python -m bench.floor " + " ".join(sys.argv[1:]),
        "machine": peers.machine_info(),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "systems": {},
    }
    for name, measured in rounds.items():
        if not measured:
            continue
        out["systems"][name] = {
            "rps": statistics.median(m.rps for m in measured),
            "cpu_us_per_request": statistics.median(m.cpu_us_per_request for m in measured),
            "errors": sum(m.errors for m in measured),
            "runs": [{"rps": round(m.rps), "cpu_us": round(m.cpu_us_per_request, 1)} for m in measured],
        }
    return out


def render(result: dict[str, Any]) -> str:
    systems = result["systems"]
    lines = [
        "| server | req/s (median) | CPU µs per request (median) | errors |",
        "|---|---|---|---|",
    ]
    for name in SYSTEMS:
        s = systems.get(name)
        if s:
            lines.append(f"| {name} | {s['rps']:,.0f} | {s['cpu_us_per_request']:.0f} | {s['errors']} |")
    relay, gateway = systems.get("relay"), systems.get("ccr-fast")
    if relay and gateway:
        own = gateway["cpu_us_per_request"] - relay["cpu_us_per_request"]
        lines.append("")
        lines.append(
            f"ccr-fast's own work: {own:.0f} µs of CPU per request on top of the "
            f"{relay['cpu_us_per_request']:.0f} µs floor (Granian + upstream client + kernel)."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--open-streams",
        type=int,
        default=0,
        help="instead: Granian's own memory with this many streams open (a trivial handler)",
    )
    args = parser.parse_args(argv)
    if args.open_streams > 0:
        held = open_streams_floor(args.open_streams)
        if args.json:
            args.json.write_text(json.dumps(held, indent=2))
        print(
            f"Granian alone, {held['streams']} open streams: PSS {held['pss_before_mb']:.1f} -> "
            f"{held['pss_open_mb']:.1f} MB, {held['mb_per_1k']:.1f} MB per 1k"
        )
        return 0
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
