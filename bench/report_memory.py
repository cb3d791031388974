"""The memory sections of the report: memory per open stream, and memory over a soak.

Summaries (fitted slopes, growth after warm-up) and the Markdown of both sections; called by
:mod:`bench.report`, which owns the page.
"""

from __future__ import annotations

import math
from typing import Any

from bench import trend
from bench.order import ordered

#: performance.md: memory per 1,000 concurrent open streams
OPEN_STREAMS_TARGET_MB = 20.0
#: "~0 after warm-up": growth over the fitted second half of the soak below this counts as none
SOAK_GROWTH_MB = 1.0


def _mb(value: float, digits: int = 0) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def span(seconds: float) -> str:
    """``45 s`` below two minutes, else ``3 min`` or ``7.5 min``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f}".removesuffix(".0") + " min"


def _pair(data: dict[str, Any] | None) -> str:
    if not data:
        return "—"
    return f"{_mb(data.get('rss_mb', math.nan))} / {_mb(data.get('pss_mb', math.nan))}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _title(results: dict[str, Any], key: str) -> str:
    return str(results.get("systems", {}).get(key, {}).get("title", key))


# --------------------------------------------------------------------------- open streams


def summarize_open_streams(results: dict[str, Any]) -> dict[str, Any]:
    """Per system: MB per 1,000 open streams (slope through the points, PSS and RSS), what it reached."""
    out: dict[str, Any] = {}
    for system, run in (results.get("open_streams") or {}).get("systems", {}).items():
        points = run.get("points", [])
        if "skipped" in run or not points:
            out[system] = {"skipped": run.get("skipped", "no samples")}
            continue
        top = max(points, key=lambda p: p["open"])
        out[system] = {
            "opened": top["open"],
            "requested": run.get("requested", 0),
            "errors": run.get("errors", 0),
            "per_1k_pss_mb": trend.per_thousand([(p["open"], p["pss_mb"]) for p in points]),
            "per_1k_rss_mb": trend.per_thousand([(p["open"], p["rss_mb"]) for p in points]),
            "before": run.get("before"),
            "top": {"rss_mb": top["rss_mb"], "pss_mb": top["pss_mb"]},
            "after": run.get("after"),
            "upstream_closed": run.get("upstream_closed"),
        }
    return out


_OPEN_STREAMS = """\
## Memory per open stream

Streams opened through each system at up to {ramp:g} per second, each on a connection of its own, to the
`hold` mock (first chunk after 100 ms, then one chunk a second for 100 s), up to {requested} streams in
{steps} steps; nothing pinned. After each step, once every stream had delivered content, the RSS and PSS of
the system's process tree were read. "Per 1k" is the slope of a straight line through those points times
1,000 (PSS; RSS in brackets); "after" is a few seconds after the client closed every stream, and
"upstream closed" counts the streams the mock saw its client (the proxy) leave by then. For the
streams to be open at once, ccr-fast ran with `UPSTREAM_POOL_SIZE` {pool} (the default, 256, caps
connections per provider) and the benchmark raised its open-file limit to {nofile} (the servers inherit
it).{litellm}
"""


def open_streams_section(results: dict[str, Any], plot: str | None) -> list[str]:
    data = results.get("open_streams") or {}
    rows_in = results["summary"].get("open_streams", {})
    if not rows_in:
        reason = data.get("skipped") or "not run in this run"
        return ["## Memory per open stream", "", f"Not measured: {reason}.", ""]
    litellm = ""
    if "litellm" in rows_in and data.get("litellm_streams"):
        litellm = (
            f" LiteLLM was given at most {data['litellm_streams']} streams, to keep its run short: it "
            "serves a few dozen requests a second."
        )
    lines = [
        _OPEN_STREAMS.format(
            ramp=data.get("ramp_rate", 0),
            requested=data.get("streams", 0),
            steps=data.get("steps", 0),
            pool=data.get("pool_size", "?"),
            nofile=data.get("nofile", "?"),
            litellm=litellm,
        )
    ]
    rows = []
    for system in ordered(rows_in):
        row = rows_in[system]
        if "skipped" in row:
            rows.append([_title(results, system), row["skipped"], "", "", "", "", "", ""])
            continue
        rows.append(
            [
                _title(results, system),
                f"{row['opened']} / {row['requested']}",
                str(row["errors"]),
                _pair(row["before"]),
                _pair(row["top"]),
                f"{_mb(row['per_1k_pss_mb'], 1)} ({_mb(row['per_1k_rss_mb'], 1)})",
                _pair(row["after"]),
                "—"
                if row.get("upstream_closed") is None
                else f"{row['upstream_closed']} / {row['requested']}",
            ]
        )
    header = [
        "system",
        "streams open / requested",
        "errors",
        "before RSS / PSS (MB)",
        "all open RSS / PSS (MB)",
        "MB per 1k open streams",
        "after closing RSS / PSS (MB)",
        "upstream closed",
    ]
    lines += _table(header, rows)
    if plot:
        lines += ["", f"![Memory against open streams](img/{plot})"]
    return [*lines, ""]


def open_streams_check(summary: dict[str, Any]) -> tuple[float, str]:
    """ccr-fast's MB per 1k open streams (PSS) and the text for the "where we stand" table."""
    row = summary.get("open_streams", {}).get("ccr-fast", {})
    value = row.get("per_1k_pss_mb", math.nan)
    if math.isnan(value):
        return value, ""
    return value, f"{value:.1f} MB (PSS; {row['opened']} streams open)"


# --------------------------------------------------------------------------- soak


def summarize_soak(results: dict[str, Any]) -> dict[str, Any]:
    """Per system: growth after warm-up (PSS and RSS), requests and errors."""
    soak = results.get("soak") or {}
    samples = soak.get("samples", [])
    out: dict[str, Any] = {}
    for system, totals in soak.get("totals", {}).items():
        series = [(s["t"], s["memory"][system]) for s in samples if system in s["memory"]]
        out[system] = {
            "requests": totals.get("requests", 0),
            "errors": totals.get("errors", 0),
            "pss": trend.growth([(t, m["pss_mb"]) for t, m in series]),
            "rss": trend.growth([(t, m["rss_mb"]) for t, m in series]),
        }
    return out


_SOAK = """\
## Memory over a soak

{rate:g} requests a second to each of {systems} at once for {duration}, open loop, nothing pinned,
alternating {mix}; the RSS and PSS of each process tree sampled every {interval:g} s. The first half of the
run is warm-up; "growth" is from a straight line through the second half (fitted end minus fitted start,
and the same slope per hour). "~0" in the target table means under {limit:g} MB over that stretch.
"""


def soak_section(results: dict[str, Any], plot: str | None) -> list[str]:
    soak = results.get("soak") or {}
    rows_in = results["summary"].get("soak", {})
    if not rows_in:
        reason = soak.get("skipped") or "not run in this run (`--soak-seconds 0`)"
        return ["## Memory over a soak", "", f"Not measured: {reason}.", ""]
    lines = [
        _SOAK.format(
            rate=soak.get("rate", 0),
            systems=", ".join(_title(results, s) for s in ordered(rows_in)),
            duration=span(soak.get("duration", 0)),
            mix=soak.get("mix", "requests"),
            interval=soak.get("interval", 0),
            limit=SOAK_GROWTH_MB,
        )
    ]
    rows = []
    for system in ordered(rows_in):
        row = rows_in[system]
        pss, rss = row["pss"], row["rss"]
        rows.append(
            [
                _title(results, system),
                f"{row['requests']} / {row['errors']}",
                f"{_mb(pss.get('start_mb', math.nan))} → {_mb(pss.get('end_mb', math.nan))} "
                f"(peak {_mb(pss.get('peak_mb', math.nan))})",
                f"{pss.get('growth_mb', math.nan):+.2f} MB over {span(pss.get('fit_seconds', 0))}",
                f"{pss.get('mb_per_hour', math.nan):+.1f}",
                f"{rss.get('growth_mb', math.nan):+.2f} MB ({rss.get('mb_per_hour', math.nan):+.1f} MB/h)",
            ]
        )
    header = [
        "system",
        "requests / errors",
        "PSS start → end (MB)",
        "PSS growth after warm-up",
        "PSS MB per hour",
        "RSS growth after warm-up",
    ]
    lines += _table(header, rows)
    if plot:
        lines += ["", f"![Memory over the soak](img/{plot})"]
    return [*lines, ""]


def soak_check(results: dict[str, Any]) -> tuple[float, str]:
    """ccr-fast's PSS growth after warm-up and the text for the "where we stand" table."""
    row = results["summary"].get("soak", {}).get("ccr-fast", {})
    pss = row.get("pss", {})
    growth = pss.get("growth_mb", math.nan)
    if math.isnan(growth):
        return growth, ""
    duration = span((results.get("soak") or {}).get("duration", 0))
    text = (
        f"{growth:+.2f} MB over the last {span(pss['fit_seconds'])} "
        f"({pss['mb_per_hour']:+.1f} MB/h) of a {duration} soak"
    )
    return growth, text
