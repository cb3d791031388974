"""Transformer names -> classes, with CCR's spellings."""

from __future__ import annotations

from typing import Any

from ccr_fast.transformers.base import Transformer
from ccr_fast.transformers.builtin import (
    AnthropicTransformer,
    CleancacheTransformer,
    CustomParamsTransformer,
    DeepseekTransformer,
    GeminiTransformer,
    GroqTransformer,
    MaxTokenTransformer,
    OpenAITransformer,
    OpenrouterTransformer,
    StreamOptionsTransformer,
)
from ccr_fast.transformers.enhancetool import EnhanceToolTransformer
from ccr_fast.transformers.openai_responses import OpenAIResponsesTransformer
from ccr_fast.transformers.reasoning import (
    ExtraThinkTagTransformer,
    ForceReasoningTransformer,
    ReasoningTransformer,
)
from ccr_fast.transformers.sampling import (
    CerebrasTransformer,
    MaxCompletionTokensTransformer,
    SamplingTransformer,
    VercelTransformer,
)
from ccr_fast.transformers.tooluse import TooluseTransformer
from ccr_fast.transformers.vertex import VertexClaudeTransformer, VertexGeminiTransformer

REGISTRY: dict[str, type[Transformer]] = {
    cls.name: cls
    for cls in (
        AnthropicTransformer,
        OpenAITransformer,
        DeepseekTransformer,
        GeminiTransformer,
        OpenAIResponsesTransformer,
        OpenrouterTransformer,
        GroqTransformer,
        MaxTokenTransformer,
        CleancacheTransformer,
        StreamOptionsTransformer,
        CustomParamsTransformer,
        TooluseTransformer,
        EnhanceToolTransformer,
        ReasoningTransformer,
        SamplingTransformer,
        MaxCompletionTokensTransformer,
        CerebrasTransformer,
        VercelTransformer,
        ForceReasoningTransformer,
        ExtraThinkTagTransformer,
        VertexGeminiTransformer,
        VertexClaudeTransformer,
    )
}

#: CCR transformer names this version recognises but does not implement yet: a provider using one
#: still loads (so an existing config starts), and requests routed to it get a clear error.
NOT_YET_AVAILABLE: frozenset[str] = frozenset()

_LOWER = {name.lower(): name for name in REGISTRY}


def lookup(name: str) -> type[Transformer] | None:
    """Exact CCR spelling first, then case-insensitively (``openai`` for ``OpenAI``)."""
    cls = REGISTRY.get(name)
    if cls is None:
        canonical = _LOWER.get(name.lower())
        if canonical is not None:
            cls = REGISTRY[canonical]
    return cls


#: the upstream API path each endpoint transformer speaks, as GET /api/transformers shows it
_ENDPOINT_PATHS = {
    "anthropic": "/v1/messages",
    "openai": "/v1/chat/completions",
    "gemini": "/v1beta/models/:modelAndAction",
    "openai-responses": "/v1/responses",
}


def endpoint_path(endpoint: str | None) -> str | None:
    return _ENDPOINT_PATHS.get(endpoint or "")


def describe_transformers() -> list[dict[str, Any]]:
    """For ``GET /api/transformers`` (CCR answers {transformers: [{name, endpoint}]})."""
    out: list[dict[str, Any]] = []
    for name, cls in REGISTRY.items():
        # a transformer may name its own upstream path (Vertex AI's differ from the APIs they speak)
        endpoint = getattr(cls, "api_path", None) or endpoint_path(cls.endpoint)
        out.append({"name": name, "endpoint": endpoint, "description": cls.describe(), "available": True})
    for name in sorted(NOT_YET_AVAILABLE):
        out.append({"name": name, "endpoint": None, "description": "", "available": False})
    return out
