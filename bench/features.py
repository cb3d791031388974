"""What each optional ccr-fast feature costs: one config per feature, compared with all features off.

Every variant is the benchmark's gateway config plus one feature, served by an instance of its own on the
system-under-test CPU; the instances are timed interleaved, round by round, with requests sent back to back
on one connection (the least noisy way to see a few microseconds) while ccr-fast's own overhead histogram
(``ccr_overhead_us``) is scraped before and after each run.

* ``auth``: ``APIKEY`` set; every request carries that key (``x-api-key``), so none is refused. The key is
  checked before the overhead timer starts, so only the outside view sees it.
* ``rate_limit``: ``RateLimit`` with a global, per-IP, per-session and per-provider limit, all far above
  what the benchmark sends (nothing is refused; the run checks ``ccr_rate_limited_total`` stays 0).
* ``redis``: ``State.backend: "redis"`` with a global limit, which is then kept in a local
  ``redis-server`` (``leaseSize`` 1: one round trip per request); only when ``redis-server`` is installed.

Metrics are always on (there is no switch), so their cost is inside every ccr-fast number; the micro
benchmarks time one ``record``. There is no response cache and no tracing in ccr-fast yet, so neither is
measured.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from bench.bodies import CLAUDE_CODE_HEADERS

#: the key every benchmark request carries; the ``auth`` variant requires it
API_KEY = dict(CLAUDE_CODE_HEADERS)["x-api-key"]
#: far above anything the benchmark sends, so no request is refused or queued
GENEROUS_PER_SECOND = 1_000_000
GENEROUS_PER_MINUTE = 60_000_000
GENEROUS_TOKENS_PER_MINUTE = 1_000_000_000


@dataclass(frozen=True)
class Feature:
    key: str
    title: str
    needs_redis: bool = False


FEATURES: dict[str, Feature] = {
    f.key: f
    for f in (
        Feature("off", "all optional features off"),
        Feature("auth", "API key check (APIKEY)"),
        Feature("rate_limit", "rate limits (global, per IP, per session, per provider)"),
        Feature("redis", "global rate limit kept in Redis (State.backend redis)", needs_redis=True),
    )
}

#: features that do not exist in ccr-fast yet, or cannot be switched off: named in the report, not timed
NOT_TIMED: dict[str, str] = {
    "metrics": "always on, no switch (so inside every ccr-fast number)",
    "response cache": "does not exist yet",
    "tracing": "does not exist yet",
}


def feature_config(base: dict[str, Any], feature: str, *, redis_url: str | None = None) -> dict[str, Any]:
    """``base`` (the benchmark's gateway config) with ``feature`` switched on."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; known: {', '.join(FEATURES)}")
    config = copy.deepcopy(base)
    for key in ("APIKEY", "RateLimit", "State", "Queue"):
        config.pop(key, None)
    if feature == "auth":
        config["APIKEY"] = API_KEY
    elif feature == "rate_limit":
        providers = {p["name"]: {"requestsPerMinute": GENEROUS_PER_MINUTE} for p in config["Providers"]}
        default_provider = config["Router"]["default"].split(",")[0]
        providers[default_provider] = {
            "requestsPerMinute": GENEROUS_PER_MINUTE,
            "tokensPerMinute": GENEROUS_TOKENS_PER_MINUTE,
        }
        config["RateLimit"] = {
            "global": {"requestsPerSecond": GENEROUS_PER_SECOND},
            "perIP": {"requestsPerMinute": GENEROUS_PER_MINUTE},
            "perSession": {"requestsPerMinute": GENEROUS_PER_MINUTE},
            "providers": providers,
        }
    elif feature == "redis":
        if redis_url is None:
            raise ValueError("the redis feature needs a redis_url")
        config["RateLimit"] = {"global": {"requestsPerSecond": GENEROUS_PER_SECOND}}
        config["State"] = {
            "backend": "redis",
            "redis": {"url": redis_url, "prefix": "ccr-fast-bench", "failMode": "closed", "leaseSize": 1},
        }
    return config
