"""Health of deployments: passive (real traffic) and active (periodic probes), as bookkeeping without I/O.

Passive health is outlier ejection: ``failure_threshold`` consecutive failed requests take a deployment out
of rotation for ``ejection_time``, longer each time it is ejected again without a success in between
(``ejection_time * n``, at most ``max_ejection_time``). It reacts to a deployment that has plainly stopped
working within a few requests; the circuit breaker's error-rate rule covers the slower case of a deployment
that fails some of the time. Passive health is on by default.

Active health sends a cheap probe to each deployment every ``interval`` seconds (off by default: probes
cost requests). ``failure_threshold`` consecutive failed probes mark it down, ``success_threshold``
consecutive good ones bring it back. The gateway sends the probes; this module decides which deployment is
due (one worker claims each probe through a CAS, so N workers do not probe N times), what to send
(:func:`probe_request`) and what the answer means (:func:`probe_healthy`).

A deployment is healthy when it is neither ejected nor marked down.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ccr_fast.config.errors import Problem
from ccr_fast.config.reader import child
from ccr_fast.resilience._config import Reader
from ccr_fast.resilience.outcome import Outcome
from ccr_fast.resilience.store import StateStore

_KEYS = frozenset({"active", "passive"})
_ACTIVE_KEYS = frozenset({"enabled", "interval", "timeout", "failureThreshold", "successThreshold"})
_PASSIVE_KEYS = frozenset({"enabled", "failureThreshold", "ejectionTime", "maxEjectionTime"})
#: Probe answers that say the server is up but this deployment cannot serve (key, quota, proxy auth).
_UNUSABLE = frozenset({401, 403, 407, 429})
_GEMINI_CALL = re.compile(r"/models/[^/]+:(?:stream)?[gG]enerateContent$")


@dataclass(frozen=True, slots=True)
class ActiveHealthConfig:
    enabled: bool = False
    interval: float = 30.0
    #: seconds the gateway gives one probe
    timeout: float = 5.0
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True, slots=True)
class PassiveHealthConfig:
    enabled: bool = True
    failure_threshold: int = 3
    ejection_time: float = 30.0
    max_ejection_time: float = 300.0


@dataclass(frozen=True, slots=True)
class HealthConfig:
    active: ActiveHealthConfig = field(default_factory=ActiveHealthConfig)
    passive: PassiveHealthConfig = field(default_factory=PassiveHealthConfig)

    @classmethod
    def from_config(
        cls, value: object, path: str = "healthCheck", warnings: list[Problem] | None = None
    ) -> HealthConfig:
        """Read the ``healthCheck`` section; raises ``ConfigError`` listing every problem."""
        reader = Reader()
        config = cls.read(reader, value, path)
        reader.finish(warnings)
        return config

    @classmethod
    def read(cls, reader: Reader, value: object, path: str) -> HealthConfig:
        if value is False:
            return cls(passive=PassiveHealthConfig(enabled=False))
        found = reader.section(path, value, _KEYS)
        if found is None:
            return cls()
        return cls(
            active=_active(reader, child(path, "active"), found.get("active")),
            passive=_passive(reader, child(path, "passive"), found.get("passive")),
        )


def _active(reader: Reader, path: str, value: object) -> ActiveHealthConfig:
    defaults = ActiveHealthConfig()
    if value is False:
        return defaults
    found = reader.section(path, value, _ACTIVE_KEYS)
    if found is None:
        return defaults
    # Writing an `active` section at all means wanting probes, unless it says otherwise.
    return ActiveHealthConfig(
        enabled=reader.boolean(child(path, "enabled"), found.get("enabled"), True),
        interval=reader.duration(child(path, "interval"), found.get("interval"), defaults.interval, 0.1),
        timeout=reader.duration(child(path, "timeout"), found.get("timeout"), defaults.timeout, 0.001),
        failure_threshold=reader.integer(
            child(path, "failureThreshold"), found.get("failureThreshold"), defaults.failure_threshold, 1
        ),
        success_threshold=reader.integer(
            child(path, "successThreshold"), found.get("successThreshold"), defaults.success_threshold, 1
        ),
    )


def _passive(reader: Reader, path: str, value: object) -> PassiveHealthConfig:
    defaults = PassiveHealthConfig()
    if value is False:
        return PassiveHealthConfig(enabled=False)
    found = reader.section(path, value, _PASSIVE_KEYS)
    if found is None:
        return defaults
    ejection = reader.duration(child(path, "ejectionTime"), found.get("ejectionTime"), defaults.ejection_time)
    longest = reader.duration(
        child(path, "maxEjectionTime"),
        found.get("maxEjectionTime"),
        max(defaults.max_ejection_time, ejection),
    )
    if longest < ejection:
        reader.error(child(path, "maxEjectionTime"), f"must be at least ejectionTime ({ejection:g}s)")
    return PassiveHealthConfig(
        enabled=reader.boolean(child(path, "enabled"), found.get("enabled"), defaults.enabled),
        failure_threshold=reader.integer(
            child(path, "failureThreshold"), found.get("failureThreshold"), defaults.failure_threshold, 1
        ),
        ejection_time=ejection,
        max_ejection_time=max(longest, ejection),
    )


class _Keys:
    __slots__ = ("down", "ejected_until", "ejections", "fails", "next_probe", "probe_fails", "probe_oks")

    def __init__(self, name: str) -> None:
        prefix = f"hc:{name}"
        self.fails = f"{prefix}:fails"
        self.ejected_until = f"{prefix}:ejected_until"
        self.ejections = f"{prefix}:ejections"
        self.down = f"{prefix}:down"
        self.probe_fails = f"{prefix}:probe_fails"
        self.probe_oks = f"{prefix}:probe_oks"
        self.next_probe = f"{prefix}:next_probe"


class HealthTracker:
    """Passive and active health of every deployment, kept in the shared state store under ``hc:<name>:*``."""

    __slots__ = ("_keys", "_store", "config")

    def __init__(self, config: HealthConfig, store: StateStore) -> None:
        self.config = config
        self._store = store
        self._keys: dict[str, _Keys] = {}

    def _of(self, name: str) -> _Keys:
        keys = self._keys.get(name)
        if keys is None:
            keys = self._keys[name] = _Keys(name)
        return keys

    def is_healthy(self, name: str, now: float) -> bool:
        keys = self._of(name)
        return self._store.get(keys.down) == 0.0 and now >= self._store.get(keys.ejected_until)

    def record(self, name: str, outcome: Outcome, now: float) -> None:
        """Passive health: count the outcome of a real request."""
        passive = self.config.passive
        if not passive.enabled or outcome is Outcome.IGNORED:
            return
        store, keys = self._store, self._of(name)
        if outcome is Outcome.SUCCESS:
            if store.get(keys.fails) != 0.0:
                store.set(keys.fails, 0.0)
            if store.get(keys.ejections) != 0.0:
                store.set(keys.ejections, 0.0)
            return
        if store.add(keys.fails, 1.0) < passive.failure_threshold:
            return
        store.set(keys.fails, 0.0)
        times = store.add(keys.ejections, 1.0)
        store.set(keys.ejected_until, now + min(passive.max_ejection_time, passive.ejection_time * times))

    def due_probes(self, names: Iterable[str], now: float) -> list[str]:
        """The deployments this worker should probe now; each one is claimed, so no other worker will.

        Call it on a timer (every second is plenty); send a probe to each returned name and report it with
        :meth:`probe_result`.
        """
        active = self.config.active
        if not active.enabled:
            return []
        due: list[str] = []
        for name in names:
            key = self._of(name).next_probe
            next_at = self._store.get(key)
            if now >= next_at and self._store.cas(key, next_at, now + active.interval):
                due.append(name)
        return due

    def probe_result(self, name: str, healthy: bool, now: float) -> None:
        """Active health: count one probe's verdict (see :func:`probe_healthy`)."""
        active = self.config.active
        store, keys = self._store, self._of(name)
        if healthy:
            store.set(keys.probe_fails, 0.0)
            if store.add(keys.probe_oks, 1.0) >= active.success_threshold:
                store.set(keys.down, 0.0)
            return
        store.set(keys.probe_oks, 0.0)
        if store.add(keys.probe_fails, 1.0) >= active.failure_threshold:
            store.set(keys.down, 1.0)

    def snapshot(self, name: str, now: float) -> dict[str, Any]:
        store, keys = self._store, self._of(name)
        ejected_for = store.get(keys.ejected_until) - now
        return {
            "name": name,
            "healthy": self.is_healthy(name, now),
            "probe_down": store.get(keys.down) != 0.0,
            "ejected_for": max(0.0, ejected_for),
            "consecutive_failures": int(store.get(keys.fails)),
            "ejections": int(store.get(keys.ejections)),
        }


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """What to send as an active health probe."""

    method: str
    url: str
    headers: Mapping[str, str]


def probe_request(endpoint: str, url: str, headers: Mapping[str, str]) -> ProbeRequest:
    """The cheapest request that shows a deployment is up and accepts our key: list its models.

    ``endpoint`` is the upstream's API family (``"anthropic"``, ``"openai"``, ``"gemini"``) and ``url``
    the endpoint URL the provider is configured with; ``headers`` are the deployment's static headers
    (they carry its key, which is what a key-pool probe must test). Listing models costs no tokens on any
    provider: ``/v1/messages`` becomes ``/v1/models``, ``/chat/completions`` and ``/responses`` become
    ``/models``, and a Gemini ``/models/<m>:generateContent`` becomes ``/models``. An endpoint of unknown
    shape is probed with a GET on the URL itself, which a live server answers with 404 or 405. The query
    string is kept: some providers take the key there.
    """
    base, mark, query = url.partition("?")
    probe = base
    if endpoint == "anthropic" and base.endswith("/messages"):
        probe = base[: -len("/messages")] + "/models"
    elif endpoint == "openai" and base.endswith("/chat/completions"):
        probe = base[: -len("/chat/completions")] + "/models"
    elif endpoint == "openai-responses" and base.endswith("/responses"):
        probe = base[: -len("/responses")] + "/models"
    elif endpoint == "gemini":
        probe = _GEMINI_CALL.sub("/models", base)
    sent = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
    return ProbeRequest("GET", probe + mark + query, sent)


def probe_healthy(status: int | None) -> bool:
    """Whether a probe's answer (None: timeout or network error) means the deployment can serve.

    Any answer below 500 shows a live server, except those that say this deployment cannot be used:
    401/403 (key refused), 407 (proxy refused us), 429 (out of quota). A 404 or 405 from a server that
    does not list models still proves it is up.
    """
    return status is not None and status < 500 and status not in _UNUSABLE
