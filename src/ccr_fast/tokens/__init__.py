"""Offline token counting: CCR's cl100k count for routing, each model's own encoding for ``count_tokens``."""

from ccr_fast.tokens.counter import (
    IMAGE_TOKENS,
    TokenCounter,
    count_tokens,
    count_tokens_async,
    counter_for,
    default_counter,
    encoding,
    file_counter,
    text_tokens,
)
from ccr_fast.tokens.encodings import BUNDLED, CCR_ENCODING
from ccr_fast.tokens.models import encoding_for_model, hf_encoding, tiktoken_encoding

__all__ = [
    "BUNDLED",
    "CCR_ENCODING",
    "IMAGE_TOKENS",
    "TokenCounter",
    "count_tokens",
    "count_tokens_async",
    "counter_for",
    "default_counter",
    "encoding",
    "encoding_for_model",
    "file_counter",
    "hf_encoding",
    "text_tokens",
    "tiktoken_encoding",
]
