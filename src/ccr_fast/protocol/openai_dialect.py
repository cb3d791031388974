"""How one OpenAI-compatible upstream wants its Chat Completions requests, and how it answers.

Built once per provider/model from its transformer chain (never per request) and handed to the
sans-I/O translators in openai_request / openai_response / openai_stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ThinkingParam = Literal["none", "reasoning_effort", "openrouter", "deepseek"]


@dataclass(frozen=True, slots=True)
class OpenAIDialect:
    #: "max_tokens" (most compatible servers) or "max_completion_tokens" (OpenAI o-series)
    max_tokens_field: str = "max_tokens"
    #: lower max_tokens to this (maxtoken transformer, deepseek); never raises it
    max_tokens_cap: int | None = None
    #: ask for stream_options.include_usage on streams
    include_usage: bool = True
    #: how an Anthropic thinking request is expressed upstream
    thinking_param: ThinkingParam = "none"
    #: assistant thinking blocks sent back as this message field ("reasoning_content" for DeepSeek,
    #: "reasoning_details" for OpenRouter); None drops them (plain OpenAI)
    reasoning_out: str | None = None
    #: role used for system prompts ("system" or "developer")
    system_role: str = "system"
    #: send top_k (an extension some servers accept)
    send_top_k: bool = False
    #: send metadata.user_id as OpenAI's `user`
    send_user: bool = False
    #: deep-merged into every request body last (customparams, openrouter options)
    extra_body: dict[str, Any] = field(default_factory=dict)
    #: body keys removed last (e.g. a server that rejects `parallel_tool_calls`)
    drop_keys: tuple[str, ...] = ()
