"""CCR's built-in transformers (names as CCR spells them)."""

from __future__ import annotations

from typing import Any

from ccr_fast.transformers.base import PlanBuilder, Transformer, deep_merge


class AnthropicTransformer(Transformer):
    """Anthropic Messages endpoint; alone in a chain the response bytes pass through untouched."""

    name = "Anthropic"
    endpoint = "anthropic"

    def configure(self, plan: PlanBuilder) -> None:
        super().configure(plan)
        plan.use_bearer = bool(self.options.get("useBearer", False))
        ua = self.options.get("userAgent")
        if isinstance(ua, str) and ua:
            plan.headers["user-agent"] = ua


class OpenAITransformer(Transformer):
    """OpenAI Chat Completions endpoint (the default for providers without a transformer)."""

    name = "OpenAI"
    endpoint = "openai"


class GeminiTransformer(Transformer):
    """Google Gemini generateContent / streamGenerateContent (native API, x-goog-api-key)."""

    name = "gemini"
    endpoint = "gemini"


class DeepseekTransformer(Transformer):
    """DeepSeek: reasoning_content <-> thinking (replayed on tool-call turns); max_tokens capped at 8192."""

    name = "deepseek"

    def configure(self, plan: PlanBuilder) -> None:
        cap = plan.dialect.max_tokens_cap
        limit = 8192 if cap is None else min(cap, 8192)
        plan.tune(reasoning_out="reasoning_content", max_tokens_cap=limit)


class OpenrouterTransformer(Transformer):
    """OpenRouter: options merged into the body; reasoning / reasoning_details <-> thinking."""

    name = "openrouter"

    def configure(self, plan: PlanBuilder) -> None:
        extra = dict(plan.dialect.extra_body)
        if self.options:
            deep_merge(extra, self.options)
        plan.tune(reasoning_out="reasoning_details", thinking_param="openrouter", extra_body=extra)


class GroqTransformer(Transformer):
    """Groq: no cache_control, no `$schema` in tool parameters."""

    name = "groq"

    def configure(self, plan: PlanBuilder) -> None:
        plan.upstream_hooks.append(_strip_schema_keyword)


def _strip_schema_keyword(body: dict[str, Any]) -> None:
    for tool in body.get("tools") or ():
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict):
            params = fn.get("parameters")
            if isinstance(params, dict):
                _drop_key_recursive(params, "$schema")


def _drop_key_recursive(node: Any, key: str) -> None:
    if isinstance(node, dict):
        node.pop(key, None)
        for v in node.values():
            _drop_key_recursive(v, key)
    elif isinstance(node, list):
        for v in node:
            _drop_key_recursive(v, key)


class MaxTokenTransformer(Transformer):
    """maxtoken {max_tokens: N}: lowers max_tokens to N (never raises it)."""

    name = "maxtoken"

    def configure(self, plan: PlanBuilder) -> None:
        limit = self.options.get("max_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            raise ValueError("option max_tokens must be a positive integer")
        cap = plan.dialect.max_tokens_cap
        plan.tune(max_tokens_cap=limit if cap is None else min(cap, limit))

        def lower(body: dict[str, Any]) -> None:
            mt = body.get("max_tokens")
            if isinstance(mt, int) and mt > limit:
                body["max_tokens"] = limit

        plan.anthropic_hooks.append(lower)


class CleancacheTransformer(Transformer):
    """cleancache: removes every cache_control marker (for upstreams that reject it)."""

    name = "cleancache"

    def configure(self, plan: PlanBuilder) -> None:
        plan.anthropic_hooks.append(strip_cache_control)


def strip_cache_control(body: dict[str, Any]) -> None:
    body.pop("cache_control", None)
    system = body.get("system")
    if isinstance(system, list):
        for block in system:
            if isinstance(block, dict):
                block.pop("cache_control", None)
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            tool.pop("cache_control", None)
    for msg in body.get("messages") or ():
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict):
                    block.pop("cache_control", None)
                    inner = block.get("content")
                    if isinstance(inner, list):
                        for b in inner:
                            if isinstance(b, dict):
                                b.pop("cache_control", None)


class StreamOptionsTransformer(Transformer):
    """streamoptions: ask for stream_options.include_usage (default on; {include_usage: false} disables)."""

    name = "streamoptions"

    def configure(self, plan: PlanBuilder) -> None:
        plan.tune(include_usage=bool(self.options.get("include_usage", True)))


class CustomParamsTransformer(Transformer):
    """customparams: deep-merges its options into every request body."""

    name = "customparams"

    def configure(self, plan: PlanBuilder) -> None:
        extra = dict(plan.dialect.extra_body)
        deep_merge(extra, self.options)
        plan.tune(extra_body=extra)
        if plan.endpoint == "anthropic":
            options = self.options

            def merge(body: dict[str, Any]) -> None:
                deep_merge(body, options)

            plan.anthropic_hooks.append(merge)
