"""Gemini ``generateContent`` response → Anthropic message (a pure function), plus what the stream and request
translators share with it: the block rules, finish reason → stop reason, usage, errors, and the two
encodings that cross the client and come back (function names and thought signatures).

**Thought signatures.**  Gemini puts an opaque ``thoughtSignature`` on response parts, and Gemini 3 rejects
the next request when the first ``functionCall`` of a step comes back without it ("Function call is missing
a thought_signature").  A stateless proxy can only keep it in the client's history, and the only Anthropic
field made for opaque data the client returns unchanged is a thinking block's ``signature``.  Tool ids
cannot carry it: they are capped at 64 characters and signatures run to kilobytes.  So:

* the signature of a thought part is the signature of the thinking block those thoughts open;
* the signature of any other part (a ``functionCall``, text) signs the thinking block still open in front of
  it, or else gets a thinking block of its own, with empty text, emitted right before the part's block;
* on the way back (``gemini_request``) a thinking block's signature goes onto the next part of the turn.

A part that carries only a signature (the empty final text part Gemini streams) never opens a block: its
signature signs an open thinking block, or waits for the next part, and is dropped if none comes.  Gemini
documents signatures on text as optional to return, and a block of its own after every answer would show
in Claude Code as an empty thinking line.

Signatures are handed out with ``SIGNATURE_PREFIX`` in front.  A client routed between Gemini and Claude
keeps both kinds in one history; the prefix (``:`` never occurs in base64) tells a Gemini signature from an
Anthropic one, so each provider is only ever sent the signatures it made itself.

**Google Search grounding.**  ``groundingMetadata`` (the queries Gemini ran and the pages it used) becomes
Anthropic's ``server_tool_use`` + ``web_search_tool_result`` blocks (``server_tools``).

**Function names.**  Gemini requires a function name to start with a letter or an underscore, Anthropic
allows a digit or ``-`` first.  ``to_gemini_name`` puts ``_`` in front of such names, and of names that
already have that shape behind leading underscores, so ``from_gemini_name`` can undo it exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ccr_fast.protocol.anthropic_ids import new_message_id, to_anthropic_tool_id
from ccr_fast.protocol.errors import GatewayError, from_upstream
from ccr_fast.protocol.server_tools import findings_from_grounding, search_blocks, search_usage

__all__ = [
    "SIGNATURE_PREFIX",
    "BlockAssembler",
    "anthropic_usage",
    "block_reason",
    "candidate_parts",
    "first_candidate",
    "from_client_signature",
    "from_gemini_name",
    "gemini_error",
    "gemini_to_anthropic",
    "stop_reason_for",
    "to_client_signature",
    "to_gemini_name",
]

JSONDict = dict[str, Any]

SIGNATURE_PREFIX: Final = "gemini:"
NO_CANDIDATES_MESSAGE: Final = "the upstream response has no candidates"
#: finish reasons that mean the answer was withheld or cut for policy reasons
REFUSAL_REASONS: Final = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
_NAME_ESCAPE: Final = "_"


# --- encodings that round-trip through the client -----------------------------------------------------------


def to_gemini_name(name: str) -> str:
    """An Anthropic tool name as a valid Gemini function name (unchanged unless it starts badly)."""
    rest = name.lstrip(_NAME_ESCAPE)
    if rest and not (rest[0].isascii() and rest[0].isalpha()):
        return _NAME_ESCAPE + name
    return name


def from_gemini_name(name: str) -> str:
    """The inverse of ``to_gemini_name``, for the names Gemini calls functions by."""
    rest = name.lstrip(_NAME_ESCAPE)
    if name.startswith(_NAME_ESCAPE) and rest and not (rest[0].isascii() and rest[0].isalpha()):
        return name[len(_NAME_ESCAPE) :]
    return name


def to_client_signature(signature: str) -> str:
    """A Gemini ``thoughtSignature`` as a thinking block's ``signature``."""
    return SIGNATURE_PREFIX + signature


def from_client_signature(signature: Any) -> str | None:
    """The Gemini signature inside a client's thinking ``signature``; None for any other signature."""
    if isinstance(signature, str) and signature.startswith(SIGNATURE_PREFIX):
        return signature[len(SIGNATURE_PREFIX) :] or None
    return None


# --- tables -------------------------------------------------------------------------------------------------


def stop_reason_for(finish_reason: Any, *, tool_calls: bool, blocked: bool = False) -> str:
    """Anthropic's ``stop_reason`` for a Gemini ``finishReason`` (None when the stream never said).

    Gemini reports STOP after function calls, so emitted calls decide ``tool_use``.  Every reason without
    an Anthropic counterpart (OTHER, MALFORMED_FUNCTION_CALL, LANGUAGE ...) ends the turn normally: the
    client shows what arrived and the user can retry, which beats failing an answer that has content.
    """
    if blocked or finish_reason in REFUSAL_REASONS:
        return "refusal"
    if finish_reason == "MAX_TOKENS":
        return "max_tokens"
    return "tool_use" if tool_calls else "end_turn"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def anthropic_usage(metadata: Any, input_estimate: int = 0) -> dict[str, int]:
    """Anthropic usage from ``usageMetadata``.

    ``promptTokenCount`` includes the cached tokens and ``candidatesTokenCount`` excludes the thoughts, the
    reverse of Anthropic's conventions, so cached tokens are taken out of the input and thoughts added to
    the output.  Tool-use prompt tokens (search results Gemini fed itself) are input.  Without a prompt
    count ``input_estimate`` stands in, as a count of 0 would be worse than the estimate.
    """
    meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
    cached = _count(meta.get("cachedContentTokenCount"))
    prompt = _count(meta.get("promptTokenCount")) + _count(meta.get("toolUsePromptTokenCount"))
    return {
        "input_tokens": max(0, prompt - cached) if prompt else input_estimate,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": _count(meta.get("candidatesTokenCount")) + _count(meta.get("thoughtsTokenCount")),
    }


def gemini_error(error: Any) -> GatewayError:
    """The error a client sees for a Gemini ``error`` object (an HTTP body, or a chunk mid-stream)."""
    detail: Mapping[str, Any] = error if isinstance(error, Mapping) else {"message": str(error)}
    code = detail.get("code")
    status = code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600 else 500
    return from_upstream(status, orjson.dumps({"error": detail}))


# --- blocks -------------------------------------------------------------------------------------------------


class BlockAssembler(ABC):
    """The rules that turn Gemini parts into Anthropic blocks, shared by the non-stream and stream paths.

    At most one block is open at a time, as Anthropic's stream requires; a subclass decides what opening,
    appending, signing and closing produce (dicts for a message, SSE frames for a stream).  Function calls
    arrive whole, so a tool_use block is produced complete.
    """

    def __init__(self) -> None:
        #: the open block's type ("text" or "thinking"), None when no block is open
        self.open_kind: str | None = None
        self.signed = False
        self.tool_calls = 0
        #: a signature from a signature-only part, waiting for the part it belongs to
        self._pending: str | None = None

    def add_part(self, part: Any) -> None:
        if not isinstance(part, Mapping):
            return
        raw_signature = part.get("thoughtSignature")
        signature = raw_signature if isinstance(raw_signature, str) and raw_signature else None
        raw_text = part.get("text")
        text = raw_text if isinstance(raw_text, str) else ""
        call = part.get("functionCall")
        if part.get("thought") is True:
            self._thought(text, signature)
        elif text or isinstance(call, Mapping):
            self._sign_before_content(signature or self._pending)
            self._pending = None
            if text:
                if self.open_kind != "text":
                    self._close_open()
                    self.open_kind = "text"
                    self.open_block("text")
                self.append(text)
            if isinstance(call, Mapping):
                self._close_open()
                self.tool_calls += 1
                self._function_call(call)
        elif signature is not None:
            if self.open_kind == "thinking" and not self.signed:
                self._sign(signature)
            else:
                self._pending = signature

    def finish(self) -> None:
        """No more parts: close what is open; a signature still waiting has nothing to belong to."""
        self._close_open()
        self._pending = None

    # --- what subclasses produce ------------------------------------------------------------------------

    @abstractmethod
    def open_block(self, kind: str) -> None:
        """Start an empty ``kind`` block ("text" or "thinking") after the previous one was closed."""

    @abstractmethod
    def append(self, text: str) -> None:
        """Add text to the open block (thinking text for a thinking block)."""

    @abstractmethod
    def set_signature(self, signature: str) -> None:
        """Give the open thinking block its (client-encoded) signature."""

    @abstractmethod
    def close_block(self) -> None:
        """End the open block."""

    @abstractmethod
    def tool_use(self, tool_id: str, name: str, arguments: JSONDict) -> None:
        """Produce a complete tool_use block (no block is open)."""

    # --- rules ------------------------------------------------------------------------------------------

    def _thought(self, text: str, signature: str | None) -> None:
        if not text and signature is None:
            return
        if self.open_kind != "thinking" or (signature is not None and self.signed):
            self._close_open()
            self.open_kind = "thinking"
            self.open_block("thinking")
            if self._pending is not None and signature is None:
                self._sign(self._pending)
            self._pending = None
        if text:
            self.append(text)
        if signature is not None:
            self._sign(signature)

    def _sign_before_content(self, signature: str | None) -> None:
        """A content part's signature: signs the open unsigned thinking block, or gets one of its own."""
        if signature is None:
            return
        if self.open_kind != "thinking" or self.signed:
            self._close_open()
            self.open_kind = "thinking"
            self.open_block("thinking")
        self._sign(signature)
        self._close_open()

    def _sign(self, signature: str) -> None:
        self.signed = True
        self.set_signature(to_client_signature(signature))

    def _close_open(self) -> None:
        if self.open_kind is not None:
            self.close_block()
            self.open_kind = None
            self.signed = False

    def _function_call(self, call: Mapping[str, Any]) -> None:
        raw_id = call.get("id")
        name = call.get("name")
        args = call.get("args")
        self.tool_use(
            to_anthropic_tool_id(raw_id if isinstance(raw_id, str) else None),
            from_gemini_name(name) if isinstance(name, str) else "",
            dict(args) if isinstance(args, Mapping) else {},
        )


class _MessageAssembler(BlockAssembler):
    """Blocks as the ``content`` list of a message."""

    def __init__(self) -> None:
        super().__init__()
        self.content: list[JSONDict] = []

    def open_block(self, kind: str) -> None:
        if kind == "thinking":
            self.content.append({"type": "thinking", "thinking": "", "signature": ""})
        else:
            self.content.append({"type": "text", "text": ""})

    def append(self, text: str) -> None:
        block = self.content[-1]
        block[block["type"]] += text

    def set_signature(self, signature: str) -> None:
        self.content[-1]["signature"] = signature

    def close_block(self) -> None:
        """A block in a list is complete as it stands: closing only means nothing more is appended."""

    def tool_use(self, tool_id: str, name: str, arguments: JSONDict) -> None:
        self.content.append({"type": "tool_use", "id": tool_id, "name": name, "input": arguments})


def first_candidate(candidates: Any) -> Mapping[str, Any] | None:
    """The candidate a client sees: index 0 (Gemini omits the index when it is 0); any other candidate
    is an alternative answer the client did not ask for."""
    if not isinstance(candidates, list):
        return None
    for candidate in candidates:
        if isinstance(candidate, Mapping) and candidate.get("index", 0) in (0, None):
            return candidate
    return None


def candidate_parts(candidate: Mapping[str, Any]) -> list[Any]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return parts if isinstance(parts, list) else []


def block_reason(body: Mapping[str, Any]) -> str | None:
    """``promptFeedback.blockReason``: set when Gemini refused the prompt and sent no candidate."""
    feedback = body.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
    return reason if isinstance(reason, str) and reason else None


def gemini_to_anthropic(body: Mapping[str, Any], *, model: str, message_id: str | None = None) -> JSONDict:
    """Translate a non-streamed ``generateContent`` body; ``model`` is the name the client asked for.

    A blocked prompt (no candidate, ``promptFeedback.blockReason``) is an empty message with stop reason
    ``refusal``, as a stream of it would be.  Raises ``GatewayError`` for an error body, and for a body
    with neither candidates nor a block reason, because there is no message to build.
    """
    if body.get("error"):
        raise gemini_error(body["error"])
    candidate = first_candidate(body.get("candidates"))
    blocked = candidate is None and block_reason(body) is not None
    if candidate is None and not blocked:
        raise GatewayError(500, NO_CANDIDATES_MESSAGE, "api_error")
    assembler = _MessageAssembler()
    if candidate is not None:
        for part in candidate_parts(candidate):
            assembler.add_part(part)
    assembler.finish()
    finish_reason = candidate.get("finishReason") if candidate is not None else None
    content = assembler.content
    usage: JSONDict = anthropic_usage(body.get("usageMetadata"))
    search = findings_from_grounding(candidate.get("groundingMetadata") if candidate is not None else None)
    if search:
        # where Anthropic puts them: after the leading thinking, before the answer
        at = next((i for i, block in enumerate(content) if block["type"] != "thinking"), len(content))
        content[at:at] = search_blocks(search)
        usage["server_tool_use"] = search_usage(search)
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason_for(finish_reason, tool_calls=assembler.tool_calls > 0, blocked=blocked),
        "stop_sequence": None,
        "usage": usage,
    }
