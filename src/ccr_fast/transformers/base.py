"""What a transformer may do, and the builder it does it to.

CCR runs every transformer's hooks on every request. ccr-fast instead lets each transformer
*configure* a plan once (endpoint, dialect flags, header tweaks) and register only the body hooks
it really needs, so a request pays for exactly the hooks in its chain and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Protocol

from ccr_fast.protocol.openai_dialect import OpenAIDialect

Endpoint = Literal["anthropic", "openai", "gemini", "openai-responses"]
BodyHook = Callable[[dict[str, Any]], None]
#: rewrites a complete non-stream Anthropic message in place
MessageHook = Callable[[dict[str, Any]], None]


class ResponseFilter(Protocol):
    """Rewrites an Anthropic SSE stream. ``feed`` always receives whole events (one or more complete
    ``event:/data:`` frames) and returns whole events; one instance serves one response."""

    def feed(self, events: bytes) -> bytes: ...

    def close(self) -> bytes: ...


ResponseFilterFactory = Callable[[], ResponseFilter]


@dataclass
class PlanBuilder:
    """Mutable while a chain is being compiled; frozen into a Plan afterwards."""

    endpoint: Endpoint | None = None
    dialect: OpenAIDialect = field(default_factory=OpenAIDialect)
    #: run on the Anthropic-format body before translation (both endpoints)
    anthropic_hooks: list[BodyHook] = field(default_factory=list)
    #: run on the upstream-format body after translation (OpenAI endpoint only)
    upstream_hooks: list[BodyHook] = field(default_factory=list)
    #: per-response stream rewriters, applied in chain order (forces the translated path)
    response_filters: list[ResponseFilterFactory] = field(default_factory=list)
    #: rewriters of complete non-stream messages, applied in chain order
    message_hooks: list[MessageHook] = field(default_factory=list)
    #: extra headers for the upstream request
    headers: dict[str, str] = field(default_factory=dict)
    #: Anthropic endpoint: send the key as `Authorization: Bearer` instead of `x-api-key`
    use_bearer: bool = False
    #: a reason this chain cannot serve requests (a transformer this version does not implement)
    unavailable: str | None = None

    def tune(self, **changes: Any) -> None:
        self.dialect = replace(self.dialect, **changes)


class Transformer:
    """A named step of a CCR ``transformer.use`` chain."""

    name: ClassVar[str]
    #: set by endpoint transformers: the wire protocol they speak
    endpoint: ClassVar[Endpoint | None] = None

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})

    def configure(self, plan: PlanBuilder) -> None:
        """Adjust the plan; called once per provider/model when the config is loaded."""
        if self.endpoint is not None:
            plan.endpoint = self.endpoint

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def deep_merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    """Merge ``extra`` into ``target``: objects merge recursively, anything else overwrites."""
    for key, value in extra.items():
        cur = target.get(key)
        if isinstance(cur, dict) and isinstance(value, dict):
            deep_merge(cur, value)
        else:
            target[key] = _clone(value)


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value
