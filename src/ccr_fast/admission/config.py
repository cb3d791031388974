"""The ``RateLimit`` and ``Queue`` config sections, read into frozen dataclasses.

Both are ccr-fast's own top-level keys and follow the project's rules for them (the same reader as the
resilience sections): a wrong value is an error naming its key path, an unknown key is a warning, every
problem is reported at once, and numbers written as strings (from ``"$ENV"`` interpolation) are accepted.

Every rate is "N per period" with room for one period's worth at once: ``requestsPerMinute: 60`` lets 60
requests through together after a quiet minute, then one per second.  That is the token bucket most
gateways and most upstreams use; a limit that must also stay smooth gets a ``requestsPerSecond`` beside it.
``docs/rate-limits.md`` documents the sections for users.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from ccr_fast.admission.ipfilter import IPNetwork, parse_network
from ccr_fast.config.errors import Problem
from ccr_fast.config.reader import FRACTION_HINT, Reader, child, describe

__all__ = [
    "CONFIG_KEYS",
    "AdmissionConfig",
    "Backpressure",
    "Limits",
    "Overflow",
    "PressureAction",
    "QueueConfig",
    "Rate",
    "RateLimitConfig",
]

#: The top-level config keys this package reads.
CONFIG_KEYS: Final = frozenset({"RateLimit", "Queue"})

_REQUEST_KEYS: Final = ("requestsPerSecond", "requestsPerMinute")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
#: bounds of a rate's count: below one per 1000 periods is a mistake, and the GCRA steps must fit in 62 bits
_MIN_COUNT: Final = 0.001
_MAX_COUNT: Final = 1e9
_DEFAULT_HEADER: Final = "x-ccr-priority"
_DEFAULT_LEVELS: Final = ("high", "normal", "low")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` units per ``period`` seconds, with room for one period's worth (at least 1) at once."""

    count: float
    period: float
    unit: str = "requests"

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def burst(self) -> int:
        return max(1, int(self.count))

    def __str__(self) -> str:
        period = "second" if self.period == 1.0 else "minute"
        unit = self.unit.removesuffix("s") if self.count == 1 else self.unit
        return f"{self.count:g} {unit} per {period}"


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits on one thing (the gateway, a session, an IP, an API key, a provider); unset = no limit.

    ``tokens`` is a session's or key's ``tokenBudget`` (charged from real usage after each response) or a
    provider's ``tokensPerMinute`` (reserved from the request's estimate before it is sent).
    """

    per_second: Rate | None = None
    per_minute: Rate | None = None
    tokens: Rate | None = None

    @property
    def requests(self) -> tuple[Rate, ...]:
        return tuple(rate for rate in (self.per_second, self.per_minute) if rate is not None)

    def __bool__(self) -> bool:
        return self.per_second is not None or self.per_minute is not None or self.tokens is not None

    def overridden_by(self, other: Limits) -> Limits:
        """These limits with every limit ``other`` sets replaced by ``other``'s."""
        return Limits(
            other.per_second or self.per_second,
            other.per_minute or self.per_minute,
            other.tokens or self.tokens,
        )


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """``RateLimit``."""

    global_limits: Limits = Limits()
    per_session: Limits = Limits()
    per_ip: Limits = Limits()
    blacklist: tuple[IPNetwork, ...] = ()
    whitelist: tuple[IPNetwork, ...] = ()
    #: IPv6 clients are limited per network of this many bits
    ipv6_prefix: int = 64
    #: limits on every API key, and per key id (each replaces the matching default)
    per_key: Limits = Limits()
    key_overrides: Mapping[str, Limits] = field(default_factory=lambda: _EMPTY)
    #: provider name, or "provider,model" for one model of it -> the upstream's own limits, kept by waiting
    providers: Mapping[str, Limits] = field(default_factory=lambda: _EMPTY)

    @property
    def client_limits(self) -> bool:
        """Whether anything is checked before routing (``AdmissionController.check_client``)."""
        return bool(
            self.global_limits
            or self.per_session
            or self.per_ip
            or self.blacklist
            or self.per_key
            or any(self.key_overrides.values())
        )


class Overflow(enum.Enum):
    """What a request does when its provider is at its limit."""

    #: wait in the queue for a slot, up to ``timeoutMs``
    QUEUE = "queue"
    #: 429 at once, with the provider's wait as ``retry-after``
    REJECT = "reject"
    #: go to the first of ``spilloverProviders`` with room; wait in the queue when none has any
    SPILLOVER = "spillover"


class PressureAction(enum.Enum):
    """What happens to new requests for rate-limited providers while the queue is past its threshold."""

    #: pause each one, longer as the queue fills (up to ``delayMs`` when full), then carry on
    SLOW = "slow"
    #: refuse them with 529, except those of the highest priority level
    REJECT = "reject"
    #: send them to ``redirectTo`` when it has room
    REDIRECT = "redirect"


@dataclass(frozen=True, slots=True)
class Backpressure:
    """``Queue.backpressure``."""

    threshold: float = 0.8
    action: PressureAction = PressureAction.SLOW
    redirect_to: str | None = None
    #: seconds a ``slow`` pause lasts when the queue is full (it grows from 0 at the threshold)
    max_delay: float = 1.0


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """``Queue``."""

    #: requests waiting at once, across every worker
    max_size: int = 1000
    #: seconds a request may wait
    timeout: float = 30.0
    priority_header: str = _DEFAULT_HEADER
    #: priority levels, highest first
    levels: tuple[str, ...] = _DEFAULT_LEVELS
    default_level: str = "normal"
    #: API key id -> the highest level its requests may ask for (and get without asking)
    key_priorities: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    overflow: Overflow = Overflow.QUEUE
    #: "provider,model" routes, tried in order on overflow ``spillover``
    spillover: tuple[str, ...] = ()
    backpressure: Backpressure | None = None


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    rate_limit: RateLimitConfig = RateLimitConfig()
    queue: QueueConfig = QueueConfig()
    #: unknown keys and likely mistakes found in these sections
    warnings: tuple[Problem, ...] = ()

    @property
    def enabled(self) -> bool:
        """Whether admission does anything at all (when not, the gateway can skip it)."""
        limits = self.rate_limit
        return limits.client_limits or any(limits.providers.values())

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> AdmissionConfig:
        """Read ``RateLimit`` and ``Queue`` from the raw config; ``ConfigError`` lists every problem."""
        reader = Reader()
        known = _provider_names(raw)
        rate_limit = _rate_limit(reader, raw.get("RateLimit"), known)
        queue = _queue(reader, raw.get("Queue"), known)
        keys = _key_names(raw)
        for path, names in (
            ("RateLimit.perKey.keys", rate_limit.key_overrides),
            ("Queue.keyPriorities", queue.key_priorities),
        ):
            for name in names:
                if keys is not None and name not in keys:
                    reader.warnings.append(
                        Problem(
                            child(path, name),
                            f"no API key is named {name!r} "
                            "(APIKEY is named 'default'; APIKEYS names the others)",
                        )
                    )
        if raw.get("Queue") and not any(rate_limit.providers.values()):
            reader.warnings.append(
                Problem("Queue", "has no effect: only requests for providers in RateLimit.providers wait")
            )
        reader.finish(None)
        return cls(rate_limit, queue, tuple(reader.warnings))


def _provider_names(raw: Mapping[str, Any]) -> frozenset[str] | None:
    """Names in ``Providers`` (CCR also reads ``providers``), or None when there is no list to check."""
    entries = raw.get("Providers", raw.get("providers"))
    if not isinstance(entries, list | tuple):
        return None
    return frozenset(e["name"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("name"), str))


def _key_names(raw: Mapping[str, Any]) -> frozenset[str] | None:
    """The names client keys go by ("default" for ``APIKEY``, then the ``APIKEYS`` entries), or None when
    neither is configured (nothing to check against)."""
    names = {"default"} if raw.get("APIKEY") else set()
    entries = raw.get("APIKEYS")
    if not names and not entries:
        return None
    if isinstance(entries, list | tuple):
        names.update(e["name"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("name"), str))
    return frozenset(names)


def _check_provider(reader: Reader, path: str, name: str, known: frozenset[str] | None) -> None:
    if known is not None and name not in known:
        reader.warnings.append(Problem(path, f"no provider named {name!r} in Providers"))


def _rate(reader: Reader, path: str, value: object, period: float, unit: str) -> Rate | None:
    if value is None:
        return None
    count = reader.number(path, value, -1.0, 0.0, _MAX_COUNT)
    if 0.0 <= count < _MIN_COUNT:
        reader.error(path, f"must be at least {_MIN_COUNT:g} (leave the key out for no limit)")
    if count < _MIN_COUNT:  # -1.0: the reader has reported the value
        return None
    return Rate(count, period, unit)


def _limits(
    reader: Reader, path: str, value: object, tokens_key: str | None, more: Iterable[str] = ()
) -> tuple[Limits, Mapping[str, Any]]:
    """A section's request rates (and its token rate under ``tokens_key``); the section for its other keys."""
    keys = [*_REQUEST_KEYS, *([tokens_key] if tokens_key else []), *more]
    section = reader.section(path, value, keys) or _EMPTY
    tokens = None
    if tokens_key is not None:
        tokens = _rate(reader, child(path, tokens_key), section.get(tokens_key), 60.0, "tokens")
    limits = Limits(
        _rate(reader, child(path, "requestsPerSecond"), section.get("requestsPerSecond"), 1.0, "requests"),
        _rate(reader, child(path, "requestsPerMinute"), section.get("requestsPerMinute"), 60.0, "requests"),
        tokens,
    )
    return limits, section


def _networks(reader: Reader, path: str, value: object) -> tuple[IPNetwork, ...]:
    found: list[IPNetwork] = []
    for index, entry in enumerate(reader.sequence(path, value, "a list of addresses or CIDR ranges")):
        entry_path = child(path, index)
        if not isinstance(entry, str):
            reader.error(entry_path, f"expected an address or CIDR range, got {describe(entry)}")
            continue
        try:
            network, had_host_bits = parse_network(entry)
        except ValueError:
            reader.error(entry_path, f"not an IP address or CIDR range: {describe(entry)}")
            continue
        if had_host_bits:
            reader.warnings.append(Problem(entry_path, f"host bits set; read as {network}"))
        found.append(network)
    return tuple(found)


def _rate_limit(reader: Reader, value: object, known: frozenset[str] | None) -> RateLimitConfig:
    path = "RateLimit"
    section = reader.section(path, value, ["global", "perSession", "perIP", "perKey", "providers"]) or _EMPTY
    global_limits, _ = _limits(reader, child(path, "global"), section.get("global"), None)
    per_session, _ = _limits(reader, child(path, "perSession"), section.get("perSession"), "tokenBudget")

    ip_path = child(path, "perIP")
    per_ip, ip_section = _limits(
        reader, ip_path, section.get("perIP"), None, ("blacklist", "whitelist", "ipv6PrefixLength")
    )
    blacklist = _networks(reader, child(ip_path, "blacklist"), ip_section.get("blacklist"))
    whitelist = _networks(reader, child(ip_path, "whitelist"), ip_section.get("whitelist"))
    for network in sorted(set(blacklist) & set(whitelist), key=str):
        reader.error(child(ip_path, "whitelist"), f"{network} is also in the blacklist")
    ipv6_prefix = reader.integer(
        child(ip_path, "ipv6PrefixLength"), ip_section.get("ipv6PrefixLength"), 64, 1, 128
    )

    key_path = child(path, "perKey")
    per_key, key_section = _limits(reader, key_path, section.get("perKey"), "tokenBudget", ("keys",))
    overrides: dict[str, Limits] = {}
    for key_id, entry in reader.table(child(key_path, "keys"), key_section.get("keys")).items():
        found, _ = _limits(reader, child(child(key_path, "keys"), key_id), entry, "tokenBudget")
        overrides[key_id] = per_key.overridden_by(found)

    providers: dict[str, Limits] = {}
    providers_path = child(path, "providers")
    for name, entry in reader.table(providers_path, section.get("providers")).items():
        entry_path = child(providers_path, name)
        _check_provider(reader, entry_path, name.partition(",")[0].strip(), known)
        providers[name], _ = _limits(reader, entry_path, entry, "tokensPerMinute")

    return RateLimitConfig(
        global_limits=global_limits,
        per_session=per_session,
        per_ip=per_ip,
        blacklist=blacklist,
        whitelist=whitelist,
        ipv6_prefix=ipv6_prefix,
        per_key=per_key,
        key_overrides=MappingProxyType(overrides),
        providers=MappingProxyType(providers),
    )


def _route(reader: Reader, path: str, value: object, known: frozenset[str] | None) -> str | None:
    route = reader.route(path, value)
    if route is not None:
        _check_provider(reader, path, route.partition(",")[0].strip(), known)
    return route


def _levels(reader: Reader, path: str, value: object) -> tuple[str, ...]:
    default = _DEFAULT_LEVELS
    entries = reader.sequence(path, value, "a list of level names, highest first")
    if value is None:
        return default
    if not entries or not all(isinstance(e, str) and e.strip() for e in entries):
        reader.error(path, "expected a non-empty list of level names, highest first")
        return default
    levels = tuple(e.strip() for e in entries)
    if len({level.lower() for level in levels}) != len(levels):
        reader.error(path, "level names must be unique (the header is matched ignoring case)")
        return default
    return levels


def _level(reader: Reader, path: str, value: object, levels: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str) and value in levels:
        return value
    reader.error(path, f"expected one of the levels {', '.join(map(repr, levels))}, got {describe(value)}")
    return default


def _backpressure(reader: Reader, value: object, known: frozenset[str] | None) -> Backpressure | None:
    path = "Queue.backpressure"
    section = reader.section(path, value, ["threshold", "action", "redirectTo", "delayMs"])
    if section is None:
        return None
    threshold = reader.number(
        child(path, "threshold"), section.get("threshold"), 0.8, 0.0, 1.0, FRACTION_HINT
    )
    if threshold == 0.0:
        reader.error(child(path, "threshold"), "must be more than 0" + FRACTION_HINT)
        threshold = 0.8
    actions = {a.value: a for a in PressureAction}
    action = reader.choice(child(path, "action"), section.get("action"), PressureAction.SLOW, actions)
    redirect_to = _route(reader, child(path, "redirectTo"), section.get("redirectTo"), known)
    if action is PressureAction.REDIRECT and redirect_to is None:
        reader.error(child(path, "redirectTo"), 'required when action is "redirect"')
        action = PressureAction.SLOW
    delay_ms = reader.integer(child(path, "delayMs"), section.get("delayMs"), 1000, 0)
    return Backpressure(threshold, action, redirect_to, delay_ms / 1000.0)


def _queue(reader: Reader, value: object, known: frozenset[str] | None) -> QueueConfig:
    path = "Queue"
    keys = [
        "maxSize",
        "timeoutMs",
        "priorityHeader",
        "levels",
        "defaultLevel",
        "keyPriorities",
        "overflow",
        "spilloverProviders",
        "backpressure",
    ]
    section = reader.section(path, value, keys) or _EMPTY
    max_size = reader.integer(child(path, "maxSize"), section.get("maxSize"), 1000, 1)
    timeout_ms = reader.integer(child(path, "timeoutMs"), section.get("timeoutMs"), 30000, 1)

    header = _DEFAULT_HEADER
    header_value = reader.text(child(path, "priorityHeader"), section.get("priorityHeader"))
    if header_value is not None:
        if _HEADER_NAME.fullmatch(header_value.strip().lower()):
            header = header_value.strip().lower()
        else:
            reader.error(child(path, "priorityHeader"), f"not an HTTP header name: {describe(header_value)}")

    levels = _levels(reader, child(path, "levels"), section.get("levels"))
    fallback = "normal" if "normal" in levels else levels[-1]
    default_level = _level(reader, child(path, "defaultLevel"), section.get("defaultLevel"), levels, fallback)
    key_priorities: dict[str, str] = {}
    key_path = child(path, "keyPriorities")
    for key_id, level in reader.table(key_path, section.get("keyPriorities")).items():
        key_priorities[key_id] = _level(reader, child(key_path, key_id), level, levels, default_level)

    overflow_path = child(path, "overflow")
    overflow = reader.choice(
        overflow_path, section.get("overflow"), Overflow.QUEUE, {o.value: o for o in Overflow}
    )
    spill_path = child(path, "spilloverProviders")
    spillover = tuple(
        route
        for index, entry in enumerate(
            reader.sequence(spill_path, section.get("spilloverProviders"), "a list")
        )
        if (route := _route(reader, child(spill_path, index), entry, known)) is not None
    )
    if overflow is Overflow.SPILLOVER and not spillover:
        reader.error(spill_path, 'needs at least one "provider,model" when overflow is "spillover"')

    return QueueConfig(
        max_size=max_size,
        timeout=timeout_ms / 1000.0,
        priority_header=header,
        levels=levels,
        default_level=default_level,
        key_priorities=MappingProxyType(key_priorities),
        overflow=overflow,
        spillover=spillover,
        backpressure=_backpressure(reader, section.get("backpressure"), known),
    )
