"""Compile a provider's ``transformer`` spec into an immutable Plan, once per provider/model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccr_fast.config.errors import Problem
from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.transformers.base import (
    BodyHook,
    Endpoint,
    MessageHook,
    PlanBuilder,
    ResponseFilterFactory,
    Transformer,
)
from ccr_fast.transformers.plugins import Plugin, collect_plugins, load_plugins
from ccr_fast.transformers.registry import NOT_YET_AVAILABLE, REGISTRY, lookup
from ccr_fast.transformers.vertex import PLATFORM as VERTEX
from ccr_fast.transformers.vertex import VertexTransformer

if TYPE_CHECKING:
    from ccr_fast.config import Config, ProviderConfig
    from ccr_fast.upstream.auth import UpstreamAuth


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything needed to send one request to one provider/model, precomputed."""

    provider: str
    model: str
    url: str
    endpoint: Endpoint
    dialect: OpenAIDialect
    anthropic_hooks: tuple[BodyHook, ...]
    upstream_hooks: tuple[BodyHook, ...]
    response_filters: tuple[ResponseFilterFactory, ...]
    message_hooks: tuple[MessageHook, ...]
    #: static upstream headers (auth, content type, transformer extras)
    headers: Mapping[str, str]
    chain: tuple[str, ...]
    unavailable: str | None = None
    #: signs each request with a credential that expires (Vertex AI's OAuth tokens); None: the static
    #: key in ``headers`` is all there is (see ccr_fast.upstream.auth)
    auth: UpstreamAuth | None = None
    #: the cloud platform serving the endpoint's API its own way ("vertex": Google Vertex AI), else None
    platform: str | None = None
    #: the URL of streamed requests, when it is not ``url`` (Vertex AI's Claude :streamRawPredict)
    stream_url: str | None = None
    #: problems to report at start-up that requests will run into (no credentials, no project)
    warnings: tuple[str, ...] = ()

    @property
    def passthrough(self) -> bool:
        """Anthropic upstream with nothing to rewrite: response bytes are forwarded untouched."""
        return self.endpoint == "anthropic" and not self.response_filters and not self.message_hooks


def _entries(spec: Any) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(spec, Sequence) or isinstance(spec, str):
        return out
    for item in spec:
        if isinstance(item, str):
            out.append((item, {}))
        elif isinstance(item, Sequence) and item and isinstance(item[0], str):
            opts = item[1] if len(item) > 1 and isinstance(item[1], Mapping) else {}
            out.append((item[0], dict(opts)))
    return out


def chain_for(provider: ProviderConfig, model: str) -> list[tuple[str, dict[str, Any], str]]:
    """(name, options, key path) for the provider-wide chain, then the per-model chain."""
    spec = provider.transformer or {}
    out: list[tuple[str, dict[str, Any], str]] = []
    for j, (name, opts) in enumerate(_entries(spec.get("use"))):
        out.append((name, opts, f"transformer.use[{j}]"))
    per_model = spec.get(model)
    if isinstance(per_model, Mapping):
        for j, (name, opts) in enumerate(_entries(per_model.get("use"))):
            out.append((name, opts, f"transformer.{model}.use[{j}]"))
    return out


def build_plan(provider: ProviderConfig, model: str, *, plugins: Mapping[str, Plugin] | None = None) -> Plan:
    """Raises ValueError (with the key path) for an unknown transformer or bad options.

    ``plugins`` are the config's plugin transformers by name; a chain may use them like built-ins.
    """
    plugins = plugins or {}
    builder = PlanBuilder()
    chain = chain_for(provider, model)
    # Settle the endpoint first, so a transformer that depends on it (customparams) gets the same
    # result wherever the endpoint transformer stands in the chain.
    for name, _, _ in chain:
        found = _plugin(plugins, name)
        cls = found.cls if found is not None else lookup(name)
        if cls is not None and cls.endpoint is not None:
            builder.endpoint = cls.endpoint
    names: list[str] = []
    vertex: VertexTransformer | None = None
    for name, opts, path in chain:
        plugin = _plugin(plugins, name)
        cls = lookup(name) if plugin is None else plugin.cls
        if cls is None:
            if name.lower() in NOT_YET_AVAILABLE:
                builder.unavailable = (
                    f"provider '{provider.name}' uses transformer '{name}', which this version of "
                    "ccr-fast does not implement yet"
                )
                names.append(name)
                continue
            known = ", ".join(sorted([*REGISTRY, *plugins]))
            raise ValueError(f"{path}: unknown transformer '{name}' (known: {known})")
        try:
            step: Transformer = cls(opts) if plugin is None else plugin.create(opts)
            step.configure(builder)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: transformer '{name}': {exc}") from exc
        if isinstance(step, VertexTransformer):
            vertex = step
        names.append(cls.name)
    endpoint: Endpoint = builder.endpoint or "openai"
    headers: dict[str, str] = {"content-type": "application/json"}
    target = vertex.target(provider, model) if vertex is not None and vertex.endpoint == endpoint else None
    if target is not None:
        pass  # Vertex AI: a bearer token per request (plan.auth), no static key
    elif endpoint == "anthropic":
        if builder.use_bearer:
            headers["authorization"] = f"Bearer {provider.api_key}"
        else:
            headers["x-api-key"] = provider.api_key
    elif endpoint == "gemini":
        headers["x-goog-api-key"] = provider.api_key
    else:
        headers["authorization"] = f"Bearer {provider.api_key}"
    headers.update(builder.headers)
    return Plan(
        provider=provider.name,
        model=model,
        url=target.url if target is not None else provider.api_base_url,
        endpoint=endpoint,
        dialect=builder.dialect,
        anthropic_hooks=tuple(builder.anthropic_hooks),
        upstream_hooks=tuple(builder.upstream_hooks),
        response_filters=tuple(builder.response_filters),
        message_hooks=tuple(builder.message_hooks),
        headers=headers,
        chain=tuple(names),
        unavailable=builder.unavailable,
        auth=target.auth if target is not None else None,
        platform=VERTEX if target is not None else None,
        stream_url=target.stream_url if target is not None else None,
        warnings=target.warnings if target is not None else (),
    )


def _plugin(plugins: Mapping[str, Plugin], name: str) -> Plugin | None:
    """A plugin by its exact name, else case-insensitively (as built-in names are looked up)."""
    found = plugins.get(name)
    if found is None and plugins:
        folded = name.lower()
        found = next((p for n, p in plugins.items() if n.lower() == folded), None)
    return found


def validate_transformers(config: Config) -> tuple[list[Problem], list[str]]:
    """Load the plugins and compile every provider's chains (provider-wide and per model) at startup."""
    plugins, problems = collect_plugins(config.transformers)
    warnings: list[str] = []
    for i, provider in enumerate(config.providers):
        models = list(provider.models) or [""]
        spec = provider.transformer or {}
        models += [k for k in spec if k != "use" and k not in models]
        seen: set[str] = set()
        for model in models:
            try:
                plan = build_plan(provider, model, plugins=plugins)
            except ValueError as exc:
                msg = str(exc)
                if msg not in seen:
                    seen.add(msg)
                    path, _, reason = msg.partition(": ")
                    problems.append(Problem(f"Providers[{i}].{path}", reason))
                continue
            for warning in (plan.unavailable, *plan.warnings):
                if warning and warning not in seen:
                    seen.add(warning)
                    warnings.append(warning)
    return problems, warnings


class PlanCache:
    """Plans built lazily per (provider, model) and kept for the life of a config snapshot.

    The config's plugins are loaded here, once; a plugin that fails raises ConfigError.
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self._plans: dict[tuple[str, str, str | None], Plan] = {}
        self._plugins = load_plugins(config.transformers)

    @property
    def plugins(self) -> Mapping[str, Plugin]:
        """The config's plugin transformers by name."""
        return self._plugins

    def get(self, provider: ProviderConfig, model: str, *, api_key: str | None = None) -> Plan:
        """The plan for ``model`` at ``provider``; ``api_key`` overrides the provider's key (key pools)."""
        key = (provider.name, model, api_key)
        plan = self._plans.get(key)
        if plan is None:
            if api_key is not None and api_key != provider.api_key:
                provider = dataclasses.replace(provider, api_key=api_key)
            plan = build_plan(provider, model, plugins=self._plugins)
            self._plans[key] = plan
        return plan
