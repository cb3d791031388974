"""The order systems and feature variants are shown in: tables and figures list them the same way, whatever
order a results file stores them in (it is written with sorted keys)."""

from __future__ import annotations

from collections.abc import Iterable

#: direct first, then ccr-fast's variants, then the peers
SYSTEMS = ("direct", "ccr-fast", "ccr-fast-asgi", "ccr-fast-shared", "ccr", "litellm")
#: the all-off baseline first, then the features in the order bench.features lists them
FEATURES = ("off", "auth", "rate_limit", "redis")


def _key(order: tuple[str, ...]) -> dict[str, int]:
    return {name: index for index, name in enumerate(order)}


def ordered(names: Iterable[str], order: tuple[str, ...] = SYSTEMS) -> list[str]:
    """``names`` in ``order`` (``@shared`` targets after their pinned twin), unknown ones last by name."""
    rank = _key(order)

    def key(name: str) -> tuple[int, bool, str]:
        base, _, layout = name.partition("@")
        return (rank.get(base, len(rank)), bool(layout), name)

    return sorted(names, key=key)


def color(system: str) -> str:
    """One matplotlib colour per system, the same in every figure."""
    base = system.partition("@")[0]
    return f"C{_key(SYSTEMS).get(base, len(SYSTEMS)) % 10}"
