"""The overhead sections of the report: ccr-fast's own overhead histogram, and the cost of each feature.

Summaries (medians, histogram estimates, differences) and the Markdown of both sections; called by
:mod:`bench.report`, which owns the page.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

from bench import histogram, order

#: performance.md: each feature may add at most this much at p99 (µs), plus a Redis round trip for Redis
FEATURE_P99_US = 50.0


def _median(values: Iterable[float | None]) -> float:
    data = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(data) if data else math.nan


def _us(value: float, *, signed: bool = False) -> str:
    if math.isnan(value):
        return "—"
    return f"{value:+.0f} µs" if signed else f"{value:.0f} µs"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


# --------------------------------------------------------------------------- inside overhead


def summarize_inside(results: dict[str, Any]) -> dict[str, Any]:
    """Per scenario and target: the overhead histogram of the open-loop runs and of the back-to-back runs,
    all rounds added together (count, mean, estimated p50/p90/p99, in µs)."""
    out: dict[str, Any] = {}
    for scenario, by_target in results.get("inside_overhead", {}).items():
        rows: dict[str, Any] = {}
        for target, rounds in by_target.items():
            rows[target] = {
                run: histogram.summarize(r[run] for r in rounds if r.get(run))
                for run in ("open_loop", "back_to_back")
            }
        out[scenario] = rows
    return out


_INSIDE = """\
### Overhead from inside

ccr-fast measures its own overhead per request: the time from the handler's start to the end of the
response minus the time spent waiting on the upstream (connecting, headers, every chunk), exported as the
histogram `{family}` in `/metrics`. It was scraped before and after each run above and the difference kept,
so it covers exactly those requests (warm-up requests included). Percentiles are estimated from the
buckets (50, 100, 250, 500, 1000, 2500 µs, ...) as Prometheus' `histogram_quantile` does, so they are
coarse; the mean (`_sum` / `_count`) is exact. The inside view starts at the request handler: the HTTP
server (Granian), the socket calls and the wake-ups of an idle process, which the outside view ("added",
from the tables above) includes, are not in it.
"""


def inside_section(results: dict[str, Any], scenario: str) -> list[str]:
    summary = results["summary"]
    inside = summary.get("inside_overhead", {}).get(scenario, {})
    if not inside:
        return []
    rows = []
    for target in order.ordered(inside):
        runs = inside[target]
        for run, section, label in (
            ("open_loop", "latency", "open loop"),
            ("back_to_back", "latency_back_to_back", "back to back"),
        ):
            data = runs.get(run) or {}
            if not data.get("count"):
                continue
            outside = summary.get(section, {}).get(scenario, {}).get(target, {}).get("added_latency_ms", {})
            rows.append(
                [
                    str(results.get("systems", {}).get(target, {}).get("title", target)),
                    label,
                    f"{data['count']:.0f}",
                    _us(data["mean"]),
                    _us(data["p50"]),
                    _us(data["p90"]),
                    _us(data["p99"]),
                    _us(outside.get("p50", math.nan) * 1e3, signed=True),
                    _us(outside.get("p99", math.nan) * 1e3, signed=True),
                ]
            )
    header = [
        "system",
        "run",
        "requests",
        "inside mean",
        "inside p50",
        "inside p90",
        "inside p99",
        "outside: added p50",
        "outside: added p99",
    ]
    return [_INSIDE.format(family=histogram.OVERHEAD_FAMILY), *_table(header, rows)]


# --------------------------------------------------------------------------- per-feature cost


def summarize_features(results: dict[str, Any]) -> dict[str, Any]:
    """Per feature: medians over rounds of the back-to-back percentiles, the inside histogram of all
    rounds, and both minus the all-off variant's (µs)."""
    features = results.get("features") or {}
    rows: dict[str, Any] = {}
    for key, variant in features.get("variants", {}).items():
        rounds = variant.get("rounds", [])
        inside = histogram.summarize(r["inside"] for r in rounds if r.get("inside"))
        rows[key] = {
            "title": variant.get("title", key),
            "requests": sum(r.get("requests", 0) for r in rounds),
            "errors": sum(r.get("errors", 0) for r in rounds),
            "rate_limited": sum(r.get("rate_limited", 0) for r in rounds),
            "p50_us": _median(r.get("latency_ms", {}).get("p50") for r in rounds) * 1e3,
            "p99_us": _median(r.get("latency_ms", {}).get("p99") for r in rounds) * 1e3,
            "inside_mean_us": inside.get("mean", math.nan),
            "inside_p50_us": inside.get("p50", math.nan),
            "inside_p99_us": inside.get("p99", math.nan),
        }
    base = rows.get("off")
    if base is not None:
        for key, row in rows.items():
            if key == "off":
                continue
            for field in ("p50_us", "p99_us", "inside_mean_us", "inside_p50_us", "inside_p99_us"):
                row[f"added_{field}"] = row[field] - base[field]
    redis = features.get("redis") or {}
    if "redis" in rows and redis.get("ping"):
        rows["redis"]["round_trip_p99_us"] = redis["ping"]["p99_ms"] * 1e3
        commands = redis.get("commands")
        requests = redis.get("requests") or rows["redis"]["requests"]
        if commands is not None and commands >= 0 and requests:
            rows["redis"]["commands_per_request"] = commands / requests
    return rows


def feature_allowance_us(key: str, row: dict[str, Any]) -> float:
    """What a feature may add at p99: 50 µs, plus Redis' own round trip for the Redis variant."""
    return FEATURE_P99_US + (row.get("round_trip_p99_us", 0.0) if key == "redis" else 0.0)


def feature_status(key: str, row: dict[str, Any]) -> str:
    added = row.get("added_p99_us", math.nan)
    if math.isnan(added):
        return "not measured"
    if row.get("errors") or row.get("rate_limited"):
        return "errors"
    if added < 0:
        return "inconclusive (noise)"
    return "met" if added <= feature_allowance_us(key, row) else "not met"


def feature_check_text(summary: dict[str, Any], not_timed: dict[str, str]) -> tuple[str, str]:
    """The "where we stand" cell for the feature row and its status: met when every timed feature met
    the target, not met when one did not, else the status they share (errors, noise, not measured)."""
    rows = summary.get("features", {})
    parts = []
    statuses = []
    for key in order.ordered(rows, order.FEATURES):
        row = rows[key]
        if key == "off":
            continue
        extra = ""
        if key == "redis" and "round_trip_p99_us" in row:
            extra = f" (Redis round trip p99 {row['round_trip_p99_us']:.0f} µs)"
        parts.append(
            f"{row['title'].split(' (')[0]} {_us(row.get('added_p99_us', math.nan), signed=True)}{extra}"
        )
        statuses.append(feature_status(key, row))
    if not parts:
        return "", "not measured"
    text = "; ".join(parts) + " (added p99, back to back)"
    if not_timed:
        text += "; " + "; ".join(f"{name}: {why}" for name, why in not_timed.items())
    for status in ("errors", "not met"):
        if status in statuses:
            return text, status
    if "met" in statuses:
        return text, "met"
    return text, statuses[0]


_FEATURES = """\
## Cost of each feature

One ccr-fast instance per variant (RSGI, one worker on the system-under-test CPU, the same config plus one
feature), timed interleaved for {rounds} round(s): the non-stream 1 KB request back to back on one
connection for {seconds:g} s, ccr-fast's overhead histogram scraped before and after. "Added" is the
variant's number minus the all-off variant's (medians over rounds); the target is at most {target:g} µs at
p99 per feature, plus a Redis round trip for Redis. Differences of a few µs are within the noise of these
machines; the inside mean is the steadiest number. Authentication runs before the overhead timer starts, so
only the outside view sees it.
"""


def features_section(results: dict[str, Any]) -> list[str]:
    features = results.get("features") or {}
    rows = results["summary"].get("features", {})
    if not rows:
        reason = features.get("skipped") or "not run in this run"
        return ["## Cost of each feature", "", f"Not measured: {reason}.", ""]
    options = features.get("options", {})
    lines = [
        _FEATURES.format(
            rounds=options.get("rounds", "?"),
            seconds=options.get("duration", 0),
            target=FEATURE_P99_US,
        ),
    ]
    table = []
    for key in order.ordered(rows, order.FEATURES):
        row = rows[key]
        errors = f"{row['requests']} / {row['errors']}"
        if row.get("rate_limited"):
            errors += f" ({row['rate_limited']} rate-limited)"
        table.append(
            [
                row["title"],
                errors,
                _us(row["p50_us"]),
                _us(row["p99_us"]),
                _us(row.get("added_p50_us", math.nan), signed=True),
                _us(row.get("added_p99_us", math.nan), signed=True),
                _us(row["inside_mean_us"]),
                _us(row.get("added_inside_mean_us", math.nan), signed=True),
                "—" if key == "off" else feature_status(key, row),
            ]
        )
    header = [
        "variant",
        "requests / errors",
        "p50",
        "p99",
        "added p50",
        "added p99",
        "inside mean",
        "added inside mean",
        f"≤ {FEATURE_P99_US:g} µs p99",
    ]
    lines += _table(header, table)
    redis_row = rows.get("redis")
    if redis_row is not None and "round_trip_p99_us" in redis_row:
        ping = features.get("redis", {}).get("ping", {})
        per_request = redis_row.get("commands_per_request")
        processed = (
            f"; Redis processed {per_request:.2f} commands per request of that variant" if per_request else ""
        )
        p50, p99 = (_us(ping.get(q, math.nan) * 1e3) for q in ("p50_ms", "p99_ms"))
        lines += [
            "",
            f"Redis: a bare `PING` round trip from this machine takes {p50} (p50), {p99} (p99){processed}.",
        ]
    skipped = features.get("skipped_variants") or {}
    not_timed = features.get("not_timed") or {}
    if skipped or not_timed:
        lines += ["", "Not timed:"]
        lines += [f"- {name}: {why}" for name, why in {**skipped, **not_timed}.items()]
    return [*lines, ""]
