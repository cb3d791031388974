"""Schema checks: interpolated config data in, a `Config` and every problem with it out.

Checking and converting are one pass, so each rule lives in one place: the code that reads `PORT` is the
code that rejects `"abc"`. A rejected value is replaced by its default and the pass goes on, so one run
reports everything wrong with a file instead of one mistake per restart. Errors stop the load (the caller
raises them together); warnings (unknown keys, models a provider does not list, unresolved environment
variables) travel with the snapshot in `Config.warnings`.

Integers and booleans are also accepted as strings ("3456", "false"): environment interpolation only
produces strings, and CCR's UI writes `API_TIMEOUT_MS` as one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from ccr_fast.config.errors import Problem
from ccr_fast.config.model import (
    EMPTY,
    ApiKey,
    Config,
    FrozenDict,
    ProviderConfig,
    RouterConfig,
    available_cpus,
    freeze,
)
from ccr_fast.config.reader import Reader, child, describe

DEFAULTS = Config()
DEFAULT_ROUTER = RouterConfig()

#: Every top-level key: CCR's, then ccr-fast's own. Anything else is reported as unknown.
CCR_KEYS = frozenset(
    {
        "PORT",
        "HOST",
        "APIKEY",
        "LOG",
        "LOG_LEVEL",
        "API_TIMEOUT_MS",
        "PROXY_URL",
        "NON_INTERACTIVE_MODE",
        "CUSTOM_ROUTER_PATH",
        "REWRITE_SYSTEM_PROMPT",
        "CLAUDE_PATH",
        "ANTHROPIC_SMALL_FAST_MODEL",
        "forceUseImageAgent",
        "StatusLine",
        "Providers",
        "providers",
        "Router",
        "transformers",
        "fallback",
    }
)
OWN_KEYS = frozenset(
    {
        "MAX_BODY_SIZE",
        "WORKERS",
        "SHUTDOWN_TIMEOUT_MS",
        "UPSTREAM_POOL_SIZE",
        "STREAM_KEEPALIVE_MS",
        "TRUSTED_PROXIES",
        "PATH_PREFIX",
        "UNIX_SOCKET",
        # named client keys besides APIKEY: ccr_fast.server.auth
        "APIKEYS",
        # price table overrides for cost metrics: ccr_fast.observe.metrics
        "Pricing",
        # admission control: ccr_fast.admission.AdmissionConfig
        "RateLimit",
        "Queue",
        # shared state backend (shared memory, or Redis across machines): ccr_fast.state.redis_backend
        "State",
        # resilience sections, validated by ccr_fast.resilience.ResilienceConfig
        "retry",
        "circuitBreaker",
        "healthCheck",
        "loadBalancing",
        "failover",
        "deployments",
    }
)
KNOWN_KEYS = CCR_KEYS | OWN_KEYS

PROVIDER_KEYS = frozenset({"name", "api_base_url", "api_key", "models", "transformer", "tokenizer"})
#: `Router` scenario keys (CCR's spelling) -> RouterConfig field.
ROUTER_SLOTS: Mapping[str, str] = {
    "default": "default",
    "background": "background",
    "think": "think",
    "longContext": "long_context",
    "webSearch": "web_search",
    "image": "image",
}
ROUTER_KEYS = frozenset({*ROUTER_SLOTS, "longContextThreshold"})
FALLBACK_SCENARIOS = frozenset(ROUTER_SLOTS)

#: Accepted `LOG_LEVEL` spellings (CCR's pino levels included) -> the level ccr-fast logs at.
LOG_LEVELS: Mapping[str, str] = {
    "trace": "debug",
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "fatal": "error",
}

#: `APIKEYS[].name`: it appears in metrics labels, Redis keys and logs
_KEY_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_KEY_ENTRY_KEYS = frozenset({"name", "key"})
#: a whole value that is an environment reference interpolation left in place (the variable is unset)
_UNRESOLVED = re.compile(r"\$\{[^}]+\}|\$[A-Z_][A-Z0-9_]*")

_PATH_SEPARATOR = re.compile(r"[.\[]")
_QUOTED_TOP_KEY = re.compile(r'\[("(?:[^"\\]|\\.)*")\]')


def check(
    data: Mapping[str, Any], *, source: str, env: Mapping[str, str], notes: Sequence[Problem] = ()
) -> tuple[Config, list[Problem]]:
    """Check interpolated config data; returns the snapshot and the errors (empty when it is valid).

    The snapshot is built even when there are errors, with defaults in place of rejected values, and is
    only meant to be used when the error list is empty. `notes` are earlier warnings (such as unresolved
    environment variables) that should travel with it.
    """
    raw: FrozenDict = freeze(data)
    c = Reader(notes)
    c.unknown_keys("", raw, KNOWN_KEYS)

    providers = _providers(c, raw)
    # The same lookup the request path uses, so validation resolves names exactly as routing will.
    lookup = Config(providers=providers).provider

    apikey = c.text("APIKEY", raw.get("APIKEY"), secret=True)
    api_keys = _api_keys(c, raw.get("APIKEYS"), apikey)
    host = _host(c, raw.get("HOST"), apikey is not None or bool(api_keys))
    config = Config(
        port=_port(c, raw.get("PORT"), env),
        host=host,
        apikey=apikey,
        api_keys=api_keys,
        log=c.boolean("LOG", raw.get("LOG"), DEFAULTS.log),
        log_level=_log_level(c, raw.get("LOG_LEVEL")),
        api_timeout_ms=c.integer(
            "API_TIMEOUT_MS", raw.get("API_TIMEOUT_MS"), DEFAULTS.api_timeout_ms, 1, digits_only=True
        ),
        proxy_url=_proxy_url(c, raw.get("PROXY_URL"), env),
        non_interactive_mode=c.boolean(
            "NON_INTERACTIVE_MODE", raw.get("NON_INTERACTIVE_MODE"), DEFAULTS.non_interactive_mode
        ),
        custom_router_path=c.text("CUSTOM_ROUTER_PATH", raw.get("CUSTOM_ROUTER_PATH")),
        rewrite_system_prompt=c.text("REWRITE_SYSTEM_PROMPT", raw.get("REWRITE_SYSTEM_PROMPT")),
        claude_path=c.text("CLAUDE_PATH", raw.get("CLAUDE_PATH")),
        anthropic_small_fast_model=c.text(
            "ANTHROPIC_SMALL_FAST_MODEL", raw.get("ANTHROPIC_SMALL_FAST_MODEL")
        ),
        force_use_image_agent=c.boolean(
            "forceUseImageAgent", raw.get("forceUseImageAgent"), DEFAULTS.force_use_image_agent
        ),
        status_line=c.mapping("StatusLine", raw.get("StatusLine")) or EMPTY,
        providers=providers,
        router=_router(c, raw.get("Router"), lookup, has_providers=bool(providers)),
        transformers=_plugins(c, raw.get("transformers")),
        fallback=_fallback(c, raw.get("fallback"), lookup),
        max_body_size=c.size("MAX_BODY_SIZE", raw.get("MAX_BODY_SIZE"), DEFAULTS.max_body_size),
        workers=c.integer("WORKERS", raw.get("WORKERS"), available_cpus(), 1, digits_only=True),
        shutdown_timeout_ms=c.integer(
            "SHUTDOWN_TIMEOUT_MS",
            raw.get("SHUTDOWN_TIMEOUT_MS"),
            DEFAULTS.shutdown_timeout_ms,
            0,
            digits_only=True,
        ),
        upstream_pool_size=c.integer(
            "UPSTREAM_POOL_SIZE",
            raw.get("UPSTREAM_POOL_SIZE"),
            DEFAULTS.upstream_pool_size,
            1,
            digits_only=True,
        ),
        stream_keepalive_ms=c.integer(
            "STREAM_KEEPALIVE_MS",
            raw.get("STREAM_KEEPALIVE_MS"),
            DEFAULTS.stream_keepalive_ms,
            0,
            digits_only=True,
        ),
        trusted_proxies=_trusted_proxies(c, raw.get("TRUSTED_PROXIES")),
        path_prefix=_path_prefix(c, raw.get("PATH_PREFIX")),
        unix_socket=c.text("UNIX_SOCKET", raw.get("UNIX_SOCKET")),
        raw=raw,
        source=source,
        warnings=tuple(str(w) for w in _in_file_order(c.warnings, raw)),
    )
    return config, _in_file_order(c.errors, raw)


def _in_file_order(problems: list[Problem], raw: Mapping[str, Any]) -> list[Problem]:
    """Problems sorted by where their top-level key sits in the file (checks run in dependency order)."""
    position = {key: i for i, key in enumerate(raw)}
    position[""] = -1  # about the whole file: first
    return sorted(problems, key=lambda p: position.get(_top_key(p.path), len(raw)))  # absent keys: last


def _top_key(path: str) -> str:
    quoted = _QUOTED_TOP_KEY.match(path)
    if quoted:
        key: str = orjson.loads(quoted.group(1))
        return key
    return _PATH_SEPARATOR.split(path, maxsplit=1)[0]


def _port(c: Reader, value: Any, env: Mapping[str, str]) -> int:
    port = c.integer("PORT", value, DEFAULTS.port, 1, 65535, digits_only=True)
    override = env.get("SERVICE_PORT")
    if override:  # CCR: the environment wins over the file
        port = c.integer("env SERVICE_PORT", override, port, 1, 65535, digits_only=True)
    return port


def _host(c: Reader, value: Any, authenticated: bool) -> str:
    host = c.text("HOST", value) or DEFAULTS.host
    if not authenticated and not _is_loopback(host):
        # CCR's safety rule: never expose an unauthenticated router beyond this machine.
        c.warn(
            "HOST",
            f"{describe(host)} is reachable from other machines but APIKEY is not set; using 127.0.0.1",
        )
        return DEFAULTS.host
    return host


def _api_keys(c: Reader, value: Any, apikey: str | None) -> tuple[ApiKey, ...]:
    """`APIKEYS`: `[{name, key}]`, client keys besides `APIKEY` (which goes by the name "default")."""
    keys: list[ApiKey] = []
    names: dict[str, str] = {"default": "APIKEY"} if apikey else {}
    secrets: dict[str, str] = {apikey: "APIKEY"} if apikey else {}
    for i, entry in enumerate(c.sequence("APIKEYS", value, 'a list of {"name": ..., "key": ...} objects')):
        path = child("APIKEYS", i)
        found = c.mapping(path, entry, 'an object such as {"name": "ci-bot", "key": "$CI_KEY"}')
        if found is None:
            continue
        c.unknown_keys(path, found, _KEY_ENTRY_KEYS)
        name = c.required_text(child(path, "name"), found.get("name"))
        key = c.required_text(child(path, "key"), found.get("key"), secret=True)
        if name is not None:
            if name == "default":
                c.error(child(path, "name"), '"default" is the name of APIKEY; choose another')
                name = None
            elif not _KEY_NAME.fullmatch(name):
                c.error(
                    child(path, "name"),
                    f"expected 1-64 letters, digits, '_', '.', '@' or '-', got {describe(name)}",
                )
                name = None
            elif name in names:
                c.error(child(path, "name"), f"duplicate key name {describe(name)} (also {names[name]})")
                name = None
        if key is not None:
            if _UNRESOLVED.fullmatch(key):
                c.error(
                    child(path, "key"),
                    f"{key} is an environment variable that is not set; a key cannot be its own placeholder",
                )
                key = None
            elif key in secrets:
                c.error(child(path, "key"), f"the same key as {secrets[key]}: every key must be different")
                key = None
        if name is not None and key is not None:
            names[name] = path
            secrets[key] = path
            keys.append(ApiKey(name, key))
    return tuple(keys)


def _trusted_proxies(c: Reader, value: Any) -> tuple[str, ...]:
    """Addresses or CIDR ranges whose X-Forwarded-For / X-Real-IP headers are believed."""
    out: list[str] = []
    for i, item in enumerate(c.sequence("TRUSTED_PROXIES", value, "a list of IP addresses or CIDR ranges")):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)) if isinstance(item, str) else "")
        except ValueError:
            out.append("")
        if not out[-1]:
            out.pop()
            c.error(f"TRUSTED_PROXIES[{i}]", f"expected an IP address or CIDR range, got {describe(item)}")
    return tuple(out)


def _path_prefix(c: Reader, value: Any) -> str:
    """A mount point such as "/ccr" (behind a proxy that does not strip it); "" means none."""
    prefix = c.text("PATH_PREFIX", value) or ""
    if prefix and (not prefix.startswith("/") or "?" in prefix or "#" in prefix):
        c.error("PATH_PREFIX", f'expected a path starting with "/", got {describe(prefix)}')
        return ""
    return prefix.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _log_level(c: Reader, value: Any) -> str:
    if value is None or value == "":
        return DEFAULTS.log_level
    if isinstance(value, str) and value.strip().lower() in LOG_LEVELS:
        return LOG_LEVELS[value.strip().lower()]
    c.error("LOG_LEVEL", f"expected one of debug, info, warn, warning, error, got {describe(value)}")
    return DEFAULTS.log_level


def _proxy_url(c: Reader, value: Any, env: Mapping[str, str]) -> str | None:
    url = c.text("PROXY_URL", value)
    if url is None:
        return env.get("HTTPS_PROXY") or env.get("https_proxy") or None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        # The value is not echoed: a malformed proxy URL may still hold a password.
        c.error("PROXY_URL", "expected a proxy URL such as http://host:8080 (value not shown)")
        return None
    return url


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _providers(c: Reader, raw: Mapping[str, Any]) -> tuple[ProviderConfig, ...]:
    key = "Providers" if "Providers" in raw else "providers"
    if "Providers" in raw and "providers" in raw:
        c.warn("providers", 'ignored: "Providers" is also present and takes precedence')
    entries = c.sequence(key, raw.get(key), "a list of providers")
    providers: list[ProviderConfig] = []
    first_seen: dict[str, str] = {}
    folded_seen: dict[str, str] = {}
    for i, entry in enumerate(entries):
        path = child(key, i)
        provider = _provider(c, path, entry)
        if provider is None:
            continue
        name = provider.name
        if name in first_seen:
            c.error(
                child(path, "name"), f"duplicate provider name {describe(name)} (also {first_seen[name]})"
            )
            continue
        if name.casefold() in folded_seen:
            other = folded_seen[name.casefold()]
            c.warn(
                child(path, "name"),
                f"differs only in case from {other}; case-insensitive lookups pick {other}",
            )
        first_seen[name] = path
        folded_seen.setdefault(name.casefold(), path)
        providers.append(provider)
    return tuple(providers)


def _provider(c: Reader, path: str, entry: Any) -> ProviderConfig | None:
    """One provider; None only when it has no usable name (then nothing can refer to it anyway)."""
    if not isinstance(entry, Mapping):
        c.error(path, f"expected a provider object, got {describe(entry)}")
        return None
    c.unknown_keys(path, entry, PROVIDER_KEYS)
    name = c.required_text(child(path, "name"), entry.get("name"))
    if name is not None and "," in name:
        c.error(child(path, "name"), 'must not contain "," (routes are written "provider,model")')
    url = c.required_text(child(path, "api_base_url"), entry.get("api_base_url"))
    if url is not None and not _is_http_url(url):
        c.error(child(path, "api_base_url"), f"expected an http(s) URL, got {describe(url)}")
    api_key = c.required_text(child(path, "api_key"), entry.get("api_key"), secret=True)
    models = _models(c, child(path, "models"), entry.get("models"))
    transformer = _transformer(c, child(path, "transformer"), entry.get("transformer"), models)
    tokenizer = _tokenizer(c, child(path, "tokenizer"), entry.get("tokenizer"))
    if name is None:
        return None
    return ProviderConfig(
        name=name,
        api_base_url=url or "",
        api_key=api_key or "",
        models=models,
        transformer=transformer,
        tokenizer=tokenizer,
        raw=entry,
    )


def _models(c: Reader, path: str, value: Any) -> tuple[str, ...]:
    models: list[str] = []
    for i, model in enumerate(c.sequence(path, value, "a list of model names")):
        if isinstance(model, str) and model:
            models.append(model)
        else:
            c.error(child(path, i), f"expected a model name (a non-empty string), got {describe(model)}")
    return tuple(models)


def _transformer(c: Reader, path: str, spec: Any, models: tuple[str, ...]) -> Mapping[str, Any]:
    """The shape of `{use: [...], "<model>": {use: [...]}}`; names are the transformer registry's job."""
    found = c.mapping(path, spec, 'an object such as {"use": ["openrouter"]}')
    if found is None:
        return EMPTY
    for key, value in found.items():
        if key == "use":
            _use_list(c, child(path, key), value)
            continue
        model_path = child(path, key)
        chain = c.mapping(model_path, value, 'an object such as {"use": ["tooluse"]}')
        if chain is None:
            continue
        c.unknown_keys(model_path, chain, frozenset({"use"}))
        _use_list(c, child(model_path, "use"), chain.get("use"))
        if models and key not in models:
            c.warn(
                model_path, f"model {describe(key)} is not in this provider's models; the chain never applies"
            )
    return found


def _use_list(c: Reader, path: str, value: Any) -> None:
    for j, item in enumerate(c.sequence(path, value, "a list of transformers")):
        if isinstance(item, str) and item:
            continue
        if (
            isinstance(item, list | tuple)
            and 1 <= len(item) <= 2
            and isinstance(item[0], str)
            and item[0]
            and (len(item) == 1 or isinstance(item[1], Mapping))
        ):
            continue
        c.error(child(path, j), f"expected a transformer name or [name, {{options}}], got {describe(item)}")


def _tokenizer(c: Reader, path: str, value: Any) -> Mapping[str, Any]:
    """CCR v2's `{default: {...}, models: {"<model>": {...}}}`, kept as written once its shape is right."""
    found = c.mapping(path, value)
    if found is None:
        return EMPTY
    c.unknown_keys(path, found, frozenset({"default", "models"}))
    c.mapping(child(path, "default"), found.get("default"))
    per_model = c.mapping(child(path, "models"), found.get("models")) or EMPTY
    for model, settings in per_model.items():
        c.mapping(child(child(path, "models"), model), settings)
    return found


def _route(c: Reader, path: str, value: Any, lookup: Callable[[str], ProviderConfig | None]) -> str | None:
    """A "provider,model" reference: an unknown provider is an error, an unlisted model a warning."""
    route = c.text(path, value)
    if route is None:
        return None
    provider_name, comma, model = route.partition(",")
    if not comma or not provider_name or not model:
        c.error(path, f'expected "provider,model", got {describe(route)}')
        return None
    provider = lookup(provider_name)
    if provider is None:
        c.error(path, f"unknown provider {describe(provider_name)}")
        return None
    if provider.name != provider_name:
        c.warn(
            path, f"provider {describe(provider_name)} matches {describe(provider.name)} only ignoring case"
        )
    if not provider.lists(model):
        c.warn(
            path, f"model {describe(model)} is not listed in the models of provider {describe(provider.name)}"
        )
    return route


def _router(
    c: Reader, value: Any, lookup: Callable[[str], ProviderConfig | None], *, has_providers: bool
) -> RouterConfig:
    found = c.mapping("Router", value)
    if found is None:
        if has_providers:
            c.error("Router.default", "missing; required when there are providers")
        return DEFAULT_ROUTER
    c.unknown_keys("Router", found, ROUTER_KEYS)
    slots = {
        field: _route(c, child("Router", key), found.get(key), lookup) for key, field in ROUTER_SLOTS.items()
    }
    if has_providers and found.get("default") in (None, ""):
        c.error("Router.default", "missing; required when there are providers")
    threshold = c.integer(
        child("Router", "longContextThreshold"),
        found.get("longContextThreshold"),
        DEFAULT_ROUTER.long_context_threshold,
        1,
        digits_only=True,
    )
    return RouterConfig(**slots, long_context_threshold=threshold, raw=found)


def _plugins(c: Reader, value: Any) -> tuple[Mapping[str, Any], ...]:
    """Top-level `transformers`: `[{path, options}]` plugin entries."""
    plugins: list[Mapping[str, Any]] = []
    for i, entry in enumerate(c.sequence("transformers", value, "a list of {path, options} objects")):
        path = child("transformers", i)
        found = c.mapping(path, entry, 'an object such as {"path": "...", "options": {}}')
        if found is None:
            continue
        c.unknown_keys(path, found, frozenset({"path", "options"}))
        c.required_text(child(path, "path"), found.get("path"))
        c.mapping(child(path, "options"), found.get("options"))
        plugins.append(found)
    return tuple(plugins)


def _fallback(
    c: Reader, value: Any, lookup: Callable[[str], ProviderConfig | None]
) -> Mapping[str, tuple[str, ...]]:
    """CCR v2 `fallback`: per scenario, the "provider,model" routes to try in order after the first fails."""
    found = c.mapping("fallback", value)
    if found is None:
        return EMPTY
    c.unknown_keys("fallback", found, FALLBACK_SCENARIOS)
    chains: dict[str, tuple[str, ...]] = {}
    for scenario, routes in found.items():
        path = child("fallback", scenario)
        checked = (
            _route(c, child(path, i), r, lookup)
            for i, r in enumerate(c.sequence(path, routes, 'a list of "provider,model" routes'))
        )
        chains[scenario] = tuple(r for r in checked if r is not None)
    return FrozenDict(chains)
