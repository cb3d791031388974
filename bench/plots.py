"""Figures for docs/benchmarks.md (matplotlib, PNG): throughput, latency CDFs, memory per open stream, soak.

matplotlib is an optional dependency (the ``bench`` extra: ``pip install -e '.[bench]'``; ``bench.run``
installs it when missing). Without it :func:`write_plots` raises ``ImportError`` and the page says the
plots were skipped. Every figure is drawn from the results document alone, so ``python -m bench.report``
redraws them from any results file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.order import color, ordered
from bench.scenarios import SCENARIOS

#: file names under the image directory, by figure
FILES = {
    "throughput": "bench-throughput.png",
    "latency_cdf": "bench-latency-cdf.png",
    "open_streams": "bench-memory-open-streams.png",
    "soak": "bench-memory-soak.png",
}


def _title(results: dict[str, Any], key: str) -> str:
    return str(results.get("systems", {}).get(key, {}).get("title", key))


def write_plots(results: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Draw every figure the results have data for into ``out_dir``; returns figure -> file name.

    Raises ImportError when matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for name, draw in (
        ("throughput", _throughput),
        ("latency_cdf", _latency_cdf),
        ("open_streams", _open_streams),
        ("soak", _soak),
    ):
        fig = draw(plt, results)
        if fig is None:
            continue
        fig.tight_layout()
        fig.savefig(out_dir / FILES[name], dpi=100)
        plt.close(fig)
        written[name] = FILES[name]
    return written


def _throughput(plt: Any, results: dict[str, Any]) -> Any:
    table = results["summary"]["throughput"]
    scenarios = ordered([s for s, rows in table.items() if rows], tuple(SCENARIOS))
    systems = ordered(sorted({t for rows in table.values() for t in rows if "@" not in t}))
    if not scenarios or not systems:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        values = [table[s].get(system, {}).get("rps", math.nan) for s in scenarios]
        xs = [x + (i - (len(systems) - 1) / 2) * width for x in range(len(scenarios))]
        bars = ax.bar(xs, values, width, label=_title(results, system), color=color(system))
        for bar, value in zip(bars, values, strict=True):
            if not math.isnan(value):
                ax.annotate(
                    f"{value:,.0f}",
                    (bar.get_x() + bar.get_width() / 2, value),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    titles = results.get("scenarios", {})
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([_wrap(titles.get(s, {}).get("title", s)) for s in scenarios], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("requests per second (log scale)")
    ax.set_title("Throughput, closed loop, one CPU per system (median of rounds)")
    ax.legend(fontsize=8)
    return fig


def _wrap(text: str, width: int = 22) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def _latency_cdf(plt: Any, results: dict[str, Any]) -> Any:
    curves = results["summary"].get("latency_cdf", {})
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for system in ordered(list(curves)):
        points = curves[system]
        ax.plot(
            [p[1] for p in points], [p[0] for p in points], label=_title(results, system), color=color(system)
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("percentile")
    ax.set_ylim(0, 100)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("Latency at light load (open loop), non-stream 1 KB")
    ax.legend(fontsize=8)
    return fig


def _open_streams(plt: Any, results: dict[str, Any]) -> Any:
    data = results.get("open_streams", {}).get("systems", {})
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for system in ordered(list(data)):
        points = data[system].get("points", [])
        if points:
            ax.plot(
                [p["open"] for p in points],
                [p["pss_mb"] for p in points],
                marker="o",
                label=_title(results, system),
                color=color(system),
            )
    ax.set_xlabel("streams open at once")
    ax.set_ylabel("PSS of the process tree (MB)")
    ax.grid(True, alpha=0.3)
    ax.set_title("Memory against open streams (slow upstream)")
    ax.legend(fontsize=8)
    return fig


def _soak(plt: Any, results: dict[str, Any]) -> Any:
    soak = results.get("soak") or {}
    samples = soak.get("samples", [])
    if len(samples) < 2:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.8))
    systems = ordered(sorted({k for s in samples for k in s["memory"]}))
    for system in systems:
        points = [(s["t"] / 60, s["memory"][system]["pss_mb"]) for s in samples if system in s["memory"]]
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker=".",
            label=_title(results, system),
            color=color(system),
        )
    ax.axvline(samples[-1]["t"] / 60 / 2, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("minutes (dashed: end of warm-up, the fit uses what follows)")
    ax.set_ylabel("PSS of the process tree (MB)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Memory over a soak at {soak.get('rate', 0):g} req/s per system")
    ax.legend(fontsize=8)
    return fig
