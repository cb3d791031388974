"""Straight lines through memory samples: per-1k-stream slopes and growth after warm-up."""

from __future__ import annotations

import math

import pytest
from bench.trend import growth, linear_fit, per_thousand


def test_linear_fit() -> None:
    slope, intercept = linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert slope == pytest.approx(2.0) and intercept == pytest.approx(1.0)
    slope, _ = linear_fit([0, 1, 2, 3], [0, 1, 0, 1])  # noise around a slight rise
    assert slope == pytest.approx(0.2)
    assert all(math.isnan(v) for v in linear_fit([1], [1]))
    assert all(math.isnan(v) for v in linear_fit([2, 2], [1, 5]))
    with pytest.raises(ValueError):
        linear_fit([1, 2], [1])


def test_per_thousand_streams() -> None:
    # 60 MB idle, +0.012 MB per stream: 12 MB per 1,000 whatever the step sizes
    points = [(n, 60 + 0.012 * n) for n in (0, 200, 400, 1000)]
    assert per_thousand(points) == pytest.approx(12.0)


def test_growth_ignores_warm_up_and_fits_the_second_half() -> None:
    # fast growth during the first 100 s (warm-up), then flat with small noise
    samples = [(t, 50 + min(t, 100) * 0.1 + (0.05 if (t // 10) % 2 else 0)) for t in range(0, 401, 10)]
    out = growth(samples)
    assert out["start_mb"] == 50 and out["peak_mb"] == pytest.approx(60.05)
    assert out["fit_seconds"] == 200 and out["fit_samples"] == 21
    assert abs(out["growth_mb"]) < 0.05
    # a steady leak of 1 MB per minute after warm-up
    leak = [(t, 80 + t / 60) for t in range(0, 601, 5)]
    out = growth(leak)
    assert out["mb_per_hour"] == pytest.approx(60.0)
    assert out["growth_mb"] == pytest.approx(5.0)
    assert growth([(0, 1.0)]) == {"samples": 1.0}
