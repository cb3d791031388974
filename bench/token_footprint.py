"""What a bundled tokenizer costs a server: cold start, idle memory, first count, memory after it.

Each bundled encoding is loaded the first time a provider/model needs it, so a config that never counts
with it must not pay for it. This starts ``ccr-fast`` (one worker) once per run and scenario, with a config
whose default route counts with cl100k_base (``gpt-test``) or with o200k_base (``gpt-4o``), and reports
medians of:

* cold start: process spawn to the first ``GET /health`` answered, and the CPU time the server's processes
  used until then (steadier than wall time on a busy machine);
* idle RSS: the whole process tree (master and worker) before any request;
* first count: the first ``POST /v1/messages/count_tokens`` (a Claude-Code-sized body), which loads the
  encoding, in wall time and in server CPU time;
* RSS after that count.

Run: ``.venv/bin/python -m bench.token_footprint [--runs 5]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bodies import claude_code_request, encode
from bench.peers import CLOCK_TICKS, LOOPBACK, _process_ticks, memory, start_ccr_fast, wait_ready

SCENARIOS = {
    "cl100k only (gpt-test)": "gpt-test",
    "o200k (gpt-4o)": "gpt-4o",
}


def config(model: str) -> dict[str, Any]:
    return {
        "LOG_LEVEL": "warn",
        "Providers": [
            {
                "name": "oai",
                "api_base_url": "http://127.0.0.1:9/v1/chat/completions",
                "api_key": "sk-bench",
                "models": [model],
            }
        ],
        "Router": {"default": f"oai,{model}"},
        "healthCheck": False,
    }


def count_once(port: int, body: bytes) -> float:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        conn.request("POST", "/v1/messages/count_tokens", body, {"content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"count_tokens answered {response.status}: {data[:200]!r}")
    return time.perf_counter() - t0


def run(model: str, workdir: Path, body: bytes) -> dict[str, float]:
    server = start_ccr_fast("tokens", config(model), workdir, workers=1, interface="rsgi", cpus=None)
    try:
        wait_ready(server)
        cold = time.perf_counter() - server.started_at
        cold_cpu = _process_ticks(server.pids()) / CLOCK_TICKS
        time.sleep(0.5)  # let the worker settle
        idle = memory(server.proc.pid)["rss_mb"]
        idle_cpu = _process_ticks(server.pids()) / CLOCK_TICKS
        first = count_once(server.port, body)
        first_cpu = _process_ticks(server.pids()) / CLOCK_TICKS - idle_cpu
        after = memory(server.proc.pid)["rss_mb"]
        return {
            "cold_start_s": cold,
            "cold_start_cpu_s": cold_cpu,
            "idle_rss_mb": idle,
            "first_count_s": first,
            "first_count_cpu_s": first_cpu,
            "rss_after_mb": after,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    body = encode(claude_code_request(model="claude-sonnet-4-5"))
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ccr-token-footprint-") as tmp:
        for name, model in SCENARIOS.items():
            runs = [run(model, Path(tmp), body) for _ in range(args.runs)]
            results[name] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(json.dumps(results, indent=2))
    print(f"\n(median of {args.runs})")
    print("| config | cold start (CPU) | idle RSS | first count (CPU) | RSS after it |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['cold_start_s']:.2f} s ({r['cold_start_cpu_s']:.2f} s) | "
            f"{r['idle_rss_mb']:.0f} MB | "
            f"{r['first_count_s'] * 1000:.0f} ms ({r['first_count_cpu_s'] * 1000:.0f} ms) | "
            f"{r['rss_after_mb']:.0f} MB |"
        )


if __name__ == "__main__":
    main()
