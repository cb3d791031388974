"""Anthropic's versioned tools on upstreams that are not Anthropic: web search, and tools without a schema.

An Anthropic request can carry two kinds of tools with a versioned ``type`` and no ``input_schema``:

* **server tools** (``web_search_20250305``, ``web_fetch_…``, ``code_execution_…`` ...), which Anthropic runs
  itself and answers with ``server_tool_use`` + ``*_tool_result`` blocks;
* **Anthropic-defined client tools** (``bash_20250124``, ``text_editor_…``), which the client runs.  Claude
  knows their input by training; any other model needs it spelled out, or it calls ``bash`` with whatever
  arguments it guesses.  ``client_tool_schema`` gives the schema Anthropic documents for each.

Web search is the one server tool other providers can run natively:

=====================  ===========================================  ====================================
upstream               request                                      results come back as
=====================  ===========================================  ====================================
Gemini                 ``tools: [{"googleSearch": {}}]``            ``groundingMetadata``
OpenRouter             ``plugins: [{"id": "web"}]`` (= ``:online``)  ``annotations`` (``url_citation``)
OpenAI search models   ``web_search_options``                       ``annotations`` (``url_citation``)
anything else          dropped; ``x-ccr-warning`` tells the client  —
=====================  ===========================================  ====================================

Results become what Anthropic sends: one ``server_tool_use`` block (``srvtoolu_…``, input ``{"query": …}``)
and one ``web_search_tool_result`` block listing ``web_search_result`` items, plus
``usage.server_tool_use.web_search_requests``.  Upstreams return no ``encrypted_content`` (Anthropic's
opaque page text for a later turn), so it is empty; OpenAI and OpenRouter do not say what they searched for,
so the query is empty for them.  ``max_uses`` and the domain filters have no counterpart in these APIs and
are not enforced (``x-ccr-warning`` says so for domain filters); Anthropic remains the upstream to use when
they matter.

OpenRouter is recognised by its dialect: only the ``openrouter`` transformer has thinking sent back as
OpenRouter's own ``reasoning_details`` (its ``reasoning`` request object is shared by other transformers).
OpenAI's search models are recognised by name (``gpt-4o-search-preview``, ``gpt-5-search-api`` ...): other
OpenAI-compatible servers reject ``web_search_options`` as an unknown field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from ccr_fast.protocol.anthropic_ids import new_tool_use_id
from ccr_fast.protocol.openai_dialect import OpenAIDialect

__all__ = [
    "SERVER_TOOL_PREFIXES",
    "WARNING_HEADER",
    "SearchMode",
    "SearchResult",
    "WebSearchFindings",
    "WebSearchTool",
    "client_tool_schema",
    "dropped_server_tools",
    "find_web_search",
    "findings_from_annotations",
    "findings_from_grounding",
    "gemini_search_tool",
    "is_server_tool",
    "openai_search_fields",
    "openai_search_mode",
    "search_blocks",
    "search_events",
    "search_mode",
    "search_usage",
    "server_tool_warning",
]

JSONDict = dict[str, Any]

#: how an upstream runs Anthropic's web search tool (None: it cannot)
SearchMode = Literal["anthropic", "gemini", "openrouter", "openai"]

#: versioned tool types that Anthropic runs itself
SERVER_TOOL_PREFIXES: Final = (
    "web_search_",
    "web_fetch_",
    "code_execution_",
    "tool_search_tool_",
    "mcp_toolset",
)
WEB_SEARCH_PREFIX: Final = "web_search_"
WEB_SEARCH_NAME: Final = "web_search"
#: response header naming the request features the upstream could not honour
WARNING_HEADER: Final = "x-ccr-warning"
#: OpenAI's Chat Completions models that accept ``web_search_options`` say so in their name, as a word
#: (``gpt-4o-search-preview``, ``gpt-5-search-api``); ``o3-deep-research`` is not one of them
_OPENAI_SEARCH_MODEL: Final = re.compile(r"(?:^|[-/_.:])search(?:$|[-/_.:])", re.IGNORECASE)
_ONLINE_SUFFIX: Final = ":online"
_SERVER_TOOL_ID_PREFIX: Final = "srv"
_LOCATION_FIELDS: Final = ("city", "region", "country", "timezone")


# --- Anthropic-defined client tools ---------------------------------------------------------------------


def _bash_schema() -> JSONDict:
    return {
        "type": "object",
        "properties": {
            "command": {
                "type": "string",
                "description": "The bash command to run. Required unless the tool is being restarted.",
            },
            "restart": {
                "type": "boolean",
                "description": "Set to true to restart the bash session; leave out otherwise.",
            },
        },
    }


def _text_editor_schema(*, undo: bool) -> JSONDict:
    commands = ["view", "create", "str_replace", "insert"] + (["undo_edit"] if undo else [])
    return {
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": commands, "description": "The operation to perform."},
            "path": {"type": "string", "description": "Absolute path of the file or directory."},
            "file_text": {"type": "string", "description": "create: the content of the new file."},
            "old_str": {
                "type": "string",
                "description": "str_replace: the exact text to replace; it must occur once in the file.",
            },
            "new_str": {
                "type": "string",
                "description": "str_replace: the replacement text; insert: the text to insert.",
            },
            "insert_line": {
                "type": "integer",
                "description": "insert: the line after which to insert (0 inserts at the top).",
            },
            "view_range": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "view: [first, last] line numbers, 1-based; last -1 reads to the end.",
            },
        },
        "required": ["command", "path"],
    }


def client_tool_schema(tool_type: str) -> JSONDict | None:
    """The input schema of an Anthropic-defined client tool (a fresh object), None for other types.

    ``text_editor_20250429`` and later dropped ``undo_edit``; the older versions keep it.
    """
    if tool_type.startswith("bash_"):
        return _bash_schema()
    if tool_type.startswith("text_editor_"):
        return _text_editor_schema(undo=tool_type < "text_editor_20250429")
    return None


def is_server_tool(tool: Mapping[str, Any]) -> bool:
    """A tool Anthropic runs itself: a versioned server-tool type and no schema of its own."""
    kind = tool.get("type")
    return (
        isinstance(kind, str)
        and kind.startswith(SERVER_TOOL_PREFIXES)
        and not isinstance(tool.get("input_schema"), Mapping)
    )


# --- the request side -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebSearchTool:
    """The settings of a request's ``web_search_*`` tool that other upstreams can use or must warn about."""

    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    #: Anthropic's ``{type: "approximate", city, region, country, timezone}``
    user_location: Mapping[str, Any] | None = None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str) and v) if isinstance(value, list) else ()


def find_web_search(tools: Any) -> WebSearchTool | None:
    """The request's web search tool, None when it has none."""
    if not isinstance(tools, list):
        return None
    for tool in tools:
        if not isinstance(tool, Mapping) or not is_server_tool(tool):
            continue
        if not str(tool["type"]).startswith(WEB_SEARCH_PREFIX):
            continue
        location = tool.get("user_location")
        return WebSearchTool(
            allowed_domains=_strings(tool.get("allowed_domains")),
            blocked_domains=_strings(tool.get("blocked_domains")),
            user_location=location if isinstance(location, Mapping) else None,
        )
    return None


def openai_search_mode(dialect: OpenAIDialect, model: str) -> SearchMode | None:
    """How an OpenAI-compatible upstream searches: OpenRouter's plugin, OpenAI's search models, or not."""
    if dialect.reasoning_out == "reasoning_details":
        return "openrouter"
    if _OPENAI_SEARCH_MODEL.search(model):
        return "openai"
    return None


def search_mode(endpoint: str, dialect: OpenAIDialect, model: str) -> SearchMode | None:
    """How the upstream behind ``endpoint`` (anthropic, gemini, openai) runs web search; None: it can't."""
    if endpoint == "anthropic":
        return "anthropic"
    if endpoint == "gemini":
        return "gemini"
    if endpoint == "openai-responses":
        return None  # the Responses translator sends no built-in tools
    return openai_search_mode(dialect, model)


def openai_search_fields(search: WebSearchTool, mode: SearchMode | None, model: str) -> JSONDict:
    """The top-level request fields that switch search on for an OpenAI-compatible upstream ({} if none)."""
    if mode == "openrouter":
        # ``model:online`` already means the web plugin; asking twice would search twice.
        return {} if model.endswith(_ONLINE_SUFFIX) else {"plugins": [{"id": "web"}]}
    if mode != "openai":
        return {}
    options: JSONDict = {}
    location = search.user_location
    if location is not None:
        approximate = {key: location[key] for key in _LOCATION_FIELDS if isinstance(location.get(key), str)}
        if approximate:
            options["user_location"] = {"type": "approximate", "approximate": approximate}
    return {"web_search_options": options}


def gemini_search_tool() -> JSONDict:
    """Gemini's Google Search grounding tool (it takes no settings the Anthropic tool could fill)."""
    return {"googleSearch": {}}


def dropped_server_tools(
    body: Mapping[str, Any], *, endpoint: str, dialect: OpenAIDialect, model: str
) -> list[str]:
    """Types of the request's server tools the upstream will not see.

    Anthropic runs all of them; web search survives where ``search_mode`` finds a native search; every other
    server tool (web fetch, code execution ...) is left out of translated requests.
    """
    if endpoint == "anthropic":
        return []
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    searchable = search_mode(endpoint, dialect, model) is not None
    dropped: list[str] = []
    for tool in tools:
        if not isinstance(tool, Mapping) or not is_server_tool(tool):
            continue
        kind = str(tool["type"])
        if searchable and kind.startswith(WEB_SEARCH_PREFIX):
            continue
        if kind not in dropped:
            dropped.append(kind)
    return dropped


def server_tool_warning(
    body: Mapping[str, Any], *, endpoint: str, dialect: OpenAIDialect, model: str
) -> str | None:
    """The ``x-ccr-warning`` value for a request the upstream cannot serve as asked, else None.

    It names the server tools left out, and the web search domain filters a native search cannot apply
    (they change which pages an answer rests on).  ``max_uses`` is not mentioned: Claude Code always sends
    it, and a search that runs once per answer stays within any limit.
    """
    notes: list[str] = []
    dropped = dropped_server_tools(body, endpoint=endpoint, dialect=dialect, model=model)
    if dropped:
        notes.append(f"server tools not supported by model {model!r} and left out: {', '.join(dropped)}")
    search = find_web_search(body.get("tools"))
    if search is not None and endpoint != "anthropic" and search_mode(endpoint, dialect, model) is not None:
        filters = [
            name
            for name, value in (
                ("allowed_domains", search.allowed_domains),
                ("blocked_domains", search.blocked_domains),
            )
            if value
        ]
        if filters:
            notes.append(f"web search on model {model!r} does not apply {', '.join(filters)}")
    # header values must be ASCII; model names almost always are
    return "; ".join(notes).encode("ascii", "backslashreplace").decode() if notes else None


# --- the response side ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchResult:
    url: str
    title: str


@dataclass(slots=True)
class WebSearchFindings:
    """What an upstream searched for and found, collected from one answer."""

    queries: list[str] = field(default_factory=list)
    results: list[SearchResult] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.queries or self.results)

    def add_query(self, query: str) -> None:
        if query and query not in self.queries:
            self.queries.append(query)

    def add_result(self, url: str, title: str) -> None:
        if url and all(found.url != url for found in self.results):
            self.results.append(SearchResult(url, title or url))

    def add_annotations(self, annotations: Any) -> None:
        """OpenAI / OpenRouter ``annotations``: every ``url_citation`` is a result."""
        if not isinstance(annotations, list):
            return
        for item in annotations:
            if not isinstance(item, Mapping) or item.get("type") != "url_citation":
                continue
            citation = item.get("url_citation")
            cited: Mapping[str, Any] = citation if isinstance(citation, Mapping) else item
            url, title = cited.get("url"), cited.get("title")
            if isinstance(url, str):
                self.add_result(url, title if isinstance(title, str) else "")

    def add_grounding(self, metadata: Any) -> None:
        """Gemini ``groundingMetadata``: ``webSearchQueries`` and the ``web`` grounding chunks."""
        if not isinstance(metadata, Mapping):
            return
        queries = metadata.get("webSearchQueries")
        for query in queries if isinstance(queries, list) else ():
            if isinstance(query, str):
                self.add_query(query)
        chunks = metadata.get("groundingChunks")
        for chunk in chunks if isinstance(chunks, list) else ():
            web = chunk.get("web") if isinstance(chunk, Mapping) else None
            if isinstance(web, Mapping) and isinstance(web.get("uri"), str):
                title = web.get("title")
                self.add_result(web["uri"], title if isinstance(title, str) else "")


def findings_from_annotations(annotations: Any) -> WebSearchFindings:
    findings = WebSearchFindings()
    findings.add_annotations(annotations)
    return findings


def findings_from_grounding(metadata: Any) -> WebSearchFindings:
    findings = WebSearchFindings()
    findings.add_grounding(metadata)
    return findings


def _query(findings: WebSearchFindings) -> JSONDict:
    return {"query": "; ".join(findings.queries)}


def _result_block(tool_id: str, findings: WebSearchFindings) -> JSONDict:
    return {
        "type": "web_search_tool_result",
        "tool_use_id": tool_id,
        "content": [
            {
                "type": "web_search_result",
                "url": result.url,
                "title": result.title,
                "encrypted_content": "",
                "page_age": None,
            }
            for result in findings.results
        ],
    }


def _server_tool_id() -> str:
    return _SERVER_TOOL_ID_PREFIX + new_tool_use_id()


def search_blocks(findings: WebSearchFindings) -> list[JSONDict]:
    """``server_tool_use`` + ``web_search_tool_result`` for a non-streamed message ([] if nothing found)."""
    if not findings:
        return []
    tool_id = _server_tool_id()
    use = {"type": "server_tool_use", "id": tool_id, "name": WEB_SEARCH_NAME, "input": _query(findings)}
    return [use, _result_block(tool_id, findings)]


def _frame(name: bytes, data: JSONDict) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def search_events(index: int, findings: WebSearchFindings) -> bytes:
    """The same two blocks as stream events at ``index`` and ``index + 1`` (b"" if nothing found).

    The ``server_tool_use`` input travels as one ``input_json_delta``, as Anthropic streams it; the result
    block is complete in its start event and has no deltas.
    """
    if not findings:
        return b""
    tool_id = _server_tool_id()
    start = {"type": "server_tool_use", "id": tool_id, "name": WEB_SEARCH_NAME, "input": {}}
    delta = {"type": "input_json_delta", "partial_json": orjson.dumps(_query(findings)).decode()}
    result = _result_block(tool_id, findings)
    return b"".join(
        (
            _frame(
                b"content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            ),
            _frame(b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
            _frame(b"content_block_stop", {"type": "content_block_stop", "index": index}),
            _frame(
                b"content_block_start",
                {"type": "content_block_start", "index": index + 1, "content_block": result},
            ),
            _frame(b"content_block_stop", {"type": "content_block_stop", "index": index + 1}),
        )
    )


def search_usage(findings: WebSearchFindings) -> JSONDict:
    """``usage.server_tool_use``: one request per query, at least one when results came back."""
    return {"web_search_requests": max(len(findings.queries), 1)}
