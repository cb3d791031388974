"""Prometheus histograms read from a ``/metrics`` scrape: the overhead a server measures from inside.

ccr-fast exports ``ccr_overhead_us``, its own cost per request (total time minus time waiting on the
upstream), as a histogram per route. A scrape before and after a timed phase, subtracted, gives the
histogram of that phase alone; percentiles are estimated from its buckets the way Prometheus'
``histogram_quantile`` does (linear inside the bucket that holds the rank), and the mean is exact (``_sum``
over ``_count``). Everything here is pure: text in, numbers out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: ccr-fast's server-side overhead histogram, in µs (``src/ccr_fast/observe/prometheus.py``)
OVERHEAD_FAMILY = "ccr_overhead_us"

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (one per upper bound, the last one ``+Inf``), their sum and count."""

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    total: float
    count: float

    def minus(self, earlier: Histogram) -> Histogram:
        """What was observed between ``earlier`` and this scrape (same buckets required)."""
        if earlier.bounds != self.bounds:
            raise ValueError(f"bucket bounds differ: {earlier.bounds} and {self.bounds}")
        return Histogram(
            self.bounds,
            tuple(a - b for a, b in zip(self.cumulative, earlier.cumulative, strict=True)),
            self.total - earlier.total,
            self.count - earlier.count,
        )

    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else math.nan

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0 to 1) estimated like ``histogram_quantile``: linear within the bucket
        that holds rank ``q * count``, from the previous bound (0 for the first bucket). A rank in the
        ``+Inf`` bucket gives the highest finite bound: the histogram cannot say more. NaN when empty."""
        if not self.count > 0 or not 0 <= q <= 1:
            return math.nan
        rank = q * self.count
        lower, below = 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.cumulative, strict=True):
            if cumulative >= rank and cumulative > below:
                if math.isinf(bound):
                    return lower
                return lower + (bound - lower) * (rank - below) / (cumulative - below)
            if not math.isinf(bound):
                lower = bound
            below = cumulative
        return lower

    def to_json(self) -> dict[str, Any]:
        return {
            "bounds": [b if not math.isinf(b) else "+Inf" for b in self.bounds],
            "cumulative": list(self.cumulative),
            "sum": self.total,
            "count": self.count,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        bounds = tuple(math.inf if b == "+Inf" else float(b) for b in data["bounds"])
        return cls(
            bounds, tuple(float(c) for c in data["cumulative"]), float(data["sum"]), float(data["count"])
        )


def _labels(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    return {m["key"]: m["value"].replace('\\"', '"').replace("\\\\", "\\") for m in _LABEL.finditer(text)}


def _bound(text: str) -> float:
    return math.inf if text == "+Inf" else float(text)


def parse_histogram(text: str, family: str, match: dict[str, str] | None = None) -> Histogram | None:
    """``family`` from a Prometheus text scrape, summed over every label set that has all the labels in
    ``match`` (all label sets by default). None when the scrape has no sample of it."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    seen = False
    for line in text.splitlines():
        if not line.startswith(family):
            continue
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        labels = _labels(sample["labels"])
        if match and any(labels.get(k) != v for k, v in match.items()):
            continue
        name, value = sample["name"], float(sample["value"])
        if name == f"{family}_bucket" and "le" in labels:
            bound = _bound(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
            seen = True
        elif name == f"{family}_sum":
            total += value
        elif name == f"{family}_count":
            count += value
    if not seen:
        return None
    bounds = tuple(sorted(buckets))
    return Histogram(bounds, tuple(buckets[b] for b in bounds), total, count)


def summarize(histograms: Iterable[Histogram | dict[str, Any]]) -> dict[str, float]:
    """Count, mean and estimated p50/p90/p99 of several histograms added together (JSON or objects)."""
    merged: Histogram | None = None
    for item in histograms:
        h = Histogram.from_json(item) if isinstance(item, dict) else item
        if merged is None:
            merged = h
        else:
            merged = Histogram(
                h.bounds,
                tuple(a + b for a, b in zip(merged.cumulative, h.cumulative, strict=True)),
                merged.total + h.total,
                merged.count + h.count,
            )
    if merged is None or not merged.count > 0:
        return {"count": 0.0}
    return {
        "count": merged.count,
        "mean": merged.mean(),
        "p50": merged.quantile(0.5),
        "p90": merged.quantile(0.9),
        "p99": merged.quantile(0.99),
    }


def counter_total(text: str, name: str) -> float:
    """The sum of every sample of counter ``name`` in a Prometheus text scrape (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        sample = _SAMPLE.match(line)
        if sample is not None and sample["name"] == name:
            total += float(sample["value"])
    return total
