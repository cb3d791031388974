"""Request-shaping transformers: ``sampling``, ``maxcompletiontokens``, ``cerebras`` and ``vercel``.

Each only changes what is sent; responses need nothing beyond the OpenAI translator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ccr_fast.transformers.base import PlanBuilder, Transformer, deep_merge

__all__ = [
    "CerebrasTransformer",
    "MaxCompletionTokensTransformer",
    "SamplingTransformer",
    "VercelTransformer",
    "flatten_text_content",
]

#: sampling options that Anthropic's request has too: set on the request before translation
ANTHROPIC_SAMPLING: Final = ("temperature", "top_p", "top_k")


def _positive_int(options: Mapping[str, Any], key: str) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"option {key} must be a positive integer")
    return value


def _number(options: Mapping[str, Any], key: str) -> float | int | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"option {key} must be a number")
    return value


def _speaks_openai(plan: PlanBuilder) -> bool:
    """Upstream hooks edit the translated body, which is only OpenAI-shaped on the OpenAI endpoint."""
    return (plan.endpoint or "openai") == "openai"


def _lower_cap(plan: PlanBuilder, limit: int) -> None:
    cap = plan.dialect.max_tokens_cap
    plan.tune(max_tokens_cap=limit if cap is None else min(cap, limit))


class SamplingTransformer(Transformer):
    """sampling {temperature, top_p, top_k, repetition_penalty, max_tokens}: fixed sampling settings."""

    name = "sampling"

    def configure(self, plan: PlanBuilder) -> None:
        fixed: dict[str, Any] = {}
        for key in ("temperature", "top_p"):
            value = _number(self.options, key)
            if value is not None:
                fixed[key] = value
        top_k = _positive_int(self.options, "top_k")
        if top_k is not None:
            fixed["top_k"] = top_k
        penalty = _number(self.options, "repetition_penalty")
        limit = _positive_int(self.options, "max_tokens")
        # The upstream evidently takes sampling extensions: let the client's own top_k through as well.
        plan.tune(send_top_k=True)
        if limit is not None:
            _lower_cap(plan, limit)

        def apply(body: dict[str, Any]) -> None:
            body.update(fixed)
            if limit is not None:
                asked = body.get("max_tokens")
                if isinstance(asked, int) and asked > limit:
                    body["max_tokens"] = limit

        if fixed or limit is not None:
            plan.anthropic_hooks.append(apply)
        if penalty is not None and _speaks_openai(plan):

            def add_penalty(body: dict[str, Any]) -> None:
                body["repetition_penalty"] = penalty

            plan.upstream_hooks.append(add_penalty)


class MaxCompletionTokensTransformer(Transformer):
    """maxcompletiontokens {max_completion_tokens?}: sends the limit as max_completion_tokens."""

    name = "maxcompletiontokens"

    def configure(self, plan: PlanBuilder) -> None:
        plan.tune(max_tokens_field="max_completion_tokens")
        value = _positive_int(self.options, "max_completion_tokens")
        if value is None:
            return

        def fix(body: dict[str, Any]) -> None:
            body["max_tokens"] = value

        plan.anthropic_hooks.append(fix)


class CerebrasTransformer(Transformer):
    """cerebras: text-only message content as plain strings; no parallel_tool_calls (Cerebras rejects it)."""

    name = "cerebras"

    def configure(self, plan: PlanBuilder) -> None:
        if not _speaks_openai(plan):
            return
        drop = plan.dialect.drop_keys
        if "parallel_tool_calls" not in drop:
            plan.tune(drop_keys=(*drop, "parallel_tool_calls"))
        plan.upstream_hooks.append(flatten_text_content)


def flatten_text_content(body: dict[str, Any]) -> None:
    """Join a message's content parts into one string when they are all text (images stay parts)."""
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        if all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        ):
            message["content"] = "".join(p["text"] for p in content)


class VercelTransformer(Transformer):
    """vercel: AI Gateway; options merged into the body, automatic prompt caching, reasoning object."""

    name = "vercel"

    #: what CCR adds for the gateway unless the options say otherwise
    GATEWAY_DEFAULTS: Final[Mapping[str, Any]] = {"providerOptions": {"gateway": {"caching": "auto"}}}

    def configure(self, plan: PlanBuilder) -> None:
        extra: dict[str, Any] = {}
        deep_merge(extra, dict(self.GATEWAY_DEFAULTS))
        deep_merge(extra, plan.dialect.extra_body)
        deep_merge(extra, self.options)
        plan.tune(thinking_param="openrouter", extra_body=extra)
