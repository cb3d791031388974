"""A strict reader of the Prometheus text format 0.0.4, for tests.

``prometheus_client``'s parser is lenient (it accepts samples without a ``# TYPE``, duplicate series, and
buckets out of order); this one fails on each of those, so the tests hold the output to the format.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
_SAMPLE = re.compile(rf"({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? (\S+)")
_HELP = re.compile(rf"# HELP ({_NAME}) (.*)")
_TYPE = re.compile(rf"# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)")
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    name: str
    type: str
    help: str
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def _value(text: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    assert re.fullmatch(r"-?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?", text), f"bad value {text!r}"
    return float(text)


def parse(text: str) -> dict[str, Family]:
    """Families by name; raises AssertionError on anything the format does not allow."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, Family] = {}
    current: Family | None = None
    pending_help: tuple[str, str] | None = None
    for line in text[:-1].split("\n"):
        if match := _HELP.fullmatch(line):
            assert match.group(1) not in families, f"family {match.group(1)} declared twice"
            pending_help = (match.group(1), match.group(2))
            continue
        if match := _TYPE.fullmatch(line):
            name = match.group(1)
            assert pending_help is not None and pending_help[0] == name, f"TYPE of {name} without its HELP"
            current = families[name] = Family(name, match.group(2), pending_help[1])
            pending_help = None
            continue
        match = _SAMPLE.fullmatch(line)
        assert match is not None, f"not a sample line: {line!r}"
        assert current is not None, f"sample before any TYPE: {line!r}"
        name = match.group(1)
        allowed = [current.name + suffix for suffix in _SUFFIXES.get(current.type, ("",))]
        assert name in allowed, f"{name} is not part of family {current.name} ({current.type})"
        labels = tuple((key, _unescape(value)) for key, value in re.findall(_LABEL, match.group(2) or ""))
        assert len({key for key, _ in labels}) == len(labels), f"repeated label in {line!r}"
        key = (name, labels)
        assert key not in current.samples, f"duplicate series {line!r}"
        current.samples[key] = _value(match.group(match.lastindex or 0))
    for family in families.values():
        if family.type == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    series: dict[Labels, list[tuple[float, float]]] = {}
    for (name, labels), value in family.samples.items():
        if name.endswith("_bucket"):
            rest = tuple(item for item in labels if item[0] != "le")
            le = dict(labels)["le"]
            series.setdefault(rest, []).append((_value(le), value))
    for labels, buckets in series.items():
        bounds = [bound for bound, _ in buckets]
        assert bounds == sorted(bounds) and bounds[-1] == math.inf, f"{family.name}{labels}: bad le order"
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), f"{family.name}{labels}: buckets are not cumulative"
        assert family.samples[(family.name + "_count", labels)] == counts[-1], "+Inf bucket != _count"
        assert (family.name + "_sum", labels) in family.samples


def value(families: dict[str, Family], family: str, sample: str | None = None, **labels: str) -> float:
    """The value of one sample (``sample`` defaults to the family name)."""
    wanted = sorted(labels.items())
    for (name, have), found in families[family].samples.items():
        if name == (sample or family) and sorted(have) == wanted:
            return found
    raise KeyError((family, sample, labels))
