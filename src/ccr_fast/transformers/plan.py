"""Compile a provider's ``transformer`` spec into an immutable Plan, once per provider/model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccr_fast.config.errors import Problem
from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.transformers.base import BodyHook, Endpoint, MessageHook, PlanBuilder, ResponseFilterFactory
from ccr_fast.transformers.registry import NOT_YET_AVAILABLE, REGISTRY, lookup

if TYPE_CHECKING:
    from ccr_fast.config import Config, ProviderConfig


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


def build_plan(provider: ProviderConfig, model: str, *, plugin_names: frozenset[str] = frozenset()) -> Plan:
    """Raises ValueError (with the key path) for an unknown transformer or bad options."""
    builder = PlanBuilder()
    chain = chain_for(provider, model)
    # Settle the endpoint first, so a transformer that depends on it (customparams) gets the same
    # result wherever the endpoint transformer stands in the chain.
    for name, _, _ in chain:
        found = lookup(name)
        if found is not None and found.endpoint is not None:
            builder.endpoint = found.endpoint
    names: list[str] = []
    for name, opts, path in chain:
        cls = lookup(name)
        if cls is None:
            if name.lower() in NOT_YET_AVAILABLE or name in plugin_names:
                builder.unavailable = (
                    f"provider '{provider.name}' uses transformer '{name}', which this version of "
                    "ccr-fast does not implement yet"
                )
                names.append(name)
                continue
            known = ", ".join(sorted(REGISTRY))
            raise ValueError(f"{path}: unknown transformer '{name}' (known: {known})")
        try:
            cls(opts).configure(builder)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: transformer '{name}': {exc}") from exc
        names.append(cls.name)
    endpoint: Endpoint = builder.endpoint or "openai"
    headers: dict[str, str] = {"content-type": "application/json"}
    if endpoint == "anthropic":
        if builder.use_bearer:
            headers["authorization"] = f"Bearer {provider.api_key}"
        else:
            headers["x-api-key"] = provider.api_key
    else:
        headers["authorization"] = f"Bearer {provider.api_key}"
    headers.update(builder.headers)
    return Plan(
        provider=provider.name,
        model=model,
        url=provider.api_base_url,
        endpoint=endpoint,
        dialect=builder.dialect,
        anthropic_hooks=tuple(builder.anthropic_hooks),
        upstream_hooks=tuple(builder.upstream_hooks),
        response_filters=tuple(builder.response_filters),
        message_hooks=tuple(builder.message_hooks),
        headers=headers,
        chain=tuple(names),
        unavailable=builder.unavailable,
    )


def plugin_names(config: Config) -> frozenset[str]:
    names: set[str] = set()
    for entry in config.transformers:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if isinstance(name, str):
            names.add(name)
    return frozenset(names)


def validate_transformers(config: Config) -> tuple[list[Problem], list[str]]:
    """Compile every provider's chains (provider-wide and per model) to find errors at startup."""
    problems: list[Problem] = []
    warnings: list[str] = []
    plugins = plugin_names(config)
    for i, provider in enumerate(config.providers):
        models = list(provider.models) or [""]
        spec = provider.transformer or {}
        models += [k for k in spec if k != "use" and k not in models]
        seen: set[str] = set()
        for model in models:
            try:
                plan = build_plan(provider, model, plugin_names=plugins)
            except ValueError as exc:
                msg = str(exc)
                if msg not in seen:
                    seen.add(msg)
                    path, _, reason = msg.partition(": ")
                    problems.append(Problem(f"Providers[{i}].{path}", reason))
                continue
            if plan.unavailable and plan.unavailable not in seen:
                seen.add(plan.unavailable)
                warnings.append(plan.unavailable)
    return problems, warnings


class PlanCache:
    """Plans built lazily per (provider, model) and kept for the life of a config snapshot."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._plans: dict[tuple[str, str], Plan] = {}
        self._plugins = plugin_names(config)

    def get(self, provider: ProviderConfig, model: str) -> Plan:
        key = (provider.name, model)
        plan = self._plans.get(key)
        if plan is None:
            plan = build_plan(provider, model, plugin_names=self._plugins)
            self._plans[key] = plan
        return plan
