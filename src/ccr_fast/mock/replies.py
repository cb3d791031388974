"""What the mock provider answers: the reply spec, auto mode, usage, and the byte schedule of a response.

A reply is dialect-neutral (text, thinking, tool calls, timing, failures, quirks). A dialect renders it into
its own JSON body or SSE frames (see ``dialects.py``); :func:`respond` turns that into an :class:`Outcome`,
the exact bytes to send and when, so the server never decides anything per frame while writing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

import orjson

DEFAULT_TEXT = "Hello from the ccr-fast mock provider."
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream"

#: Frame kinds. META frames (message_start, block start/stop, role chunk) go out with whatever precedes
#: them; CHUNK frames carry content and are the ones that are delayed and counted by fail_after_chunks;
#: TAIL frames finish the response (finish reason, usage, [DONE], message_stop).
META, CHUNK, TAIL = 0, 1, 2

_MOCK_TOOL = re.compile(r"MOCK_TOOL:([^:\s]+):([^\r\n]*)")
_TOOL_RESULT_PREFIX = "Tool result received: "
_REASONING_FIELDS = ("reasoning_content", "reasoning")


class Frame(NamedTuple):
    kind: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    #: the JSON text of the arguments as it goes on the wire; a raw string from the spec is kept verbatim
    arguments: str = "{}"
    id: str | None = None

    def input_object(self) -> dict[str, Any]:
        """The arguments as an object, for dialects whose wire shape needs one ({} if they are not one)."""
        try:
            value = orjson.loads(self.arguments)
        except orjson.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


DEFAULT_ERROR_MESSAGE = "mock provider error"
DEFAULT_MIDSTREAM_MESSAGE = "mock provider mid-stream error"


@dataclass(frozen=True, slots=True)
class ReplyError:
    status: int = 500
    message: str = DEFAULT_ERROR_MESSAGE
    type: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class MidstreamError:
    message: str = DEFAULT_MIDSTREAM_MESSAGE
    type: str | None = None


@dataclass(frozen=True, slots=True)
class UsageOverride:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Quirks:
    """Deviations of real OpenAI-compatible servers, switched on one by one to test a proxy against them."""

    reasoning_field: str = "reasoning_content"
    usage_on_finish_chunk: bool = False
    usage_every_chunk: bool = False
    groq_usage: bool = False
    no_finish_reason: bool = False
    finish_stop_with_tools: bool = False
    tool_index_zero: bool = False
    no_tool_index: bool = False
    interleave_tool_args: bool = False
    args_fragments: int = 1
    no_done: bool = False
    crlf: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    text: str = DEFAULT_TEXT
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    chunks: int = 10
    ttft_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    latency_ms: float = 0.0
    usage: UsageOverride = field(default_factory=UsageOverride)
    finish_reason: str | None = None
    error: ReplyError | None = None
    fail_after_chunks: int | None = None
    midstream_error: MidstreamError | None = None
    quirks: Quirks = field(default_factory=Quirks)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True, slots=True)
class Turn:
    """The newest user turn of a request, as far as auto mode cares."""

    tool_result: str | None
    text: str


@dataclass(frozen=True, slots=True)
class RequestContext:
    model: str
    stream: bool
    #: OpenAI ``stream_options.include_usage``
    include_usage: bool
    #: Gemini ``alt=sse`` (otherwise a streamed JSON array)
    sse: bool
    body_len: int
    #: request number, used to mint unique ids
    serial: int
    created: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """One response, fully decided: the server only writes these bytes, sleeping where told."""

    status: int
    content_type: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    #: seconds before anything is sent (latency_ms, error delay)
    delay: float = 0.0
    #: a streamed body: (seconds to wait first, bytes) pairs; None for a plain body
    segments: tuple[tuple[float, bytes], ...] | None = None
    #: break the connection after the segments instead of finishing the response
    aborted: bool = False

    @property
    def immediate(self) -> bool:
        """True when the whole response can be written at once, without a task."""
        if self.delay > 0 or self.aborted:
            return False
        return self.segments is None or all(delay == 0 for delay, _ in self.segments)


class Dialect(Protocol):
    """How one provider API renders a reply; implemented in ``dialects.py``."""

    def context(
        self, body: Mapping[str, Any], *, path: str, query: str, body_len: int, serial: int
    ) -> RequestContext: ...

    def latest_turn(self, body: Mapping[str, Any]) -> Turn: ...

    def headers(self, ctx: RequestContext) -> tuple[tuple[str, str], ...]: ...

    def error(self, error: ReplyError, ctx: RequestContext) -> bytes: ...

    def message(self, reply: Reply, usage: Usage, ctx: RequestContext) -> bytes: ...

    def stream(self, reply: Reply, usage: Usage, ctx: RequestContext) -> list[Frame]: ...

    def stream_content_type(self, ctx: RequestContext) -> str: ...


# --- reply spec parsing -------------------------------------------------------------------------------

_CONTENT_KEYS = ("text", "thinking", "tool_calls")
_REPLY_KEYS = frozenset(
    (
        *_CONTENT_KEYS,
        "chunks",
        "ttft_ms",
        "chunk_delay_ms",
        "latency_ms",
        "usage",
        "finish_reason",
        "error",
        "fail_after_chunks",
        "midstream_error",
        "quirks",
    )
)


def parse_reply(spec: Mapping[str, Any], base: Reply | None = None) -> Reply:
    """Build a Reply from its JSON spec; fields the spec leaves out come from ``base``.

    Content (text, thinking, tool_calls) is inherited as a group: a spec that names any of them replaces
    all three, so ``{"tool_calls": [...]}`` does not also repeat the default sentence.
    Raises ValueError with a readable message on a malformed spec.
    """
    base = base or Reply()
    if not isinstance(spec, Mapping):
        raise ValueError("a reply must be a JSON object")
    unknown = sorted(set(spec) - _REPLY_KEYS)
    if unknown:
        raise ValueError(f"unknown reply field(s): {', '.join(unknown)}")
    out = base
    if any(key in spec for key in _CONTENT_KEYS):
        out = replace(
            out,
            text=_string(spec, "text", ""),
            thinking=_string(spec, "thinking", ""),
            tool_calls=_tool_calls(spec.get("tool_calls", [])),
        )
    changes: dict[str, Any] = {}
    if "chunks" in spec:
        changes["chunks"] = _integer(spec, "chunks", minimum=1)
    for key in ("ttft_ms", "chunk_delay_ms", "latency_ms"):
        if key in spec:
            changes[key] = _number(spec, key)
    if "fail_after_chunks" in spec:
        changes["fail_after_chunks"] = (
            None if spec["fail_after_chunks"] is None else _integer(spec, "fail_after_chunks", minimum=0)
        )
    if "finish_reason" in spec:
        value = spec["finish_reason"]
        if value is not None and not isinstance(value, str):
            raise ValueError("finish_reason must be a string")
        changes["finish_reason"] = value
    if "usage" in spec:
        changes["usage"] = _usage_override(spec["usage"])
    if "error" in spec:
        changes["error"] = None if spec["error"] is None else _reply_error(spec["error"])
    if "midstream_error" in spec:
        value = spec["midstream_error"]
        changes["midstream_error"] = None if value is None else _midstream_error(value)
    if "quirks" in spec:
        changes["quirks"] = _quirks(spec["quirks"])
    return replace(out, **changes)


def _string(spec: Mapping[str, Any], key: str, default: str) -> str:
    value = spec.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _integer(spec: Mapping[str, Any], key: str, minimum: int) -> int:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}")
    return value


def _number(spec: Mapping[str, Any], key: str) -> float:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key} must be a number >= 0")
    return float(value)


def _tool_calls(value: Any) -> tuple[ToolCall, ...]:
    if not isinstance(value, list):
        raise ValueError("tool_calls must be a list")
    calls = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ValueError("each tool call needs a non-empty string name")
        call_id = item.get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise ValueError("a tool call id must be a string")
        args = item.get("arguments", {})
        if isinstance(args, str):
            text = args
        elif isinstance(args, Mapping):
            text = orjson.dumps(args).decode()
        else:
            raise ValueError("tool call arguments must be an object or a raw string")
        calls.append(ToolCall(name=item["name"], arguments=text, id=call_id))
    return tuple(calls)


def _usage_override(value: Any) -> UsageOverride:
    if not isinstance(value, Mapping):
        raise ValueError("usage must be an object")
    allowed = ("prompt_tokens", "completion_tokens", "cached_tokens")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(f"unknown usage field(s): {', '.join(unknown)}")
    return UsageOverride(**{key: _integer(value, key, minimum=0) for key in allowed if key in value})


def _reply_error(value: Any) -> ReplyError:
    if not isinstance(value, Mapping):
        raise ValueError("error must be an object")
    status = _integer(value, "status", minimum=400) if "status" in value else 500
    if status > 599:
        raise ValueError("error status must be 400-599")
    retry_after = _number(value, "retry_after") if value.get("retry_after") is not None else None
    error_type = value.get("type")
    if error_type is not None and not isinstance(error_type, str):
        raise ValueError("error type must be a string")
    return ReplyError(
        status=status,
        message=_string(value, "message", DEFAULT_ERROR_MESSAGE),
        type=error_type,
        retry_after=retry_after,
    )


def _midstream_error(value: Any) -> MidstreamError:
    if not isinstance(value, Mapping):
        raise ValueError("midstream_error must be an object")
    error_type = value.get("type")
    if error_type is not None and not isinstance(error_type, str):
        raise ValueError("midstream_error type must be a string")
    return MidstreamError(message=_string(value, "message", DEFAULT_MIDSTREAM_MESSAGE), type=error_type)


def _quirks(value: Any) -> Quirks:
    if not isinstance(value, Mapping):
        raise ValueError("quirks must be an object")
    known = set(Quirks.__dataclass_fields__)
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"unknown quirk(s): {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for key, item in value.items():
        if key == "reasoning_field":
            if item not in _REASONING_FIELDS:
                raise ValueError(f"reasoning_field must be one of {', '.join(_REASONING_FIELDS)}")
            changes[key] = item
        elif key == "args_fragments":
            changes[key] = _integer(value, key, minimum=1)
        elif isinstance(item, bool):
            changes[key] = item
        else:
            raise ValueError(f"quirk {key} must be a boolean")
    return Quirks(**changes)


# --- auto mode and usage ------------------------------------------------------------------------------


def auto_reply(turn: Turn, defaults: Reply) -> Reply:
    """The unscripted answer, so a client like Claude Code can do a whole tool round trip.

    A tool result wins over a MOCK_TOOL directive: the directive is still in the history of the request
    that carries the tool's result, and answering it again would loop forever.
    """
    if turn.tool_result is not None:
        text = _TOOL_RESULT_PREFIX + turn.tool_result[:200]
        return replace(defaults, text=text, thinking="", tool_calls=())
    match = _MOCK_TOOL.search(turn.text)
    if match is not None:
        raw = match.group(2).strip() or "{}"
        try:
            args = orjson.dumps(orjson.loads(raw)).decode()
        except orjson.JSONDecodeError:
            args = raw
        return replace(
            defaults, text="", thinking="", tool_calls=(ToolCall(name=match.group(1), arguments=args),)
        )
    return defaults


def usage_for(reply: Reply, body_len: int) -> Usage:
    """Rough but deterministic: prompt = body bytes // 4, completion = words of everything generated."""
    reasoning = len(reply.thinking.split())
    words = len(reply.text.split()) + reasoning
    words += sum(1 + len(call.arguments.split()) for call in reply.tool_calls)
    override = reply.usage
    prompt = override.prompt_tokens if override.prompt_tokens is not None else body_len // 4
    completion = override.completion_tokens if override.completion_tokens is not None else words
    cached = min(override.cached_tokens or 0, prompt)
    return Usage(prompt, completion, cached, min(reasoning, completion))


# --- splitting -----------------------------------------------------------------------------------------

_WORD_START = re.compile(r"(?<=\s)(?=\S)")


def split_words(text: str, parts: int) -> list[str]:
    """Split ``text`` at word starts into about ``parts`` pieces that concatenate back to ``text``."""
    if not text:
        return []
    words = _WORD_START.split(text)
    size = -(-len(words) // max(parts, 1))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def split_even(text: str, parts: int) -> list[str]:
    """Split ``text`` into ``parts`` pieces of near-equal length, anywhere (even inside an escape)."""
    if not text:
        return [""]
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


# --- the response ---------------------------------------------------------------------------------------


def respond(dialect: Dialect, reply: Reply, ctx: RequestContext) -> Outcome:
    """Render ``reply`` in ``dialect`` for one request."""
    headers = dialect.headers(ctx)
    if reply.error is not None:
        error = reply.error
        if error.retry_after is not None:
            value = error.retry_after
            headers = (*headers, ("retry-after", str(int(value)) if value == int(value) else str(value)))
        return Outcome(
            status=error.status,
            content_type=JSON_TYPE,
            body=dialect.error(error, ctx),
            headers=headers,
            delay=reply.latency_ms / 1000,
        )
    usage = usage_for(reply, ctx.body_len)
    if not ctx.stream:
        body = dialect.message(reply, usage, ctx)
        return Outcome(200, JSON_TYPE, body, headers, delay=reply.latency_ms / 1000)
    frames = dialect.stream(reply, usage, ctx)
    segments, aborted = schedule(
        frames, reply.ttft_ms / 1000, reply.chunk_delay_ms / 1000, reply.fail_after_chunks
    )
    return Outcome(200, dialect.stream_content_type(ctx), headers=headers, segments=segments, aborted=aborted)


def schedule(
    frames: Sequence[Frame], ttft: float, chunk_delay: float, fail_after: int | None
) -> tuple[tuple[tuple[float, bytes], ...], bool]:
    """Group frames into timed segments: ttft before the first content, chunk_delay before each later one.

    Frames with no delay between them are joined, so a zero-delay stream is one write. With
    ``fail_after`` the schedule stops before the chunk after the n-th (or before the tail when there
    are fewer), and the second value says the connection must then be broken.
    """
    segments: list[tuple[float, bytes]] = []
    pending = bytearray()
    pending_delay = 0.0
    sent = 0
    started = False
    for kind, data in frames:
        if fail_after is not None and (kind == TAIL or (kind == CHUNK and sent == fail_after)):
            if pending:
                segments.append((pending_delay, bytes(pending)))
            return tuple(segments), True
        delay = 0.0
        if kind != META:
            if not started:
                delay, started = ttft, True
            elif kind == CHUNK:
                delay = chunk_delay
        if kind == CHUNK:
            sent += 1
        if delay > 0:
            if pending:
                segments.append((pending_delay, bytes(pending)))
                pending = bytearray()
            pending_delay = delay
        pending += data
    if pending:
        segments.append((pending_delay, bytes(pending)))
    return tuple(segments), False
