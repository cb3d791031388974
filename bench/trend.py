"""Straight lines through memory samples: MB per 1k open streams, and growth over a soak after warm-up.

Pure functions over ``(x, y)`` pairs; the memory phases (:mod:`bench.memload`) collect the samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)``; NaNs for fewer than two points or all ``xs`` equal."""
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} x values and {len(ys)} y values")
    n = len(xs)
    if n < 2:
        return math.nan, math.nan
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return math.nan, math.nan
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, mean_y - slope * mean_x


def per_thousand(points: Sequence[tuple[float, float]]) -> float:
    """MB per 1,000 open streams from ``(open streams, MB)`` points: the fitted slope times 1,000."""
    slope, _ = linear_fit([p[0] for p in points], [p[1] for p in points])
    return slope * 1000


def growth(samples: Sequence[tuple[float, float]], warmup_share: float = 0.5) -> dict[str, float]:
    """Memory growth after warm-up from ``(seconds, MB)`` samples in time order.

    The first ``warmup_share`` of the run (by time) is warm-up; a straight line through the rest gives the
    growth rate (``mb_per_hour``) and the growth over that stretch (``growth_mb``, fitted end minus fitted
    start), which a few noisy samples move far less than the difference of two of them would.
    """
    if len(samples) < 2:
        return {"samples": float(len(samples))}
    first, last = samples[0][0], samples[-1][0]
    cut = first + (last - first) * warmup_share
    tail = [s for s in samples if s[0] >= cut]
    slope, _ = linear_fit([s[0] for s in tail], [s[1] for s in tail])
    span = tail[-1][0] - tail[0][0] if tail else 0.0
    return {
        "samples": float(len(samples)),
        "fit_samples": float(len(tail)),
        "start_mb": samples[0][1],
        "warm_mb": tail[0][1] if tail else math.nan,
        "end_mb": samples[-1][1],
        "peak_mb": max(s[1] for s in samples),
        "fit_seconds": span,
        "growth_mb": slope * span,
        "mb_per_hour": slope * 3600,
    }
