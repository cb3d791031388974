"""What is measured, where each system sends its requests, and the two ways of measuring.

Three mock upstreams serve every scenario, each with its own timing profile:

* ``fast``: zero latency, 10 chunks per stream: the CPU cost of a request through the system under test;
* ``stream50``: zero latency, 50 chunks: the cost of streaming;
* ``paced``: 50 ms before the first chunk, then 10 ms between 50 chunks: TTFT and per-chunk delay;
* ``hold``: 100 ms before the first chunk, then one chunk a second for 100 chunks: streams that stay open
  for about 100 s, for the memory a system needs per open stream (``HOLD_SCENARIO``, not timed).

Proxies (ccr-fast and Claude Code Router) get one config naming a provider per mock and select it with
CCR's ``provider,model`` form, except the 1 KB and Claude-Code-sized scenarios, which go through the router's
default rule as Claude Code's own requests would. "Direct" sends to the same mock exactly the request
ccr-fast sends upstream, captured once per scenario, so "proxy minus direct" is the proxy's own cost.

Throughput is closed loop (wrk, fixed connections, as fast as the system answers); latency, TTFT and
per-chunk delay are open loop at a fixed low rate with our own client (:mod:`bench.loadgen`).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import bodies
from bench.loadgen import HttpRequest
from bench.peers import LOOPBACK, MockProfile, Server, pin

#: 100 words: split into 10 or 50 chunks, every chunk carries text
MOCK_TEXT = " ".join(f"word{i}" for i in range(100))

MOCK_PROFILES: dict[str, MockProfile] = {
    "fast": MockProfile("fast", chunks=10),
    "stream50": MockProfile("stream50", chunks=50),
    "paced": MockProfile("paced", chunks=50, ttft_ms=50.0, chunk_delay_ms=10.0),
    "hold": MockProfile("hold", chunks=100, ttft_ms=100.0, chunk_delay_ms=1000.0),
}

UPSTREAM_MODEL = "gpt-test"
UPSTREAM_ANTHROPIC_MODEL = "claude-upstream"
#: what Claude Code asks for; the router's default rule sends it to the ``fast`` provider
CLIENT_MODEL = "claude-sonnet-5"


@dataclass(frozen=True)
class Scenario:
    """One kind of request: the body a proxy receives, the provider it reaches and the mock behind it."""

    key: str
    title: str
    mock: str
    #: the ``model`` a proxy receives
    model: str
    #: the ``model`` that routes the same request to the capturing mock instead
    capture_model: str
    stream: bool
    body: Callable[[str], dict[str, Any]]
    #: content events a correct streamed response carries
    chunks: int = 0
    #: the provider speaks Anthropic Messages (pass-through) rather than OpenAI Chat Completions
    anthropic_upstream: bool = False

    def proxy_request(self, port: int, model: str | None = None) -> HttpRequest:
        """The request a proxy on ``port`` receives (with another ``model``: routed elsewhere)."""
        body = bodies.encode(self.body(model or self.model))
        return HttpRequest(LOOPBACK, port, "/v1/messages", bodies.CLAUDE_CODE_HEADERS, body)


def _small(stream: bool) -> Callable[[str], dict[str, Any]]:
    return lambda model: bodies.small_request(model=model, stream=stream)


def _claude_code(model: str) -> dict[str, Any]:
    return bodies.claude_code_request(model=model)


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            key="nonstream-1k",
            title="non-stream, 1 KB, OpenAI translation",
            mock="fast",
            model=CLIENT_MODEL,
            capture_model=f"capture,{UPSTREAM_MODEL}",
            stream=False,
            body=_small(False),
        ),
        Scenario(
            key="passthrough-1k",
            title="non-stream, 1 KB, Anthropic pass-through",
            mock="fast",
            model=f"fast-anth,{UPSTREAM_ANTHROPIC_MODEL}",
            capture_model=f"capture-anth,{UPSTREAM_ANTHROPIC_MODEL}",
            stream=False,
            body=_small(False),
            anthropic_upstream=True,
        ),
        Scenario(
            key="stream-50",
            title="stream, 50 chunks, OpenAI translation",
            mock="stream50",
            model=f"stream50,{UPSTREAM_MODEL}",
            capture_model=f"capture,{UPSTREAM_MODEL}",
            stream=True,
            body=_small(True),
            chunks=50,
        ),
        Scenario(
            key="claude-code-100k",
            title="Claude-Code-sized body (100 KB, 24 tools), stream",
            mock="fast",
            model=CLIENT_MODEL,
            capture_model=f"capture,{UPSTREAM_MODEL}",
            stream=True,
            body=_claude_code,
            chunks=10,
        ),
        Scenario(
            key="paced-stream",
            title="stream, 50 chunks, TTFT 50 ms, 10 ms between chunks",
            mock="paced",
            model=f"paced,{UPSTREAM_MODEL}",
            capture_model=f"capture,{UPSTREAM_MODEL}",
            stream=True,
            body=_small(True),
            chunks=50,
        ),
    )
}

#: streams held open for the memory-per-open-stream phase; not in ``SCENARIOS`` (a stream lasts ~100 s, so
#: it is neither captured nor smoke-checked to the end: the phase counts streams that delivered content)
HOLD_SCENARIO = Scenario(
    key="held-stream",
    title="stream held open: TTFT 100 ms, then one chunk a second for 100 chunks",
    mock="hold",
    model=f"hold,{UPSTREAM_MODEL}",
    capture_model=f"capture,{UPSTREAM_MODEL}",
    stream=True,
    body=_small(True),
    chunks=100,
)

THROUGHPUT_SCENARIOS = ("nonstream-1k", "passthrough-1k", "stream-50", "claude-code-100k")
#: the scenarios repeated with nothing pinned (the whole machine for every process)
SHARED_THROUGHPUT_SCENARIOS = ("nonstream-1k", "stream-50")
LATENCY_SCENARIO = "nonstream-1k"
STREAM_SCENARIO = "paced-stream"


#: ccr-fast's default ``UPSTREAM_POOL_SIZE``: connections open at once per provider
DEFAULT_POOL_SIZE = 256


def gateway_config(
    mock_ports: dict[str, int], capture_port: int, *, pool_size: int = DEFAULT_POOL_SIZE
) -> dict[str, Any]:
    """The one CCR-format config every proxy runs with: a provider per mock, plus the capturing mock.

    Request logging is off in both proxies (neither writes a log line per request), so the comparison is
    of the request path alone. ``pool_size`` is ccr-fast's ``UPSTREAM_POOL_SIZE`` (connections open at
    once per provider; CCR has no such limit): it must exceed the streams the memory phase holds open.
    """

    def oai(name: str, port: int) -> dict[str, Any]:
        return {
            "name": name,
            "api_base_url": f"http://{LOOPBACK}:{port}/v1/chat/completions",
            "api_key": "sk-bench-upstream",
            "models": [UPSTREAM_MODEL],
        }

    def anthropic(name: str, port: int) -> dict[str, Any]:
        return {
            "name": name,
            "api_base_url": f"http://{LOOPBACK}:{port}/v1/messages",
            "api_key": "sk-ant-bench-upstream",
            "models": [UPSTREAM_ANTHROPIC_MODEL],
            "transformer": {"use": ["Anthropic"]},
        }

    providers = [oai(name, port) for name, port in mock_ports.items()]
    providers += [anthropic("fast-anth", mock_ports["fast"]), oai("capture", capture_port)]
    providers.append(anthropic("capture-anth", capture_port))
    config: dict[str, Any] = {
        "LOG": False,
        "LOG_LEVEL": "warn",
        "API_TIMEOUT_MS": 60000,
        "Providers": providers,
        "Router": {"default": f"fast,{UPSTREAM_MODEL}"},
    }
    if pool_size != DEFAULT_POOL_SIZE:
        config["UPSTREAM_POOL_SIZE"] = pool_size
    return config


#: request headers a proxy adds or a connection needs, not part of what "direct" should replay
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "accept-encoding"})


def direct_request(captured: dict[str, Any], port: int) -> HttpRequest:
    """Replay one upstream request captured from ccr-fast against the mock on ``port``."""
    headers = tuple(
        (name, value) for name, value in captured["headers"].items() if name.lower() not in _HOP_HEADERS
    )
    path = captured["path"] + (f"?{captured['query']}" if captured.get("query") else "")
    return HttpRequest(LOOPBACK, port, path, headers, orjson.dumps(captured["body"]))


# --------------------------------------------------------------------------- CPU layouts and targets


@dataclass(frozen=True)
class Layout:
    """Which CPUs the load generator, the mock upstreams and the system under test may run on."""

    name: str
    loadgen: frozenset[int]
    mock: frozenset[int]
    sut: frozenset[int]

    def describe(self) -> str:
        def cpus(s: frozenset[int]) -> str:
            return ",".join(map(str, sorted(s)))

        return (
            f"load generator on CPU {cpus(self.loadgen)}, mocks on CPU {cpus(self.mock)}, "
            f"system under test on CPU {cpus(self.sut)}"
        )


def layouts() -> dict[str, Layout]:
    """``split`` gives the system under test CPUs of its own (when there are at least two); ``shared`` pins
    nothing, as on a user's machine."""
    every = frozenset(os.sched_getaffinity(0))
    out = {"shared": Layout("shared", every, every, every)}
    if len(every) >= 2:
        first = frozenset({min(every)})
        out["split"] = Layout("split", first, first, every - first)
    return out


@dataclass
class Target:
    """One system under test in one CPU layout; ``server`` is None for direct-to-mock."""

    key: str
    title: str
    kind: str
    layout: Layout
    server: Server | None
    #: scenario key -> the request to send
    requests: dict[str, HttpRequest] = field(default_factory=dict)

    def apply_layout(self, mocks: list[Server], layout: Layout | None = None) -> None:
        """Re-pin the mocks and this target's processes to ``layout`` (default: the target's own); the
        benchmark process, which runs our client and starts wrk, follows the load generator's CPUs."""
        layout = layout or self.layout
        for mock in mocks:
            pin(mock.pids(), set(layout.mock))
        if self.server is not None:
            pin(self.server.pids(), set(layout.sut))
        os.sched_setaffinity(0, layout.loadgen)


# --------------------------------------------------------------------------- closed loop: wrk


def _lua_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def wrk_script(request: HttpRequest, workdir: Path, name: str) -> Path:
    """A wrk Lua script that POSTs ``request``'s body (read from a file) with its headers."""
    body_path = workdir / f"{name}.body"
    body_path.write_bytes(request.body)
    lines = [
        f"local f = assert(io.open({_lua_string(str(body_path))}, 'rb'))",
        "wrk.method = 'POST'",
        "wrk.body = f:read('*a')",
        "f:close()",
        *(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in request.headers),
    ]
    script = workdir / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> dict[str, Any]:
    """The numbers of one wrk run (latency in ms) from its text output with ``--latency``."""
    result: dict[str, Any] = {"non_2xx": 0, "socket_errors": {}}
    latency: dict[str, float] = {}
    for line in output.splitlines():
        text = line.strip()
        if match := re.match(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text):
            latency["mean"], latency["stdev"], latency["max"] = (_ms(match[i]) for i in (1, 2, 3))
        elif match := re.fullmatch(r"(50|75|90|99)%\s+(\S+)", text):
            latency[f"p{match[1]}"] = _ms(match[2])
        elif match := re.match(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", text):
            result["requests"] = int(match[1])
            result["duration_s"] = _ms(match[2] + match[3]) / 1e3
        elif match := re.match(r"Requests/sec:\s+([\d.]+)", text):
            result["rps"] = float(match[1])
        elif match := re.match(r"Non-2xx or 3xx responses:\s+(\d+)", text):
            result["non_2xx"] = int(match[1])
        elif match := re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
            result["socket_errors"] = dict(
                zip(("connect", "read", "write", "timeout"), map(int, match.groups()), strict=True)
            )
    if "rps" not in result:
        raise ValueError(f"wrk printed no result:\n{output}")
    result["latency_ms"] = latency
    result["errors"] = result["non_2xx"] + sum(result["socket_errors"].values())
    return result


@dataclass(frozen=True)
class WrkOptions:
    binary: str
    threads: int = 1
    connections: int = 16


def run_wrk(
    options: WrkOptions, script: Path, request: HttpRequest, duration: float, cpus: frozenset[int]
) -> dict[str, Any]:
    """One closed-loop run of ``duration`` seconds; wrk runs on the load generator's CPUs."""
    url = f"http://{request.host}:{request.port}{request.path}"
    args = [
        options.binary,
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()}")
    return parse_wrk(out.stdout)


# --------------------------------------------------------------------------- smoke checks


def check_response(scenario: Scenario, status: int, body: bytes, content_events: int) -> list[str]:
    """Problems with one response, so no system is timed while it answers errors or partial streams."""
    if status != 200:
        return [f"HTTP {status}: {body[:300].decode(errors='replace')}"]
    problems: list[str] = []
    if scenario.stream:
        if content_events != scenario.chunks:
            problems.append(f"{content_events} content events, expected {scenario.chunks}")
        if b"message_stop" not in body and b"[DONE]" not in body:
            problems.append("stream did not finish (no message_stop or [DONE])")
        return problems
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [f"not JSON: {body[:200].decode(errors='replace')}"]
    if "choices" in reply:
        text = reply["choices"][0]["message"].get("content") or ""
    else:
        text = "".join(block.get("text", "") for block in reply.get("content", []))
    if text != MOCK_TEXT:
        problems.append(f"unexpected reply text {text[:80]!r}")
    return problems


def proxy_routes(mock_ports: dict[str, int]) -> list[tuple[str, int, str, bool]]:
    """``(model, mock port, upstream model, Anthropic upstream)`` for every scenario a proxy receives:
    what a proxy that maps plain model names (LiteLLM) needs to send each scenario where ccr-fast does."""
    routes = []
    for scenario in (*SCENARIOS.values(), HOLD_SCENARIO):
        if scenario.mock not in mock_ports:
            continue
        upstream = UPSTREAM_ANTHROPIC_MODEL if scenario.anthropic_upstream else UPSTREAM_MODEL
        routes.append((scenario.model, mock_ports[scenario.mock], upstream, scenario.anthropic_upstream))
    return routes
