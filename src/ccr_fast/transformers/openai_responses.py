"""CCR's ``openai-responses`` endpoint transformer: the upstream speaks OpenAI's Responses API."""

from __future__ import annotations

from ccr_fast.transformers.base import Transformer

__all__ = ["OpenAIResponsesTransformer"]


class OpenAIResponsesTransformer(Transformer):
    """OpenAI Responses API endpoint (`api_base_url` is the full /v1/responses URL); reasoning round-trips."""

    name = "openai-responses"
    endpoint = "openai-responses"
