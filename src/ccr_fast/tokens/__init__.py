"""Offline token counting (cl100k_base, CCR's method) for routing and ``count_tokens``."""

from ccr_fast.tokens.counter import (
    IMAGE_TOKENS,
    TokenCounter,
    count_tokens,
    count_tokens_async,
    default_counter,
    encoding,
    text_tokens,
)

__all__ = [
    "IMAGE_TOKENS",
    "TokenCounter",
    "count_tokens",
    "count_tokens_async",
    "default_counter",
    "encoding",
    "text_tokens",
]
