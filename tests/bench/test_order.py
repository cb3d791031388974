"""Systems and feature variants are listed in one fixed order, whatever order a results file has."""

from __future__ import annotations

from bench.order import FEATURES, color, ordered


def test_systems_in_display_order() -> None:
    stored = [
        "litellm",
        "ccr@shared",
        "ccr",
        "ccr-fast@shared",
        "direct",
        "ccr-fast",
        "nginx",
        "ccr-fast-asgi",
    ]
    assert ordered(stored) == [
        "direct",
        "ccr-fast",
        "ccr-fast@shared",
        "ccr-fast-asgi",
        "ccr",
        "ccr@shared",
        "litellm",
        "nginx",
    ]
    assert ordered(["redis", "auth", "off", "rate_limit"], FEATURES) == ["off", "auth", "rate_limit", "redis"]


def test_one_colour_per_system_in_every_layout() -> None:
    assert color("ccr") == color("ccr@shared")
    assert len({color(s) for s in ("direct", "ccr-fast", "ccr-fast-asgi", "ccr", "litellm")}) == 5
