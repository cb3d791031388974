"""Results → medians, ratios, overheads, target checks and the generated page (notes survive)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.report import NOTES_END, NOTES_START, render_docs, summarize, target_checks, write_docs


def _wrk(rps: float, errors: int = 0) -> dict[str, Any]:
    return {"rps": rps, "errors": errors, "latency_ms": {"p99": 1000 / rps}}


def _open_loop(p50: float, p99: float, *, stream: bool = False) -> dict[str, Any]:
    dist = {"mean": p50, "p50": p50, "p90": p50, "p99": p99, "p99.9": p99, "max": p99}
    run: dict[str, Any] = {
        "offered_rate": 50.0,
        "achieved_rate": 49.9,
        "requests": 100,
        "errors": 0,
        "latency_ms": dist,
        "send_lag_ms": {"p99": 0.5},
    }
    if stream:
        run["ttft_ms"] = {k: v + 50 for k, v in dist.items()}
        run["gap_ms"] = {k: v + 10 for k, v in dist.items()}
    return run


def results() -> dict[str, Any]:
    layout = {"loadgen": [0], "mock": [0], "sut": [1], "description": "load generator on CPU 0, ..."}
    return {
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:10:00+00:00",
        "duration_s": 600.0,
        "command": "python -m bench.run",
        "options": {
            "quick": False,
            "connections": 16,
            "rounds": 3,
            "duration": 5.0,
            "workers": 2,
            "rate": 50.0,
            "stream_rate": 10.0,
            "latency_duration": 8.0,
            "latency_rounds": 2,
        },
        "machine": {"cpu_model": "CPU", "cpus": 2, "memory_gb": 24.0, "os": "Debian", "kernel": "6.1"},
        "versions": {
            "python": "3.11",
            "extensions": {"sse_framer": "compiled (Cython)"},
            "claude_code_router": "2.0.0",
        },
        "git": {"commit": "abc", "dirty": True},
        "layouts": {"split": layout, "shared": {**layout, "description": "everything everywhere"}},
        "scenarios": {"nonstream-1k": {"title": "non-stream 1 KB"}, "stream-50": {"title": "stream 50"}},
        "systems": {
            "direct": {"title": "direct to mock"},
            "ccr-fast": {"title": "ccr-fast (RSGI)"},
            "ccr": {"title": "CCR"},
            "ccr-fast@shared": {"title": "ccr-fast unpinned"},
            "ccr@shared": {"title": "CCR unpinned"},
        },
        "skipped": {"ccr-fast-asgi": "did not start"},
        "smoke": {"ccr": {"nonstream-1k": "ok", "stream-50": ["HTTP 500: boom"]}},
        "throughput": {
            "nonstream-1k": {
                "direct": [_wrk(20000), _wrk(18000), _wrk(19000)],
                "ccr-fast": [_wrk(3000), _wrk(2000), {"failed": "wrk crashed"}],
                "ccr": [_wrk(250), _wrk(300), _wrk(200, errors=4)],
                "ccr-fast@shared": [_wrk(4000)],
                "ccr@shared": [_wrk(400)],
            },
        },
        "latency": {"nonstream-1k": {"direct": [_open_loop(0.5, 1.0)], "ccr-fast": [_open_loop(0.7, 1.5)]}},
        "stream": {
            "paced-stream": {
                "direct": [_open_loop(0.5, 1.0, stream=True)],
                "ccr-fast": [_open_loop(0.6, 1.1, stream=True)],
            }
        },
        "memory": {
            "ccr-fast": {
                "idle": {
                    "rss_mb": 80.0,
                    "pss_mb": 40.0,
                    "processes": [
                        {"pid": 1, "rss_mb": 40.0, "pss_mb": 20.0},
                        {"pid": 2, "rss_mb": 42.0, "pss_mb": 21.0},
                    ],
                }
            }
        },
        "cold_start": {
            "ccr-fast": {"seconds": [0.3, 0.5, 0.4], "workers": 2},
            "ccr": {"seconds": [0.9], "workers": 1},
        },
        "micro": {
            "benchmarks": [
                {"group": "sse: OpenAI stream", "name": "test_openai_stream[50-compiled]", "median_us": 5.0},
                {"group": "sse: OpenAI stream", "name": "test_openai_stream[50-pure]", "median_us": 40.0},
                {"group": "openai stream rewrite", "name": "test_rewrite[compiled]", "median_us": 100.0},
                {"group": "openai stream rewrite", "name": "test_rewrite[pure]", "median_us": 250.0},
            ]
        },
    }


def test_summarize_medians_and_ratios() -> None:
    data = results()
    summary = summarize(data)
    rows = summary["throughput"]["nonstream-1k"]
    assert rows["direct"]["rps"] == 19000
    assert rows["ccr-fast"]["rps"] == 2500  # the failed run is left out of the median
    assert rows["ccr-fast"]["failed_runs"] == 1
    assert rows["ccr"]["errors"] == 4
    ratios = summary["ratios"]["nonstream-1k"]
    assert ratios["ccr-fast/ccr"] == 10.0
    assert ratios["ccr-fast/direct"] == 2500 / 19000
    assert ratios["ccr-fast@shared/ccr@shared"] == 10.0
    added = summary["latency"]["nonstream-1k"]["ccr-fast"]["added_latency_ms"]
    assert math.isclose(added["p50"], 0.2) and math.isclose(added["p99"], 0.5)
    stream = summary["stream"]["paced-stream"]["ccr-fast"]
    assert math.isclose(stream["added_ttft_ms"]["p99"], 0.1)
    assert math.isclose(stream["added_gap_ms"]["p50"], 0.1)
    assert summary["cold_start_s"] == {"ccr-fast": 0.4, "ccr": 0.9}
    assert summary["memory"]["ccr-fast"]["idle"]["max_worker_rss_mb"] == 42.0
    micro = {row["name"]: row["speedup"] for row in summary["micro"]}
    assert micro == {"test_openai_stream[50]": 8.0, "test_rewrite": 2.5}


def test_target_checks() -> None:
    data = results()
    data["summary"] = summarize(data)
    checks = {c["metric"]: c for c in target_checks(data)}
    assert checks["non-stream throughput, OpenAI translation, 1 KB"]["status"] == "not met"  # 10× < 15×
    assert checks["non-stream throughput, OpenAI translation, 1 KB"]["measured"].startswith("10.0×")
    assert checks["stream throughput, 50 chunks"]["status"] == "not measured"
    assert checks["added latency vs direct, light load, p50"]["status"] == "met"
    assert checks["added latency vs direct, light load, p99"]["status"] == "met"
    assert checks["TTFT overhead vs direct, p99"]["status"] == "met"
    assert checks["added delay per streamed chunk, p99"]["status"] == "met"
    assert checks["RSS per idle worker"]["status"] == "met"
    assert checks["cold start to first served request"]["status"] == "met"
    assert checks["Cython vs pure Python: SSE framing"]["status"] == "met"
    assert checks["Cython vs pure Python: stream rewrite"]["status"] == "not met"
    assert checks["Cython vs pure Python: cache key"]["status"] == "not measured"


def test_negative_overhead_is_inconclusive() -> None:
    data = results()
    data["latency"]["nonstream-1k"]["ccr-fast"] = [_open_loop(0.4, 0.8)]
    data["summary"] = summarize(data)
    checks = {c["metric"]: c for c in target_checks(data)}
    assert checks["added latency vs direct, light load, p50"]["measured"] == "-0.10 ms"
    assert checks["added latency vs direct, light load, p50"]["status"] == "inconclusive (noise)"


def test_render_docs_tables_and_skips() -> None:
    data = results()
    data["summary"] = summarize(data)
    page = render_docs(data, Path("/elsewhere/run.json"), "")
    assert page.startswith("# Benchmarks")
    assert "| non-stream 1 KB | 19,000 | 2,500 | 250 (4 errors) | 10.0× | 13% |" in page
    assert "| non-stream 1 KB | 4,000 | 400 | 10.0× | — |" in page
    assert "| Cython vs pure Python: SSE framing | ≥ 5× | 8.0× | met |" in page
    assert "`/elsewhere/run.json`" in page
    assert "ccr-fast unpinned" in page
    assert "- ccr-fast-asgi: did not start" in page
    assert "- ccr / stream-50: HTTP 500: boom" in page
    assert f"{NOTES_START}\n{NOTES_END}" in page


def test_write_docs_keeps_hand_written_notes(tmp_path: Path) -> None:
    data = results()
    data["summary"] = summarize(data)
    docs = tmp_path / "benchmarks.md"
    write_docs(data, tmp_path / "run.json", docs)
    text = docs.read_text().replace(
        f"{NOTES_START}\n{NOTES_END}", f"{NOTES_START}\nThe loop is the cost.\n{NOTES_END}"
    )
    docs.write_text(text)
    data["throughput"]["nonstream-1k"]["ccr"] = [_wrk(100)]
    data["summary"] = summarize(data)
    write_docs(data, tmp_path / "run.json", docs)
    regenerated = docs.read_text()
    assert "The loop is the cost." in regenerated
    assert "25.0×" in regenerated
