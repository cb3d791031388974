"""Anthropic Messages request → Gemini ``generateContent`` request body and URL (pure functions, no I/O).

Only fields Gemini knows are written, each built fresh: Gemini parses the body as protobuf JSON and rejects
the whole request over one unknown key, so Anthropic-only fields (``cache_control``, ``citations``,
``metadata`` ...) must not leak.  The model and streaming choice live in the URL (``gemini_url``), not the
body.  Neither the input nor the dialect is ever mutated.

Layout rules Gemini enforces and Anthropic does not:

* roles are ``user`` and ``model`` only, and tool results are ``functionResponse`` parts of a user turn.  They
  go first in that turn, ahead of any text, because Gemini wants the responses right after the turn holding
  the calls;
* a ``functionResponse`` needs the function ``name``, which Anthropic's ``tool_result`` does not carry: it
  is recovered from the ``tool_use`` with the same id earlier in the history.  A result whose call is not in
  the history (a client that trimmed it) becomes text, since a response to no call is rejected;
* ``response`` must be an object: ``{"result": text}``, or ``{"error": text}`` for ``is_error`` results.
  Images a tool returned follow the responses as inline parts;
* call ids are never sent: the Gemini API rejects ``id`` in ``functionCall`` and ``functionResponse``
  ("Unknown name \\"id\\""), and pairs calls with responses by name and order;
* Gemini 3 rejects a history whose first function call of a step lacks its ``thoughtSignature``.  The
  signature comes back in the thinking block in front of the call (see ``gemini_response``); when the
  client lost it, the call carries Google's documented ``skip_thought_signature_validator`` instead.

Tools become ``functionDeclarations`` with their schemas reduced to the subset Gemini parses
(``gemini_schema``) and names Gemini accepts (``to_gemini_name``); Anthropic's web search server tool becomes
Google Search, server tools Gemini cannot run are left out, and the Anthropic-defined client tools (bash,
text editor) get their documented schema (``server_tools``).

Mid-conversation ``system`` messages become a user part marked as a system message, in place, rather than
being folded into ``systemInstruction``: the instruction keeps its position in the conversation, and
``systemInstruction`` stays a stable prefix, which Gemini's implicit context caching depends on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from ccr_fast.protocol._anthropic_request import is_int, is_number, turns
from ccr_fast.protocol.gemini_response import from_client_signature, to_gemini_name
from ccr_fast.protocol.gemini_schema import function_parameters
from ccr_fast.protocol.server_tools import (
    client_tool_schema,
    find_web_search,
    gemini_search_tool,
    is_server_tool,
)

__all__ = ["GeminiDialect", "anthropic_to_gemini", "gemini_url"]

JSONDict = dict[str, Any]

#: Google's documented stand-in for a thought signature that was lost
SKIP_SIGNATURE: Final = "skip_thought_signature_validator"
#: Gemini accepts at most five stop sequences
MAX_STOP_SEQUENCES: Final = 5
SYSTEM_NOTE: Final = "<system>\n{}\n</system>"
ORPHAN_RESULT: Final = "[result of tool call {}]\n{}"
FILES_FOLLOW: Final = "(the tool returned files; they follow this response)"
_MIME_BY_EXTENSION: Final[Mapping[str, str]] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
}


@dataclass(frozen=True, slots=True)
class GeminiDialect:
    """What one Gemini model accepts beyond the common request; ``for_model`` knows the public models."""

    #: the model takes ``thinkingConfig`` (2.5 and later; 1.5 and 2.0 reject it)
    thinking: bool = True
    #: ``thinkingBudget: 0`` turns thinking off (2.5 Flash and Flash-Lite); the others reject 0, so a
    #: request with thinking disabled sends no thinkingConfig to them and gets the model's default
    thinking_off: bool = False
    #: the largest ``thinkingBudget`` the model accepts; larger client budgets are lowered to it
    max_thinking_budget: int | None = None

    @classmethod
    def for_model(cls, model: str) -> GeminiDialect:
        name = model.lower().removeprefix("models/")
        if name.startswith(("gemini-1.", "gemini-2.0", "gemma")):
            return cls(thinking=False)
        if name.startswith("gemini-2.5-flash"):
            return cls(thinking_off=True, max_thinking_budget=24576)
        if name.startswith("gemini-2.5-pro"):
            return cls(max_thinking_budget=32768)
        return cls()


def gemini_url(base_url: str, model: str, *, stream: bool) -> str:
    """The endpoint for ``model`` under a provider's ``api_base_url``.

    CCR users write the base as ``https://generativelanguage.googleapis.com/v1beta/models/``; a base without
    the trailing slash, or ending at the API version, or at the bare host, names the same place.
    """
    base = base_url.rstrip("/")
    if not urlsplit(base).path:
        base += "/v1beta"
    if not base.endswith("/models"):
        base += "/models"
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{base}/{model.removeprefix('models/')}:{method}"


def anthropic_to_gemini(
    body: Mapping[str, Any], *, model: str, dialect: GeminiDialect | None = None
) -> JSONDict:
    """Translate an Anthropic ``/v1/messages`` body for Gemini's ``model`` (its dialect inferred if None)."""
    dialect = dialect or GeminiDialect.for_model(model)
    out: JSONDict = {"contents": _contents(body.get("messages"))}
    system = _text_parts(body.get("system"))
    if system:
        out["systemInstruction"] = {"parts": system}
    tools, declared = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    tool_config = _tool_config(body.get("tool_choice"), declared)
    if tool_config:
        out["toolConfig"] = tool_config
    generation = _generation_config(body, dialect)
    if generation:
        out["generationConfig"] = generation
    return out


# --- contents -----------------------------------------------------------------------------------------------


def _contents(messages: Any) -> list[JSONDict]:
    contents: list[JSONDict] = []
    tool_names: dict[str, str] = {}  # tool_use id → the Gemini function name it called
    for role, blocks in turns(messages):
        if role == "assistant":
            gemini_role, parts = "model", _model_parts(blocks, tool_names)
        elif role == "system":
            text = "\n\n".join(p["text"] for p in _text_parts(blocks))
            gemini_role, parts = "user", [{"text": SYSTEM_NOTE.format(text)}] if text else []
        else:
            gemini_role, parts = "user", _user_parts(blocks, tool_names)
        if not parts:
            continue
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    for content in contents:
        if content["role"] == "user":  # a system note merged in front of tool results goes behind them
            content["parts"].sort(key=lambda part: "functionResponse" not in part)
    return contents


def _text_parts(content: Any) -> list[JSONDict]:
    """Text parts of a string or of the text blocks of a list (system prompts)."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        return []
    return [
        {"text": block["text"]}
        for block in content
        if isinstance(block, Mapping) and isinstance(block.get("text"), str) and block["text"]
    ]


def _model_parts(blocks: list[Any], tool_names: dict[str, str]) -> list[JSONDict]:
    """A model turn: text and function calls, each thinking block's Gemini signature on the part after it.

    Thought text itself is not sent back: Gemini needs only the signatures to restore its reasoning.
    """
    parts: list[JSONDict] = []
    pending: str | None = None
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        part: JSONDict
        if kind == "thinking":
            pending = from_client_signature(block.get("signature")) or pending
            continue
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            part = {"text": block["text"]}
        elif kind == "tool_use":
            raw_name = block.get("name")
            name = to_gemini_name(raw_name) if isinstance(raw_name, str) else ""
            if isinstance(block.get("id"), str):
                tool_names[block["id"]] = name
            arguments = block.get("input")
            args = arguments if isinstance(arguments, Mapping) else {}
            part = {"functionCall": {"name": name, "args": args}}
        else:
            continue
        if pending is not None:
            part["thoughtSignature"] = pending
            pending = None
        parts.append(part)
    if pending is not None and parts and "thoughtSignature" not in parts[-1]:
        # thinking last in the turn: its signature came on the last part
        parts[-1]["thoughtSignature"] = pending
    first_call = next((part for part in parts if "functionCall" in part), None)
    if first_call is not None and "thoughtSignature" not in first_call:
        first_call["thoughtSignature"] = SKIP_SIGNATURE
    return parts


def _user_parts(blocks: list[Any], tool_names: Mapping[str, str]) -> list[JSONDict]:
    responses: list[JSONDict] = []
    after: list[JSONDict] = []
    parts: list[JSONDict] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "tool_result":
            _add_tool_result(block, tool_names, responses, after)
        else:
            parts.extend(_content_parts(block))
    return responses + after + parts


def _add_tool_result(
    block: Mapping[str, Any], tool_names: Mapping[str, str], responses: list[JSONDict], after: list[JSONDict]
) -> None:
    content = block.get("content")
    texts: list[str] = []
    files: list[JSONDict] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for item in content:
            if not isinstance(item, Mapping):
                continue
            for part in _content_parts(item):
                if "text" in part:
                    texts.append(part["text"])
                else:
                    files.append(part)
    text = "\n".join(t for t in texts if t)
    tool_id = block.get("tool_use_id")
    name = tool_names.get(tool_id) if isinstance(tool_id, str) else None
    if name is None:
        if text:
            after.append({"text": ORPHAN_RESULT.format(tool_id, text)})
        after.extend(files)
        return
    key = "error" if block.get("is_error") is True else "result"
    if files and not text:
        text = FILES_FOLLOW
    responses.append({"functionResponse": {"name": name, "response": {key: text}}})
    after.extend(files)


def _content_parts(block: Mapping[str, Any]) -> list[JSONDict]:
    """Gemini parts for one Anthropic user-side block (empty for blocks with no Gemini form)."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return [{"text": text}] if isinstance(text, str) and text else []
    if kind == "image":
        part = _file_part(block.get("source"), default_mime="image/jpeg")
        return [part] if part is not None else []
    if kind == "document":
        return _document_parts(block)
    if kind == "search_result":
        lines = [
            block.get("title"),
            block.get("source"),
            *(p["text"] for p in _text_parts(block.get("content"))),
        ]
        text = "\n".join(line for line in lines if isinstance(line, str) and line)
        return [{"text": text}] if text else []
    return []


def _file_part(source: Any, *, default_mime: str) -> JSONDict | None:
    """``inlineData`` for base64 data, ``fileData`` (with the MIME type Gemini requires) for a URL."""
    if not isinstance(source, Mapping):
        return None
    media_type = source.get("media_type")
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        mime = media_type if isinstance(media_type, str) and media_type else default_mime
        return {"inlineData": {"mimeType": mime, "data": source["data"]}}
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
        extension = urlsplit(url).path.rpartition(".")[2].lower()
        return {"fileData": {"mimeType": _MIME_BY_EXTENSION.get(extension, default_mime), "fileUri": url}}
    return None


def _document_parts(block: Mapping[str, Any]) -> list[JSONDict]:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return []
    title = block.get("title") if isinstance(block.get("title"), str) else None
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        text = f"{title}\n\n{source['data']}" if title else source["data"]
        return [{"text": text}] if text else []
    if kind == "content" and isinstance(source.get("content"), list):
        return [
            part for item in source["content"] if isinstance(item, Mapping) for part in _content_parts(item)
        ]
    part = _file_part(source, default_mime="application/pdf")  # Gemini reads PDFs natively
    return [part] if part is not None else []


# --- tools --------------------------------------------------------------------------------------------------


def _tools(tools: Any) -> tuple[list[JSONDict], set[str]]:
    """Gemini ``tools`` and the declared function names."""
    if not isinstance(tools, list):
        return [], set()
    declarations: list[JSONDict] = []
    for tool in tools:
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str) or is_server_tool(tool):
            continue
        kind = tool.get("type")
        schema = tool.get("input_schema")
        if not isinstance(schema, Mapping) and isinstance(kind, str):
            schema = client_tool_schema(kind)
        declaration: JSONDict = {"name": to_gemini_name(tool["name"])}
        if isinstance(tool.get("description"), str) and tool["description"]:
            declaration["description"] = tool["description"]
        parameters = function_parameters(schema)
        if parameters is not None:
            declaration["parameters"] = parameters
        declarations.append(declaration)
    out: list[JSONDict] = []
    if declarations:
        out.append({"functionDeclarations": declarations})
    if find_web_search(tools) is not None:
        out.append(gemini_search_tool())
    return out, {d["name"] for d in declarations}


def _tool_choice_mode(choice: Mapping[str, Any], declared: set[str]) -> JSONDict | None:
    kind = choice.get("type")
    if kind in ("auto", "any", "none"):
        return {"mode": str(kind).upper()}
    name = choice.get("name")
    if kind == "tool" and isinstance(name, str) and to_gemini_name(name) in declared:
        return {"mode": "ANY", "allowedFunctionNames": [to_gemini_name(name)]}
    return None


def _tool_config(choice: Any, declared: set[str]) -> JSONDict | None:
    """``toolConfig`` for a ``tool_choice``; only with declared functions, which every mode refers to."""
    if not declared or not isinstance(choice, Mapping):
        return None
    mode = _tool_choice_mode(choice, declared)
    return {"functionCallingConfig": mode} if mode is not None else None


# --- parameters ---------------------------------------------------------------------------------------------


def _generation_config(body: Mapping[str, Any], dialect: GeminiDialect) -> JSONDict:
    out: JSONDict = {}
    max_tokens = body.get("max_tokens")
    if is_int(max_tokens) and max_tokens > 0:
        out["maxOutputTokens"] = max_tokens
    for source, target in (("temperature", "temperature"), ("top_p", "topP")):
        if is_number(body.get(source)):
            out[target] = body[source]
    if is_int(body.get("top_k")):
        out["topK"] = body["top_k"]
    stop = body.get("stop_sequences")
    if isinstance(stop, list):
        sequences = [s for s in stop if isinstance(s, str) and s][:MAX_STOP_SEQUENCES]
        if sequences:
            out["stopSequences"] = sequences
    thinking = _thinking_config(body.get("thinking"), dialect)
    if thinking is not None:
        out["thinkingConfig"] = thinking
    return out


def _thinking_config(thinking: Any, dialect: GeminiDialect) -> JSONDict | None:
    """``thinkingConfig`` for Anthropic's ``thinking``: a budget (-1 lets the model decide) with thought
    summaries included, or thinking off where the model allows it.  No ``thinking`` sends nothing, which
    leaves the model's default."""
    if not dialect.thinking or not isinstance(thinking, Mapping):
        return None
    kind = thinking.get("type")
    # ``display: "omitted"`` asks for thinking blocks without their text: Gemini then sends no summaries,
    # and the signatures still arrive on the parts.
    summaries = thinking.get("display") != "omitted"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        chosen = budget if is_int(budget) and budget > 0 else -1
        if dialect.max_thinking_budget is not None and chosen > dialect.max_thinking_budget:
            chosen = dialect.max_thinking_budget
        return {"thinkingBudget": chosen, "includeThoughts": summaries}
    if kind == "adaptive":
        return {"thinkingBudget": -1, "includeThoughts": summaries}
    if kind == "disabled" and dialect.thinking_off:
        return {"thinkingBudget": 0}
    return None
