"""Reading an Anthropic Messages request the way every upstream translator needs it.

The OpenAI and Gemini request translators walk the same ``messages`` list and read the same numeric
fields; the rules for both live here so the two upstreams cannot come to disagree on, say, which turns are
merged or whether ``true`` counts as a token budget.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, TypeGuard

__all__ = ["is_int", "is_number", "joined_text", "merged", "source_url", "turns"]


def turns(messages: Any) -> Iterator[tuple[str, list[Any]]]:
    """(role, blocks) per turn, string content as one text block, consecutive user/assistant turns merged.

    Anthropic merges consecutive same-role turns server-side, and clients rely on it: an assistant turn
    stored as two messages (a thinking block and the tool_use it signs, or text and ``tool_calls``) must
    reach the upstream as one, or the calls come apart from their results and signatures.  Roles other than
    ``assistant`` and ``system`` count as ``user``; each ``system`` message stays a turn of its own, since
    it marks a position in the conversation.  Malformed messages and content are skipped.
    """
    if not isinstance(messages, list):
        return
    role: str | None = None
    blocks: list[Any] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        this_role = message.get("role")
        this_role = this_role if this_role in ("assistant", "system") else "user"
        content = message.get("content")
        these = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(these, list):
            these = []
        if this_role == role and role != "system":
            blocks.extend(these)
            continue
        if role is not None:
            yield role, blocks
        role, blocks = this_role, list(these)
    if role is not None:
        yield role, blocks


def is_int(value: Any) -> TypeGuard[int]:
    """An integer JSON value; ``bool`` is an ``int`` subclass in Python but not a number in JSON."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An integer or float JSON value, ``true`` and ``false`` excluded."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def joined_text(content: Any) -> str:
    """A string, or the text of text blocks separated by a blank line (system prompts, search results)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [b["text"] for b in content if isinstance(b, Mapping) and isinstance(b.get("text"), str)]
    return "\n\n".join(t for t in texts if t)


def source_url(source: Any) -> str | None:
    if not isinstance(source, Mapping):
        return None
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        return f"data:{source.get('media_type') or 'application/octet-stream'};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    return None


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` deep-merged over ``base`` into a new dict: objects merge key by key, anything else replaces.

    Values from ``extra`` are copied so the request can be changed later without touching the dialect.
    """
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = merged(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out
