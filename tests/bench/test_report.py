"""Results → medians, ratios, overheads, target checks and the generated page (notes survive)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.report import (
    NOTES_END,
    NOTES_START,
    draw_plots,
    render_docs,
    summarize,
    target_checks,
    write_docs,
)


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


# --------------------------------------------------------------------------- the newer sections


def _histogram(counts: tuple[int, ...], total: float) -> dict[str, Any]:
    """Overhead histogram JSON with ccr-fast's buckets; ``counts`` per bucket (not cumulative)."""
    bounds: list[Any] = [50, 100, 250, 500, 1000, 2500, 5000, 10000, "+Inf"]
    cumulative, running = [], 0
    for count in (*counts, *(0,) * (len(bounds) - len(counts))):
        running += count
        cumulative.append(running)
    return {"bounds": bounds, "cumulative": cumulative, "sum": total, "count": running}


def _feature_round(p50_ms: float, p99_ms: float, inside: dict[str, Any]) -> dict[str, Any]:
    run = _open_loop(p50_ms, p99_ms)
    return {**run, "inside": inside, "rate_limited": 0}


def _memory(pss: float) -> dict[str, float]:
    return {"rss_mb": pss + 30, "pss_mb": pss, "processes": 2}


def full_results() -> dict[str, Any]:
    """``results()`` plus LiteLLM, the inside overhead, open streams, a soak and per-feature costs."""
    data = results()
    data["systems"]["litellm"] = {"title": "LiteLLM 1.108.7"}
    data["versions"]["litellm"] = "1.108.7"
    data["options"].update(litellm_rate=5.0, litellm_stream_rate=2.0)
    data["throughput"]["nonstream-1k"]["litellm"] = [_wrk(20)]
    cdf = [[q, 0.5 + q / 100] for q in (1.0, 50.0, 99.0)]
    data["latency"]["nonstream-1k"]["direct"][0]["latency_cdf_ms"] = cdf
    data["latency"]["nonstream-1k"]["ccr-fast"][0]["latency_cdf_ms"] = [[q, v + 0.2] for q, v in cdf]
    data["latency_back_to_back"] = {
        "nonstream-1k": {"direct": [_open_loop(0.2, 0.3)], "ccr-fast": [_open_loop(0.5, 0.9)]}
    }
    data["inside_overhead"] = {
        "nonstream-1k": {
            "ccr-fast": [
                {"open_loop": _histogram((0, 0, 10, 10), 7000), "back_to_back": _histogram((0, 0, 20), 3000)}
            ]
        }
    }
    data["open_streams"] = {
        "streams": 1000,
        "steps": 2,
        "ramp_rate": 200.0,
        "pool_size": 1064,
        "nofile": 20000,
        "litellm_streams": 200,
        "systems": {
            "ccr-fast": {
                "requested": 1000,
                "errors": 0,
                "upstream_closed": 1000,
                "before": _memory(50),
                "points": [
                    {"open": 0, "requested": 0, **_memory(50)},
                    {"open": 500, "requested": 500, **_memory(55)},
                    {"open": 1000, "requested": 1000, **_memory(60)},
                ],
                "after": _memory(58),
            },
            "litellm": {
                "requested": 200,
                "errors": 3,
                "upstream_closed": 150,
                "before": _memory(300),
                "points": [
                    {"open": 0, "requested": 0, **_memory(300)},
                    {"open": 197, "requested": 200, **_memory(340)},
                ],
                "after": _memory(330),
            },
        },
    }
    flat = [{"t": t, "memory": {"ccr-fast": _memory(60 + min(t, 600) / 100)}} for t in range(0, 1801, 60)]
    data["soak"] = {
        "rate": 50.0,
        "duration": 1800.0,
        "interval": 60.0,
        "mix": "non-stream and stream requests",
        "samples": flat,
        "totals": {"ccr-fast": {"requests": 90000, "errors": 0}},
    }
    off = _histogram((0, 0, 10), 1500)
    data["features"] = {
        "options": {"rounds": 1, "duration": 2.0},
        "not_timed": {"tracing": "does not exist yet"},
        "skipped_variants": {},
        "variants": {
            "off": {"title": "all optional features off", "rounds": [_feature_round(0.5, 1.0, off)]},
            "auth": {"title": "API key check (APIKEY)", "rounds": [_feature_round(0.51, 1.02, off)]},
            "redis": {
                "title": "global rate limit kept in Redis (State.backend redis)",
                "rounds": [_feature_round(0.6, 1.13, _histogram((0, 0, 5, 5), 2500))],
            },
        },
        "redis": {"ping": {"p50_ms": 0.03, "p99_ms": 0.05}, "commands": 200},
    }
    return data


def test_summarize_the_newer_sections() -> None:
    data = full_results()
    summary = summarize(data)
    assert summary["ratios"]["nonstream-1k"]["ccr-fast/litellm"] == 125.0
    inside = summary["inside_overhead"]["nonstream-1k"]["ccr-fast"]
    assert inside["open_loop"]["count"] == 20 and inside["open_loop"]["mean"] == 350
    assert inside["back_to_back"]["p50"] == pytest.approx(175.0)
    streams = summary["open_streams"]
    assert streams["ccr-fast"]["per_1k_pss_mb"] == pytest.approx(10.0)
    assert streams["litellm"]["per_1k_pss_mb"] == pytest.approx(40 / 197 * 1000)
    soak = summary["soak"]["ccr-fast"]["pss"]
    assert soak["growth_mb"] == pytest.approx(0.0) and soak["peak_mb"] == 66
    features = summary["features"]
    assert features["auth"]["added_p99_us"] == pytest.approx(20.0)
    assert features["redis"]["added_p99_us"] == pytest.approx(130.0)
    assert features["redis"]["round_trip_p99_us"] == pytest.approx(50.0)
    assert features["redis"]["commands_per_request"] == 2.0
    assert features["redis"]["added_inside_mean_us"] == pytest.approx(100.0)
    assert summary["latency_cdf"]["ccr-fast"][1] == [50.0, pytest.approx(1.2)]


def test_target_rows_for_the_newer_measurements() -> None:
    data = full_results()
    data["summary"] = summarize(data)
    checks = {c["metric"]: c for c in target_checks(data)}
    litellm = checks["non-stream throughput, OpenAI translation, 1 KB, against LiteLLM"]
    assert (litellm["measured"], litellm["status"]) == ("125.0× (one CPU each)", "met")
    streams = checks["memory per 1k concurrent open streams"]
    assert streams["status"] == "met" and streams["measured"].startswith("10.0 MB")
    soak = checks["memory growth over a 30-minute soak"]
    assert soak["status"] == "met" and soak["measured"].endswith(
        "over the last 15 min (+0.0 MB/h) of a 30 min soak"
    )
    features = checks["cost of each feature when on (auth, rate limit, cache, metrics, tracing)"]
    # auth adds 20 µs; Redis 130 µs, more than 50 µs plus its 50 µs round trip
    assert features["status"] == "not met"
    assert "API key check +20 µs" in features["measured"]
    assert "tracing: does not exist yet" in features["measured"]
    data["features"]["variants"].pop("redis")
    data["summary"] = summarize(data)
    checks = {c["metric"]: c for c in target_checks(data)}
    assert (
        checks["cost of each feature when on (auth, rate limit, cache, metrics, tracing)"]["status"] == "met"
    )


def test_target_rows_say_why_something_was_not_measured() -> None:
    data = results()
    data["summary"] = summarize(data)
    checks = {c["metric"]: c for c in target_checks(data)}
    for metric in (
        "memory per 1k concurrent open streams",
        "memory growth over a 30-minute soak",
        "cost of each feature when on (auth, rate limit, cache, metrics, tracing)",
        "non-stream throughput, OpenAI translation, 1 KB, against LiteLLM",
    ):
        assert checks[metric]["status"] == "not measured", metric
    assert checks["Cython vs pure Python: cache key"]["measured"] == "— (no response cache yet)"
    assert (
        "`--litellm`"
        in checks["non-stream throughput, OpenAI translation, 1 KB, against LiteLLM"]["measured"]
    )


def test_render_the_newer_sections_with_plots() -> None:
    data = full_results()
    data["summary"] = summarize(data)
    plots = {"throughput": "bench-throughput.png", "open_streams": "bench-memory-open-streams.png"}
    page = render_docs(data, Path("/elsewhere/run.json"), "", plots)
    assert "| non-stream 1 KB | 19,000 | 2,500 | 250 (4 errors) | 20 | 10.0× | 125.0× | 13% |" in page
    assert "![Throughput per system and scenario](img/bench-throughput.png)" in page
    assert "![Memory against open streams](img/bench-memory-open-streams.png)" in page
    assert "bench-memory-soak.png" not in page  # not drawn, not linked
    assert "LiteLLM is offered 5 req/s here" in page
    assert "### Overhead from inside" in page
    assert "| ccr-fast (RSGI) | open loop | 20 | 350 µs |" in page
    assert (
        "| ccr-fast (RSGI) | 1000 / 1000 | 0 | 80 / 50 | 90 / 60 | 10.0 (10.0) | 88 / 58 | 1000 / 1000 |"
        in page
    )
    assert "LiteLLM was given at most 200 streams, to keep its run short" in page
    assert "## Memory over a soak" in page and "at once for 30 min," in page
    assert "| API key check (APIKEY) | 100 / 0 | 510 µs | 1020 µs | +10 µs | +20 µs |" in page
    assert "a bare `PING` round trip from this machine takes 30 µs (p50), 50 µs (p99)" in page
    assert "- tracing: does not exist yet" in page
    assert "`litellm[proxy]==1.108.7`" in page
    assert "Not measured yet" not in page and "Plots skipped" not in page


def test_render_without_the_newer_sections_and_without_plots() -> None:
    data = results()
    data["options"]["quick"] = True
    data["options"].update(open_streams=200, soak_seconds=0.0)
    data["summary"] = summarize(data)
    note = "Plots skipped: matplotlib is not installed (`pip install -e '.[bench]'`)."
    page = render_docs(data, Path("/elsewhere/run.json"), "", None, note)
    assert note in page and "![" not in page
    assert "200 open streams instead of 1,000, no soak" in page
    assert "## Memory per open stream\n\nNot measured: not run in this run." in page
    assert "Not measured: not run in this run (`--soak-seconds 0`)." in page
    assert "## Cost of each feature\n\nNot measured: not run in this run." in page
    assert "### Overhead from inside" not in page
    assert "ccr-fast / LiteLLM" not in page


def test_draw_plots_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    data = full_results()
    data["summary"] = summarize(data)
    plots, note = draw_plots(data, tmp_path / "img")
    assert plots == {} and "matplotlib is not installed" in note
    assert not (tmp_path / "img").exists()


def test_write_docs_draws_and_links_every_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = full_results()
    data["summary"] = summarize(data)
    docs = tmp_path / "benchmarks.md"
    write_docs(data, tmp_path / "run.json", docs)
    page = docs.read_text()
    for name in ("throughput", "latency-cdf", "memory-open-streams", "memory-soak"):
        image = tmp_path / "img" / f"bench-{name}.png"
        assert image.read_bytes().startswith(b"\x89PNG"), name
        assert f"(img/bench-{name}.png)" in page
