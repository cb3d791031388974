"""The typed, immutable config snapshot.

A `Config` is built once per load or reload and then shared by every request in flight; a reload swaps in a
new snapshot instead of editing the old one. So everything reachable from it is read-only, including the raw
JSON it came from: `FrozenDict` and `FrozenList` are `dict` and `list` subclasses that refuse mutation. They
stay subclasses (rather than `MappingProxyType` and `tuple`) on purpose: orjson serialises them as-is,
`isinstance(x, dict | list)` checks in transformer code keep working, and options deep-merged into a request
body cannot turn into something the JSON encoder rejects.

Copying is how code gets a mutable version: `copy.copy` of a frozen container gives a plain `dict`/`list`,
`copy.deepcopy` (or `thaw`) a plain deep copy. Transformers that copy options or request bodies before
editing them therefore keep working when those contain config values.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

_READ_ONLY = "config snapshots are read-only; build a new Config instead"


class FrozenDict(dict[str, Any]):
    """A `dict` that cannot be changed after construction."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(_READ_ONLY)

    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        # dict's default pickling refills the object item by item through __setitem__, which is refused.
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, object]) -> dict[str, Any]:
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}


class FrozenList(list[Any]):
    """A `list` that cannot be changed after construction."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(_READ_ONLY)

    __setitem__ = _refuse
    __delitem__ = _refuse
    __iadd__ = _refuse
    __imul__ = _refuse
    append = _refuse
    clear = _refuse
    extend = _refuse
    insert = _refuse
    pop = _refuse
    remove = _refuse
    reverse = _refuse
    sort = _refuse

    def __reduce__(self) -> tuple[type[FrozenList], tuple[list[Any]]]:
        return (FrozenList, (list(self),))

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, object]) -> list[Any]:
        return [copy.deepcopy(v, memo) for v in self]


EMPTY: FrozenDict = FrozenDict()


def _empty() -> FrozenDict:
    return EMPTY


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers narrow), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # platforms without sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def freeze(value: Any) -> Any:
    """A deep read-only copy of parsed JSON: objects become `FrozenDict`, arrays `FrozenList`."""
    if isinstance(value, FrozenDict | FrozenList):
        return value
    if isinstance(value, Mapping):
        return FrozenDict((str(k), freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return FrozenList(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of (possibly frozen) parsed JSON."""
    return copy.deepcopy(value)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One entry of `Providers`.

    `transformer` is CCR's spec as written (`{use: [...], "<model>": {use: [...]}}`); its names are resolved
    by the transformer registry, which owns the list of known transformers. `tokenizer` is CCR v2's
    per-provider tokenizer settings (`{default: {...}, models: {...}}`), empty when absent.
    """

    name: str
    api_base_url: str
    api_key: str
    models: tuple[str, ...]
    transformer: Mapping[str, Any]
    tokenizer: Mapping[str, Any]
    raw: Mapping[str, Any]

    def lists(self, model: str) -> bool:
        """Whether `model` may be used with this provider: listed, or the provider lists nothing."""
        return not self.models or model in self.models


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One entry of `APIKEYS`: a client key, and the name it goes by in limits, priorities, logs, metrics."""

    name: str
    key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """`Router`: each scenario slot is a "provider,model" string, or None when the slot is unset."""

    default: str | None = None
    background: str | None = None
    think: str | None = None
    long_context: str | None = None
    long_context_threshold: int = 60000
    web_search: str | None = None
    image: str | None = None
    raw: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Config:
    """One immutable snapshot of the whole configuration.

    Field names are the snake_case forms of CCR's keys; `raw` keeps the interpolated JSON for consumers that
    need keys this class does not model (and for `GET /api/config`, through `redact`).
    """

    port: int = 3456
    host: str = "127.0.0.1"
    apikey: str | None = None
    #: ccr-fast's named client keys (`APIKEYS`), accepted besides `APIKEY` (which is named "default")
    api_keys: tuple[ApiKey, ...] = ()
    log: bool = True
    log_level: str = "info"
    api_timeout_ms: int = 600000
    proxy_url: str | None = None
    non_interactive_mode: bool = False
    custom_router_path: str | None = None
    rewrite_system_prompt: str | None = None
    claude_path: str | None = None
    anthropic_small_fast_model: str | None = None
    force_use_image_agent: bool = False
    status_line: Mapping[str, Any] = field(default_factory=_empty)
    providers: tuple[ProviderConfig, ...] = ()
    router: RouterConfig = RouterConfig()
    transformers: tuple[Mapping[str, Any], ...] = ()
    fallback: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    max_body_size: int = 32 * 1024 * 1024
    workers: int = field(default_factory=available_cpus)
    shutdown_timeout_ms: int = 30000
    upstream_pool_size: int = 256
    #: an `event: ping` is sent after this long without upstream data on a stream (0: never)
    stream_keepalive_ms: int = 15000
    #: proxies (IPs/CIDRs) whose X-Forwarded-For / X-Real-IP are trusted for the client address
    trusted_proxies: tuple[str, ...] = ()
    #: served under this path prefix as well as at the root (e.g. "/ccr" behind nginx)
    path_prefix: str = ""
    #: listen on this unix socket instead of HOST:PORT
    unix_socket: str | None = None
    raw: FrozenDict = field(default_factory=_empty)
    source: str = "<default>"
    warnings: tuple[str, ...] = ()
    _by_name: Mapping[str, ProviderConfig] = field(init=False, repr=False, compare=False)
    _by_folded_name: Mapping[str, ProviderConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built once per snapshot so that `provider()` on the request path is a dict lookup, not a scan.
        object.__setattr__(self, "_by_name", _index(self.providers, fold=False))
        object.__setattr__(self, "_by_folded_name", _index(self.providers, fold=True))

    @property
    def client_keys(self) -> tuple[ApiKey, ...]:
        """Every key a client may present: `APIKEY` as "default", then the `APIKEYS` entries."""
        default = (ApiKey("default", self.apikey),) if self.apikey else ()
        return (*default, *self.api_keys)

    def provider(self, name: str) -> ProviderConfig | None:
        """The provider called `name`: exact match first (CCR is case-sensitive), then ignoring case."""
        found = self._by_name.get(name)
        if found is None:
            found = self._by_folded_name.get(name.casefold())
        return found


def _index(providers: Iterable[ProviderConfig], *, fold: bool) -> Mapping[str, ProviderConfig]:
    index: dict[str, ProviderConfig] = {}
    for p in providers:
        index.setdefault(p.name.casefold() if fold else p.name, p)  # the first definition wins
    return index
