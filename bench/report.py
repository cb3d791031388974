"""Results JSON → summary numbers and ``docs/benchmarks.md``.

``python -m bench.report [RESULTS.json]`` regenerates the page from a results file (default: the newest in
``bench/results``); ``bench.run`` calls the same code at the end of a run. The page is generated, except the
hand-written part between the ``notes`` markers in "Profiling notes", which is carried over from the current
file so that an analysis survives the next run.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from bench import report_memory, report_overhead
from bench.litellm_peer import LITELLM_VERSION
from bench.order import ordered
from bench.scenarios import SCENARIOS

#: scenarios in the order bench.scenarios defines them (a results file stores them sorted by name)
SCENARIO_ORDER = tuple(SCENARIOS)

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
DOCS_PATH = REPO / "docs" / "benchmarks.md"
NOTES_START = "<!-- notes:start (hand-written; kept when this page is regenerated) -->"
NOTES_END = "<!-- notes:end -->"

PERCENTILES = ("p50", "p90", "p99", "p99.9", "max")
#: above this median share of the machine taken by other processes, tail latencies are called unreliable
NOISY_SHARE = 0.10


# --------------------------------------------------------------------------- summary numbers


def _median(values: Iterable[float | None]) -> float:
    data = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(data) if data else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _throughput(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario, by_target in results.get("throughput", {}).items():
        rows: dict[str, Any] = {}
        for target, runs in by_target.items():
            good = [r for r in runs if "rps" in r]
            rows[target] = {
                "rps": _median(r["rps"] for r in good),
                "p99_ms": _median(r["latency_ms"].get("p99") for r in good),
                "errors": sum(r.get("errors", 0) for r in good),
                "failed_runs": len(runs) - len(good),
                "runs": len(runs),
            }
        out[scenario] = rows
    return out


def _percentiles(runs: list[dict[str, Any]], field: str) -> dict[str, float]:
    return {q: _median(r.get(field, {}).get(q) for r in runs) for q in ("mean", *PERCENTILES)}


def _open_loop(section: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Per target: the median over rounds of each percentile, and the same minus direct's."""
    out: dict[str, Any] = {}
    for scenario, by_target in section.items():
        rows: dict[str, Any] = {}
        for target, runs in by_target.items():
            row: dict[str, Any] = {
                "requests": sum(r["requests"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "achieved_rate": _median(r["achieved_rate"] for r in runs),
                "offered_rate": runs[0]["offered_rate"] if runs else math.nan,
                "send_lag_p99_ms": _median(r["send_lag_ms"].get("p99") for r in runs),
            }
            for field in fields:
                row[field] = _percentiles(runs, field)
            rows[target] = row
        direct = rows.get("direct")
        for target, row in rows.items():
            if direct is None or target == "direct":
                continue
            for field in fields:
                row[f"added_{field}"] = {q: row[field][q] - direct[field][q] for q in ("mean", *PERCENTILES)}
        out[scenario] = rows
    return out


def _memory(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for server, moments in results.get("memory", {}).items():
        row: dict[str, Any] = {}
        for moment, data in moments.items():
            processes = data["processes"]
            workers = processes[1:] if server.startswith("ccr-fast") else processes
            row[moment] = {
                "rss_mb": data["rss_mb"],
                "pss_mb": data["pss_mb"],
                "processes": len(processes),
                "max_worker_rss_mb": max((p["rss_mb"] for p in workers), default=math.nan),
            }
        out[server] = row
    return out


def _micro(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Compiled and pure rows of each micro benchmark paired, with the speed-up."""
    micro = results.get("micro", {})
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for bench in micro.get("benchmarks", []):
        name = bench["name"]
        variant = "compiled" if "compiled" in name else "pure" if "pure" in name else None
        if variant is None:
            continue
        label = name.replace(variant, "").replace("[-", "[").replace("-]", "]").replace("[]", "")
        pairs.setdefault((bench["group"], label), {})[variant] = bench["median_us"]
    rows = []
    for (group, label), medians in sorted(pairs.items()):
        compiled, pure = medians.get("compiled", math.nan), medians.get("pure", math.nan)
        rows.append(
            {
                "group": group,
                "name": label,
                "compiled_us": compiled,
                "pure_us": pure,
                "speedup": _ratio(pure, compiled),
            }
        )
    return rows


def _foreign_cpu(results: dict[str, Any]) -> dict[str, float]:
    """Other processes' share of the machine over every timed run: how disturbed the numbers may be."""
    shares = [
        run["foreign_cpu"]
        for section in ("throughput", "latency", "latency_back_to_back", "stream")
        for by_target in results.get(section, {}).values()
        for runs in by_target.values()
        for run in runs
        if "foreign_cpu" in run
    ]
    if not shares:
        return {}
    return {"median": statistics.median(shares), "max": max(shares), "runs": float(len(shares))}


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians over rounds, ratios and overheads: everything the page and the target check need."""
    throughput = _throughput(results)
    ratios: dict[str, Any] = {}
    for scenario, rows in throughput.items():
        rps = {target: row["rps"] for target, row in rows.items()}
        entry: dict[str, float] = {}
        for proxy in ("ccr-fast", "ccr-fast-asgi"):
            if proxy in rps:
                entry[f"{proxy}/ccr"] = _ratio(rps[proxy], rps.get("ccr", math.nan))
                entry[f"{proxy}/direct"] = _ratio(rps[proxy], rps.get("direct", math.nan))
                if "litellm" in rps:
                    entry[f"{proxy}/litellm"] = _ratio(rps[proxy], rps["litellm"])
        for peer in ("ccr", "litellm"):
            if peer in rps:
                entry[f"{peer}/direct"] = _ratio(rps[peer], rps.get("direct", math.nan))
        if "ccr-fast@shared" in rps:
            entry["ccr-fast@shared/ccr@shared"] = _ratio(
                rps["ccr-fast@shared"], rps.get("ccr@shared", math.nan)
            )
            entry["ccr-fast@shared/direct@shared"] = _ratio(
                rps["ccr-fast@shared"], rps.get("direct@shared", math.nan)
            )
            if "litellm@shared" in rps:
                entry["ccr-fast@shared/litellm@shared"] = _ratio(
                    rps["ccr-fast@shared"], rps["litellm@shared"]
                )
        ratios[scenario] = entry
    cold = {system: _median(entry["seconds"]) for system, entry in results.get("cold_start", {}).items()}
    return {
        "throughput": throughput,
        "ratios": ratios,
        "latency": _open_loop(results.get("latency", {}), ("latency_ms",)),
        "latency_back_to_back": _open_loop(results.get("latency_back_to_back", {}), ("latency_ms",)),
        "stream": _open_loop(results.get("stream", {}), ("ttft_ms", "gap_ms")),
        "memory": _memory(results),
        "cold_start_s": cold,
        "micro": _micro(results),
        "foreign_cpu": _foreign_cpu(results),
        "latency_cdf": _latency_cdf(results),
        "inside_overhead": report_overhead.summarize_inside(results),
        "features": report_overhead.summarize_features(results),
        "open_streams": report_memory.summarize_open_streams(results),
        "soak": report_memory.summarize_soak(results),
    }


def _latency_cdf(results: dict[str, Any]) -> dict[str, list[list[float]]]:
    """Per system, the light-load latency distribution: at each percentile, the median over rounds."""
    out: dict[str, list[list[float]]] = {}
    for by_target in results.get("latency", {}).values():
        for target, runs in by_target.items():
            curves = [r["latency_cdf_ms"] for r in runs if r.get("latency_cdf_ms")]
            if curves:
                out[target] = [
                    [point[0], _median(curve[i][1] for curve in curves if i < len(curve))]
                    for i, point in enumerate(curves[0])
                ]
    return out


# --------------------------------------------------------------------------- targets


def _micro_speedups(summary: dict[str, Any], prefix: str) -> list[float]:
    return [row["speedup"] for row in summary["micro"] if row["group"].startswith(prefix)]


def target_checks(results: dict[str, Any]) -> list[dict[str, str]]:
    """performance.md's targets against this run: measured value and met / not met / not measured."""
    summary = results["summary"]
    ratios = summary["ratios"]
    checks: list[dict[str, str]] = []

    def check(
        metric: str,
        target: str,
        value: float,
        ok: bool | None,
        text: str,
        *,
        why: str = "",
        negative_is_noise: bool = True,
    ) -> None:
        status = "not measured" if ok is None or math.isnan(value) else ("met" if ok else "not met")
        if status == "met" and negative_is_noise and text.startswith("-"):
            # a proxy cannot beat the upstream it forwards to: a negative overhead is noise, not a result
            status = "inconclusive (noise)"
        checks.append(
            {
                "metric": metric,
                "target": target,
                "measured": text if status != "not measured" else (f"— ({why})" if why else "—"),
                "status": status,
            }
        )

    def ratio_check(metric: str, scenario: str, minimum: float) -> None:
        one = ratios.get(scenario, {}).get("ccr-fast/ccr", math.nan)
        shared = ratios.get(scenario, {}).get("ccr-fast@shared/ccr@shared", math.nan)
        parts = [f"{_x(one)} (one CPU each)"] + (
            [f"{_x(shared)} (unpinned)"] if not math.isnan(shared) else []
        )
        check(metric, f"≥ {minimum:g}× CCR", one, one >= minimum, ", ".join(parts))

    ratio_check("non-stream throughput, OpenAI translation, 1 KB", "nonstream-1k", 15)
    versus_litellm = ratios.get("nonstream-1k", {}).get("ccr-fast/litellm", math.nan)
    check(
        "non-stream throughput, OpenAI translation, 1 KB, against LiteLLM",
        "≥ 100× LiteLLM",
        versus_litellm,
        versus_litellm >= 100,
        f"{_x(versus_litellm)} (one CPU each)",
        why="LiteLLM not run: `--litellm`",
    )
    ratio_check("stream throughput, 50 chunks", "stream-50", 10)
    ratio_check("Claude-Code-sized body (100 KB), stream", "claude-code-100k", 10)
    latency = summary["latency"].get("nonstream-1k", {}).get("ccr-fast", {}).get("added_latency_ms", {})
    p50, p99 = latency.get("p50", math.nan), latency.get("p99", math.nan)
    check("added latency vs direct, light load, p50", "≤ 0.3 ms", p50, p50 <= 0.3, _ms(p50, signed=True))
    check("added latency vs direct, light load, p99", "≤ 1 ms", p99, p99 <= 1.0, _ms(p99, signed=True))
    stream = summary["stream"].get("paced-stream", {}).get("ccr-fast", {})
    ttft = stream.get("added_ttft_ms", {}).get("p99", math.nan)
    check("TTFT overhead vs direct, p99", "≤ 1 ms", ttft, ttft <= 1.0, _ms(ttft, signed=True))
    gap = stream.get("added_gap_ms", {}).get("p99", math.nan)
    check("added delay per streamed chunk, p99", "≤ 0.2 ms", gap, gap <= 0.2, _ms(gap, signed=True))
    memory = summary["memory"].get("ccr-fast-shared", summary["memory"].get("ccr-fast", {})).get("idle", {})
    worker = memory.get("max_worker_rss_mb", math.nan)
    check("RSS per idle worker", "≤ 60 MB", worker, worker <= 60, f"{worker:.0f} MB")
    per_1k, per_1k_text = report_memory.open_streams_check(summary)
    check(
        "memory per 1k concurrent open streams",
        f"≤ {report_memory.OPEN_STREAMS_TARGET_MB:g} MB",
        per_1k,
        per_1k <= report_memory.OPEN_STREAMS_TARGET_MB,
        per_1k_text,
        negative_is_noise=False,
    )
    growth, growth_text = report_memory.soak_check(results)
    check(
        "memory growth over a 30-minute soak",
        "~0 after warm-up",
        growth,
        growth <= report_memory.SOAK_GROWTH_MB,
        growth_text,
        why="no soak in this run: `--soak-seconds`",
        negative_is_noise=False,
    )
    cold = summary["cold_start_s"].get("ccr-fast", math.nan)
    check("cold start to first served request", "≤ 0.5 s", cold, cold <= 0.5, f"{cold:.2f} s")
    for prefix, name, minimum in (
        ("sse:", "SSE framing", 5.0),
        ("openai stream rewrite", "stream rewrite", 3.0),
        ("cache key", "cache key", 3.0),
    ):
        speedups = _micro_speedups(summary, prefix)
        low = min(speedups) if speedups else math.nan
        high = max(speedups, default=math.nan)
        text = f"{low:.1f}×" if low == high else f"{low:.1f}–{high:.1f}×"
        why = "no response cache yet" if name == "cache key" else ""
        check(f"Cython vs pure Python: {name}", f"≥ {minimum:g}×", low, low >= minimum, text, why=why)
    not_timed = (results.get("features") or {}).get("not_timed") or {}
    feature_text, feature_status = report_overhead.feature_check_text(summary, not_timed)
    checks.append(
        {
            "metric": "cost of each feature when on (auth, rate limit, cache, metrics, tracing)",
            "target": f"≤ {report_overhead.FEATURE_P99_US:g} µs p99 each (+ Redis round trip)",
            "measured": feature_text or "—",
            "status": feature_status,
        }
    )
    return checks


# --------------------------------------------------------------------------- formatting


def _x(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.1f}×"


def _ms(value: float, *, signed: bool = False, digits: int = 2) -> str:
    if math.isnan(value):
        return "—"
    return f"{value:+.{digits}f} ms" if signed else f"{value:.{digits}f} ms"


def _rps(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _title(results: dict[str, Any], target: str) -> str:
    return str(results.get("systems", {}).get(target, {}).get("title", target))


def render_summary(results: dict[str, Any]) -> str:
    """A few lines for the terminal at the end of a run."""
    summary = results["summary"]
    lines = ["", "throughput (median req/s):"]
    for scenario, rows in summary["throughput"].items():
        cells = ", ".join(f"{target} {_rps(row['rps'])}" for target, row in rows.items())
        ratio = summary["ratios"].get(scenario, {}).get("ccr-fast/ccr", math.nan)
        lines.append(f"  {scenario}: {cells}; ccr-fast/CCR {_x(ratio)}")
    for check in target_checks(results):
        lines.append(
            f"  [{check['status']}] {check['metric']}: {check['measured']} (target {check['target']})"
        )
    return "\n".join(lines)


def _throughput_section(results: dict[str, Any], shared: bool) -> list[str]:
    summary = results["summary"]
    scenarios = results.get("scenarios", {})
    suffix = "@shared" if shared else ""
    columns = [t + suffix for t in ("direct", "ccr-fast", "ccr-fast-asgi", "ccr", "litellm")]
    present = [c for c in columns if any(c in rows for rows in summary["throughput"].values())]
    if not any(t.startswith("ccr-fast") for t in present):
        return []
    with_litellm = "litellm" + suffix in present
    header = ["scenario", *(_title(results, t) for t in present)]
    header += ["ccr-fast / CCR", *(["ccr-fast / LiteLLM"] if with_litellm else []), "ccr-fast / direct"]
    rows = []
    for scenario in ordered(summary["throughput"], SCENARIO_ORDER):
        by_target = summary["throughput"][scenario]
        if not any(t in by_target for t in present if t.startswith("ccr-fast")):
            continue
        ratios = summary["ratios"].get(scenario, {})
        key = "ccr-fast@shared/ccr@shared" if shared else "ccr-fast/ccr"
        direct_key = "ccr-fast@shared/direct@shared" if shared else "ccr-fast/direct"
        cells = []
        for target in present:
            row = by_target.get(target)
            note = f" ({row['errors']} errors)" if row and row["errors"] else ""
            if row and row["rps"] == 0 and not row["errors"]:
                note = " (no response finished within the run)"
            cells.append(_rps(row["rps"]) + note if row else "—")
        direct_ratio = ratios.get(direct_key, math.nan)
        litellm_key = "ccr-fast@shared/litellm@shared" if shared else "ccr-fast/litellm"
        rows.append(
            [
                scenarios.get(scenario, {}).get("title", scenario),
                *cells,
                _x(ratios.get(key, math.nan)),
                *([_x(ratios.get(litellm_key, math.nan))] if with_litellm else []),
                "—" if math.isnan(direct_ratio) else f"{direct_ratio:.0%}",
            ]
        )
    return _table(header, rows)


def _latency_section(results: dict[str, Any], section: str) -> list[str]:
    """One row per system; ``section`` is ``latency`` (open loop) or ``latency_back_to_back``."""
    open_loop = section == "latency"
    rows_out = []
    for rows in results["summary"][section].values():
        for target in ordered(rows):
            row = rows[target]
            lat = row["latency_ms"]
            added = row.get("added_latency_ms", {})
            rate = f"{row['achieved_rate']:.1f}"
            rows_out.append(
                [
                    _title(results, target),
                    f"{rate} / {row['offered_rate']:g}" if open_loop else f"{row['achieved_rate']:,.0f}",
                    f"{row['requests']} / {row['errors']}",
                    *(_ms(lat[q]) for q in PERCENTILES),
                    _ms(added.get("p50", math.nan), signed=True),
                    _ms(added.get("p99", math.nan), signed=True),
                ]
            )
    rate_header = "achieved / offered req/s" if open_loop else "req/s"
    header = ["system", rate_header, "requests / errors", *PERCENTILES, "added p50", "added p99"]
    return _table(header, rows_out)


def _stream_section(results: dict[str, Any]) -> list[str]:
    rows_out = []
    for rows in results["summary"]["stream"].values():
        for target in ordered(rows):
            row = rows[target]
            ttft, gap = row["ttft_ms"], row["gap_ms"]
            added_ttft, added_gap = row.get("added_ttft_ms", {}), row.get("added_gap_ms", {})
            rows_out.append(
                [
                    _title(results, target),
                    f"{row['requests']} / {row['errors']}",
                    _ms(ttft["p50"]),
                    _ms(ttft["p99"]),
                    _ms(added_ttft.get("p50", math.nan), signed=True),
                    _ms(added_ttft.get("p99", math.nan), signed=True),
                    _ms(gap["p50"]),
                    _ms(gap["p99"]),
                    _ms(gap["max"]),
                    _ms(added_gap.get("p50", math.nan), signed=True),
                    _ms(added_gap.get("p99", math.nan), signed=True),
                ]
            )
    header = [
        "system",
        "streams / errors",
        "TTFT p50",
        "TTFT p99",
        "added TTFT p50",
        "added TTFT p99",
        "gap p50",
        "gap p99",
        "gap max",
        "added gap p50",
        "added gap p99",
    ]
    return _table(header, rows_out)


_SERVER_TITLES = {
    "ccr-fast": "ccr-fast (RSGI, one CPU)",
    "ccr-fast-asgi": "ccr-fast (ASGI, one CPU)",
    "ccr-fast-shared": "ccr-fast (RSGI, unpinned)",
    "ccr": "Claude Code Router",
    "litellm": "LiteLLM (1 worker, one CPU)",
}


def _memory_section(results: dict[str, Any]) -> list[str]:
    summary = results["summary"]
    rows = []
    for server in ordered(summary["memory"]):
        moments = summary["memory"][server]
        idle, after = moments.get("idle", {}), moments.get("after_load", {})
        rows.append(
            [
                _SERVER_TITLES.get(server, server),
                str(idle.get("processes", "—")),
                f"{idle.get('rss_mb', math.nan):.0f} / {idle.get('pss_mb', math.nan):.0f}",
                f"{idle.get('max_worker_rss_mb', math.nan):.0f}",
                f"{after.get('rss_mb', math.nan):.0f} / {after.get('pss_mb', math.nan):.0f}",
            ]
        )
    lines = _table(
        [
            "server",
            "processes",
            "idle RSS / PSS (MB)",
            "largest worker RSS idle (MB)",
            "after load RSS / PSS (MB)",
        ],
        rows,
    )
    cold = results.get("cold_start", {})
    if cold:
        lines += [
            "",
            *_table(
                ["system", "cold start to first served request (median)", "runs (s)"],
                [
                    [
                        system,
                        f"{summary['cold_start_s'][system]:.2f} s"
                        + (f" ({entry['workers']} workers)" if system == "ccr-fast" else ""),
                        ", ".join(f"{s:.2f}" for s in entry["seconds"]),
                    ]
                    for system, entry in cold.items()
                ],
            ),
        ]
    return lines


def _micro_section(results: dict[str, Any]) -> list[str]:
    rows = results["summary"]["micro"]
    if not rows:
        reason = results.get("micro", {}).get("failed", "not run in this run (`--quick` or `--no-micro`)")
        return [f"Micro benchmarks: {reason}"]
    return _table(
        ["benchmark", "case", "compiled (µs, median)", "pure Python (µs, median)", "compiled speed-up"],
        [
            [r["group"], r["name"] or "—", f"{r['compiled_us']:.1f}", f"{r['pure_us']:.1f}", _x(r["speedup"])]
            for r in rows
        ],
    )


def _profile_section(results: dict[str, Any]) -> list[str]:
    profiles = results.get("profile") or {}
    lines: list[str] = []
    for scenario, profile in profiles.items():
        if "samples" not in profile or not profile["samples"]:
            lines.append(f"- {scenario}: {profile.get('skipped', 'no samples')}")
            continue
        load = profile.get("load") or {}
        title = results["scenarios"].get(scenario, {}).get("title", scenario)
        lines += [
            "",
            f"**{title}** — {profile['samples']} samples of the worker's main thread at 250 Hz while wrk "
            f"drove {_rps(load.get('rps', math.nan))} req/s; "
            f"{profile['native_share']:.0%} of samples had no Python frame (event loop, sockets, Granian).",
            "",
            *_table(
                [
                    "own time, by package",
                    "share",
                    "own time, by function",
                    "share",
                    "including callees",
                    "share",
                ],
                [
                    [
                        *_cell(profile["self_by_package"], i),
                        *_cell(profile["self"], i),
                        *_cell(profile["inclusive"], i),
                    ]
                    for i in range(12)
                ],
            ),
        ]
    return lines


def _cell(ranked: list[dict[str, Any]], index: int) -> list[str]:
    if index >= len(ranked):
        return ["", ""]
    return [f"`{ranked[index]['name']}`", f"{ranked[index]['share']:.1%}"]


def _existing_notes(docs_path: Path) -> str:
    try:
        text = docs_path.read_text()
    except OSError:
        return ""
    start, end = text.find(NOTES_START), text.find(NOTES_END)
    if start < 0 or end < start:
        return ""
    return text[start + len(NOTES_START) : end].strip("\n")


_INTRO = """\
# Benchmarks

Generated by `python -m bench.run` from {source}, {finished}{quick}.
Re-run with `make bench` (or `.venv/bin/python -m bench.run`; add `--litellm` for LiteLLM); `--quick`
takes two to three minutes, the default run about fifteen. `python -m bench.report` regenerates this page
from the newest results file.

ccr-fast, {peers} and the mock upstream alone ("direct") are measured in one
script run, on the same machine, with the same mocks and the same clients, interleaved round by round.
The ratios from one run are the result; absolute numbers are context, since these machines are shared
and noisy.

## Summary

Throughput, closed loop (wrk, {connections} connections), median of {rounds} rounds of {duration:g} s.
Every system on a CPU of its own: {layout}.{noise}
"""

_SHARED = """\
The same with nothing pinned: every process may use all {cpus} CPUs, as on a user's machine (ccr-fast
with {workers} workers, the peers as they start):
"""

_LATENCY = """\
## Added latency at light load

Open loop: {rate:g} req/s for {seconds:g} s, {rounds} round(s), the non-stream 1 KB request with OpenAI
translation, sent by our asyncio client over keep-alive connections; latency runs from the request's
write to the last byte of the response. "Added" is the system's percentile minus direct's (medians over
rounds). Nothing is pinned here: at this load no process waits for a CPU, and pinning would add a
cross-CPU wake-up to every hop.{litellm}
"""

_BACK_TO_BACK = """\
The same request sent back to back on one connection for {seconds:g} s after each open-loop run. This is
not a load model: with no idle time between requests no process on the path goes to sleep, so it shows
the path's own cost without the wake-up delays that the light load above pays at every hop (on these
virtual machines, an idle process takes a fraction of a millisecond to wake).
"""

_STREAM = """\
## Time to first token and per-chunk delay

Open loop, nothing pinned: {rate:g} streams/s for {seconds:g} s per round. The mock waits 50 ms before
the first chunk, then 10 ms between 50 chunks. TTFT is measured to the first `content_block_delta`
through a proxy and to the first content chunk direct; a gap is the time between two consecutive content
events of one stream.
"""

_MEMORY = """\
## Memory and cold start

RSS counts the pages a master shares with its forked workers once per process; PSS splits them, so the
PSS sum is what the process tree costs. "Idle" is after start-up and a few requests; "after load" is after
every phase above. Cold start: a fresh instance, nothing pinned, timed from spawn to the first
`POST /v1/messages` answered with 200 (through to the mock).
"""

_MICRO = """\
## Micro benchmarks: compiled against pure Python

`pytest bench/micro --benchmark-enable`, run by the same script after the servers have stopped.
"""

_METHOD = """\
## Method

- **Systems.** "direct" sends each scenario's upstream request straight to the mock: exactly the request
  ccr-fast sends upstream, captured from ccr-fast at the start of the run. ccr-fast runs as
  `ccr-fast --config … --workers N --interface rsgi|asgi start`; CCR as `ccr start` from
  `@musistudio/claude-code-router@{ccr_version}`, installed by the script into `.tools/ccr`. Both proxies
  read the same CCR-format config, with per-request logging off in both.
- **LiteLLM** (with `--litellm` or `--systems …,litellm`; off by default because installing it takes a few
  minutes): `litellm[proxy]=={litellm_version}` from PyPI, installed by the script into a virtualenv of its
  own (`.tools/litellm`), started as `litellm --config …` (one uvicorn worker, as it starts) with
  `LITELLM_MASTER_KEY` (the key the requests carry),
  `LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES=True` (its `/v1/messages` goes to the mock's
  chat-completions endpoint), its bundled price list (no download at start-up) and no access log. Its
  config maps each scenario's model to the same mock. It gets the same throughput rounds; at light load
  it is offered fewer requests per second (see above), and at most {litellm_streams} open streams.
- **CPU layout.** Throughput: {layout}; wrk runs on the load generator's CPU. With one worker on one CPU
  the ratio compares cost per core; the unpinned table shows the whole machine. Latency, TTFT and gaps
  are measured at a light load with nothing pinned.
- **Mock upstreams** (`python -m ccr_fast.mock`, one process each, request log off): `fast` (zero latency,
  10 chunks), `stream50` (zero latency, 50 chunks), `paced` (TTFT 50 ms, 10 ms between 50 chunks).
- **Bodies.** 1 KB: a system prompt, a short exchange and a question. Claude-Code-sized: 100 KB with 24
  tools (80 KB of tool JSON), 3 system blocks (two with `cache_control`), a `<system-reminder>` block, a
  `role: "system"` message inside `messages`, `metadata.user_id` as a JSON string, adaptive thinking and
  `stream: true`, generated from a fixed seed (`bench/bodies.py`). Requests carry Claude Code's headers.
- **Closed loop** for throughput only: wrk with a Lua script that POSTs the body; a 1 s warm-up per system
  and scenario, then rounds interleaved across systems. Non-2xx answers and socket errors are counted.
- **Quiet gate.** These machines are shared. {quiet_gate} The share of the machine other processes took
  during each run is recorded (the "other processes" figure in the summary).
- **Open loop** for latency, TTFT and gaps: request *i* is due at *t0 + i/rate*; a request that finds no
  idle connection opens a new one; 20 unrecorded warm-up requests go first. Before any timing, every system
  answers one request per scenario and the answer is checked (status, reply text, number of chunks); a
  pair that fails is not timed.
- **Overhead two ways.** From outside: latency through a proxy minus latency direct, same client. From
  inside: ccr-fast's `ccr_overhead_us` histogram, scraped before and after each light-load run.
- **Memory.** Per open stream: streams held open against a slow mock, memory read at several counts,
  slope per 1,000. Soak: a steady mixed load for `--soak-seconds` (30 minutes: `--soak-seconds 1800`),
  memory sampled every few seconds, growth fitted over the second half.
- **Feature costs.** One ccr-fast instance per feature against one with every optional feature off,
  interleaved, back to back on one connection plus the inside histogram.
- **Not measured**: response caching and tracing (neither exists in ccr-fast yet), so neither their cost
  nor the Cython cache key; metrics cannot be switched off, so their cost is part of every ccr-fast
  number (the micro benchmarks time one `record`).
"""


def _machine_lines(results: dict[str, Any]) -> list[str]:
    machine, versions, git = results["machine"], results.get("versions", {}), results["git"]
    hot_paths = ", ".join(f"{name} {mode}" for name, mode in versions.get("extensions", {}).items())
    dirty = " (with uncommitted changes)" if git.get("dirty") else ""
    return [
        "## Machine and versions",
        "",
        f"- {machine['cpu_model']}, {machine['cpus']} CPUs, {machine['memory_gb']} GB RAM; {machine['os']}, "
        f"Linux {machine['kernel']}",
        f"- Python {versions.get('python')}, ccr-fast {versions.get('ccr_fast')} (hot paths: {hot_paths}), "
        f"granian {versions.get('granian')}, uvloop {versions.get('uvloop')}, "
        f"aiohttp {versions.get('aiohttp')}, orjson {versions.get('orjson')}",
        f"- Node.js {versions.get('node')}, "
        f"Claude Code Router {versions.get('claude_code_router', 'not run')}; "
        f"LiteLLM {versions.get('litellm') or 'not run'}; {versions.get('wrk')}",
        f"- git {git.get('commit')}{dirty}",
        f"- Command: `{results['command']}` ({results['duration_s']:.0f} s)",
    ]


def _skipped_lines(results: dict[str, Any]) -> list[str]:
    lines = [f"- {name}: {reason}" for name, reason in results.get("skipped", {}).items()]
    for target, outcome in results.get("smoke", {}).items():
        lines += [
            f"- {target} / {scenario}: {'; '.join(problems)}"
            for scenario, problems in outcome.items()
            if problems != "ok"
        ]
    return ["", "Skipped in this run:", *lines] if lines else []


def _noise(results: dict[str, Any]) -> str:
    foreign = results["summary"].get("foreign_cpu")
    if not foreign:
        return ""
    return (
        f"\nOther processes on the machine used a median {foreign['median']:.0%} "
        f"(at most {foreign['max']:.0%}) of its CPU time during the timed runs."
    )


def _quick_note(results: dict[str, Any]) -> str:
    options = results["options"]
    if not options.get("quick"):
        return ""
    soak = "no soak" if not options.get("soak_seconds") else f"a {options['soak_seconds']:g} s soak"
    return (
        " (a `--quick` run: short and one round, indicative only; "
        f"{options.get('open_streams', 0)} open streams instead of 1,000, {soak}, "
        "feature costs in one short round, no micro benchmarks)"
    )


def _peers_text(results: dict[str, Any]) -> str:
    systems = set(results.get("systems", {}))
    peers = ["Claude Code Router (CCR, Node.js)"]
    if "litellm" in systems:
        peers.append("LiteLLM (Python)")
    return ", ".join(peers)


def _litellm_latency_note(results: dict[str, Any]) -> str:
    options = results["options"]
    if "litellm" not in results.get("systems", {}):
        return ""
    return (
        f"\nLiteLLM is offered {options.get('litellm_rate', 0):g} req/s here and "
        f"{options.get('litellm_stream_rate', 0):g} streams/s in the TTFT runs: it serves a few dozen "
        "requests a second on one CPU, so at the others' rate its queue would grow for the whole run."
    )


def _plot_line(plots: Mapping[str, str], name: str, alt: str) -> list[str]:
    return ["", f"![{alt}](img/{plots[name]})", ""] if name in plots else []


def render_docs(
    results: dict[str, Any],
    results_path: Path,
    notes: str,
    plots: Mapping[str, str] | None = None,
    plots_note: str = "",
) -> str:
    """The whole of docs/benchmarks.md for one results document; ``plots`` names the figures drawn (see
    :func:`bench.plots.write_plots`), ``plots_note`` says why there are none."""
    plots = plots or {}
    options = results["options"]
    layouts = results["layouts"]
    layout = layouts.get("split", layouts["shared"])["description"]
    if results_path.is_relative_to(REPO):
        relative = results_path.relative_to(REPO)
        source = f"[`{relative}`](../{relative})"
    else:
        source = f"`{results_path}`"
    lines = [
        _INTRO.format(
            source=source,
            finished=results["finished_at"],
            quick=_quick_note(results),
            peers=_peers_text(results),
            connections=options["connections"],
            rounds=options["rounds"],
            duration=options["duration"],
            layout=layout,
            noise=_noise(results),
        ),
        *_throughput_section(results, shared=False),
        *_plot_line(plots, "throughput", "Throughput per system and scenario"),
        "",
    ]
    if plots_note:
        lines += [plots_note, ""]
    shared_table = _throughput_section(results, shared=True)
    if shared_table:
        lines += [
            _SHARED.format(cpus=results["machine"]["cpus"], workers=options["workers"]),
            *shared_table,
            "",
        ]
    checks = [[c["metric"], c["target"], c["measured"], c["status"]] for c in target_checks(results)]
    lines += ["### Where we stand against the targets (docs/performance.md)", ""]
    lines += [*_table(["metric", "target", "measured", "status"], checks), ""]
    foreign = results["summary"].get("foreign_cpu") or {}
    if foreign.get("median", 0) > NOISY_SHARE:
        lines += [
            f"Other processes took a median {foreign['median']:.0%} of the machine during this run: ratios "
            "and medians hold up, tail percentiles (p99 and up) do not; read those as upper bounds.",
            "",
        ]
    open_loop = {"seconds": options["latency_duration"], "rounds": options["latency_rounds"]}
    latency_intro = _LATENCY.format(rate=options["rate"], litellm=_litellm_latency_note(results), **open_loop)
    lines += [latency_intro, *_latency_section(results, "latency")]
    lines += [*_plot_line(plots, "latency_cdf", "Latency distribution at light load"), ""]
    if results["summary"]["latency_back_to_back"]:
        lines += [_BACK_TO_BACK.format(seconds=options["duration"] / 2)]
        lines += [*_latency_section(results, "latency_back_to_back"), ""]
    inside = report_overhead.inside_section(results, "nonstream-1k")
    if inside:
        lines += [*inside, ""]
    lines += [_STREAM.format(rate=options["stream_rate"], **open_loop), *_stream_section(results), ""]
    lines += [_MEMORY, *_memory_section(results), ""]
    lines += report_memory.open_streams_section(results, plots.get("open_streams"))
    lines += report_memory.soak_section(results, plots.get("soak"))
    lines += report_overhead.features_section(results)
    lines += [_MICRO, *_micro_section(results), ""]
    ccr_version = results.get("versions", {}).get("claude_code_router") or "2.0.0"
    quiet_wait = options.get("quiet_wait") or 0
    quiet_gate = (
        f"Before each timed run the script waits (at most {quiet_wait:g} s) for a half-second window in "
        "which other processes use at most 10% of the machine."
        if quiet_wait
        else "This run did not wait for quiet moments."
    )
    method = _METHOD.format(
        ccr_version=ccr_version,
        layout=layout,
        quiet_gate=quiet_gate,
        litellm_version=results.get("versions", {}).get("litellm") or LITELLM_VERSION,
        litellm_streams=(results.get("open_streams") or {}).get("litellm_streams", "?"),
    )
    lines += [method, *_machine_lines(results)]
    lines += _skipped_lines(results)
    lines += ["", "## Profiling notes", ""]
    if results.get("profile"):
        lines += [
            "py-spy (non-blocking) on the one-CPU ccr-fast worker while wrk loads it",
            "(`--profile`; not part of the timed runs).",
            *_profile_section(results),
            "",
        ]
    lines += [NOTES_START, notes, NOTES_END, ""] if notes else [NOTES_START, NOTES_END, ""]
    return "\n".join(lines)


def draw_plots(results: dict[str, Any], image_dir: Path) -> tuple[dict[str, str], str]:
    """The figures for the page (written to ``image_dir``), or none and a sentence saying why."""
    try:
        from bench.plots import write_plots

        return write_plots(results, image_dir), ""
    except ImportError:
        return {}, "Plots skipped: matplotlib is not installed (`pip install -e '.[bench]'`)."
    except Exception as exc:  # a figure must not cost the page of a long run
        return {}, f"Plots skipped: drawing them failed ({type(exc).__name__}: {exc})."


def write_docs(results: dict[str, Any], results_path: Path, docs_path: Path = DOCS_PATH) -> None:
    """Write the page, and its figures to ``img/`` next to it."""
    notes = _existing_notes(docs_path)
    docs_path.parent.mkdir(parents=True, exist_ok=True)
    plots, plots_note = draw_plots(results, docs_path.parent / "img")
    docs_path.write_text(render_docs(results, results_path, notes, plots, plots_note))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report", description="Regenerate docs/benchmarks.md."
    )
    parser.add_argument("results", nargs="?", type=Path, help="results JSON (default: the newest full run)")
    parser.add_argument("--docs", type=Path, default=DOCS_PATH)
    args = parser.parse_args(argv)
    path = args.results
    if path is None:
        candidates = sorted(p for p in RESULTS_DIR.glob("*.json") if not p.stem.endswith("-quick"))
        if not candidates:
            parser.error(f"no results in {RESULTS_DIR}")
        path = candidates[-1]
    results = orjson.loads(path.read_bytes())
    results["summary"] = summarize(results)
    write_docs(results, path.resolve(), args.docs)
    print(render_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
