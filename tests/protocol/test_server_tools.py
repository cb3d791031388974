"""Anthropic's server tools and Anthropic-defined client tools on other upstreams (``server_tools``), and
the translators that use it: web search as each provider's native search, results as Anthropic blocks.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.sse_checks import check_order, parse, sdk_message

from ccr_fast.protocol.gemini_request import anthropic_to_gemini
from ccr_fast.protocol.gemini_response import gemini_to_anthropic
from ccr_fast.protocol.gemini_stream import GeminiStreamTranslator
from ccr_fast.protocol.openai_dialect import OpenAIDialect
from ccr_fast.protocol.openai_request import anthropic_to_openai
from ccr_fast.protocol.openai_response import openai_to_anthropic
from ccr_fast.protocol.openai_stream import OpenAIStreamTranslator
from ccr_fast.protocol.server_tools import (
    WARNING_HEADER,
    WebSearchFindings,
    WebSearchTool,
    client_tool_schema,
    dropped_server_tools,
    find_web_search,
    findings_from_annotations,
    findings_from_grounding,
    is_server_tool,
    openai_search_fields,
    openai_search_mode,
    search_blocks,
    search_events,
    search_mode,
    search_usage,
    server_tool_warning,
)

PLAIN = OpenAIDialect()
OPENROUTER = OpenAIDialect(thinking_param="openrouter", reasoning_out="reasoning_details")
DEEPSEEK = OpenAIDialect(reasoning_out="reasoning_content", max_tokens_cap=8192)
#: the vercel transformer (and reasoning {format: max_tokens}) share OpenRouter's reasoning request object
VERCEL = OpenAIDialect(thinking_param="openrouter")

LOCATION = {"type": "approximate", "city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"}
WEB_SEARCH: dict[str, Any] = {
    "type": "web_search_20250305",
    "name": "web_search",
    "max_uses": 3,
    "allowed_domains": ["python.org", "", 7],
    "user_location": LOCATION,
}
WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch"}
BASH = {"type": "bash_20250124", "name": "bash"}
EDITOR = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
READ = {"name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
ANNOTATIONS = [
    {
        "type": "url_citation",
        "url_citation": {"url": "https://a.example/1", "title": "First", "start_index": 0, "end_index": 4},
    },
    {"type": "url_citation", "url_citation": {"url": "https://b.example/2", "title": "Second"}},
    {"type": "url_citation", "url_citation": {"url": "https://a.example/1", "title": "First again"}},
    {"type": "file_citation", "file_citation": {"file_id": "f"}},
    "junk",
]
GROUNDING = {
    "webSearchQueries": ["python release", "python release", "pep 745"],
    "groundingChunks": [
        {"web": {"uri": "https://r.example/a", "title": "python.org"}},
        {"web": {"uri": "https://r.example/b"}},
        {"retrievedContext": {"uri": "gs://x"}},
    ],
    "searchEntryPoint": {"renderedContent": "<div/>"},
}


def body(*tools: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "what's new in python?"}], "tools": list(tools), **extra}


# --- Anthropic-defined client tools -----------------------------------------------------------------------


def test_bash_gets_command_and_restart() -> None:
    schema = client_tool_schema("bash_20250124")
    assert schema is not None and schema["type"] == "object"
    assert schema["properties"]["command"]["type"] == "string"
    assert schema["properties"]["restart"]["type"] == "boolean"
    assert "required" not in schema  # a restart call has no command
    assert client_tool_schema("bash_20241022") == schema


@pytest.mark.parametrize(
    ("tool_type", "undo"),
    [
        ("text_editor_20241022", True),
        ("text_editor_20250124", True),
        ("text_editor_20250429", False),
        ("text_editor_20250728", False),
    ],
)
def test_text_editor_commands_follow_the_tool_version(tool_type: str, undo: bool) -> None:
    schema = client_tool_schema(tool_type)
    assert schema is not None
    assert schema["required"] == ["command", "path"]
    commands = schema["properties"]["command"]["enum"]
    assert commands[:4] == ["view", "create", "str_replace", "insert"]
    assert ("undo_edit" in commands) is undo
    assert set(schema["properties"]) == {
        "command",
        "path",
        "file_text",
        "old_str",
        "new_str",
        "insert_line",
        "view_range",
    }
    assert schema["properties"]["view_range"]["items"] == {"type": "integer"}


def test_client_tool_schemas_are_fresh_objects_and_other_types_have_none() -> None:
    first = client_tool_schema("bash_20250124")
    assert first is not None
    first["properties"].clear()
    again = client_tool_schema("bash_20250124")
    assert again is not None and again["properties"]
    assert client_tool_schema("computer_20250124") is None
    assert client_tool_schema("custom") is None


def test_server_tools_are_versioned_types_without_a_schema() -> None:
    assert is_server_tool(WEB_SEARCH) and is_server_tool(WEB_FETCH)
    assert is_server_tool({"type": "code_execution_20250825", "name": "code_execution"})
    assert not is_server_tool(BASH) and not is_server_tool(READ)
    # a client tool that happens to be called like a server tool, with its own schema, is a client tool
    assert not is_server_tool({"type": "web_search_custom", "name": "s", "input_schema": {"type": "object"}})


# --- the request side -------------------------------------------------------------------------------------


def test_find_web_search_reads_its_settings() -> None:
    assert find_web_search([READ, WEB_FETCH, WEB_SEARCH]) == WebSearchTool(
        allowed_domains=("python.org",), user_location=LOCATION
    )
    assert find_web_search([READ, WEB_FETCH]) is None
    assert find_web_search("tools") is None
    plain = {"type": "web_search_20250305", "name": "web_search", "blocked_domains": "x", "user_location": 1}
    assert find_web_search([plain]) == WebSearchTool()


@pytest.mark.parametrize(
    ("endpoint", "dialect", "model", "expected"),
    [
        ("anthropic", PLAIN, "claude-sonnet-4", "anthropic"),
        ("gemini", PLAIN, "gemini-2.5-flash", "gemini"),
        ("openai", OPENROUTER, "anthropic/claude-sonnet-4", "openrouter"),
        ("openai", PLAIN, "gpt-4o-search-preview", "openai"),
        ("openai", PLAIN, "gpt-5-search-api", "openai"),
        ("openai", PLAIN, "gpt-4o", None),
        ("openai", PLAIN, "o3-deep-research", None),
        ("openai", PLAIN, "sonar-deep-research", None),
        ("openai", DEEPSEEK, "deepseek-chat", None),
        ("openai", VERCEL, "anthropic/claude-sonnet-4", None),
    ],
)
def test_search_mode_per_upstream(endpoint: str, dialect: OpenAIDialect, model: str, expected: str) -> None:
    assert search_mode(endpoint, dialect, model) == expected
    if endpoint == "openai":
        assert openai_search_mode(dialect, model) == expected


def test_openai_search_fields() -> None:
    search = find_web_search([WEB_SEARCH])
    assert search is not None
    assert openai_search_fields(search, "openai", "gpt-4o-search-preview") == {
        "web_search_options": {
            "user_location": {
                "type": "approximate",
                "approximate": {"city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"},
            }
        }
    }
    assert openai_search_fields(WebSearchTool(), "openai", "gpt-4o-search-preview") == {
        "web_search_options": {}
    }
    assert openai_search_fields(search, "openrouter", "openai/gpt-4o") == {"plugins": [{"id": "web"}]}
    assert openai_search_fields(search, "openrouter", "openai/gpt-4o:online") == {}
    assert openai_search_fields(search, None, "gpt-4o") == {}


def test_openai_request_for_openrouter_uses_the_web_plugin() -> None:
    out = anthropic_to_openai(body(READ, WEB_SEARCH, BASH), model="openai/gpt-4o", dialect=OPENROUTER)
    assert out["plugins"] == [{"id": "web"}]
    assert "web_search_options" not in out
    assert [tool["function"]["name"] for tool in out["tools"]] == ["Read", "bash"]
    assert out["tools"][1]["function"]["parameters"] == client_tool_schema("bash_20250124")


def test_openai_request_options_from_the_config_win_over_the_plugin() -> None:
    dialect = OpenAIDialect(
        thinking_param="openrouter", extra_body={"plugins": [{"id": "web", "max_results": 2}]}
    )
    out = anthropic_to_openai(body(WEB_SEARCH), model="openai/gpt-4o", dialect=dialect)
    assert out["plugins"] == [{"id": "web", "max_results": 2}]


def test_openai_request_for_a_search_model_sets_web_search_options() -> None:
    out = anthropic_to_openai(body(WEB_SEARCH), model="gpt-4o-search-preview", dialect=PLAIN)
    assert out["web_search_options"]["user_location"]["approximate"]["city"] == "Berlin"
    assert "tools" not in out and "plugins" not in out


def test_openai_request_without_native_search_leaves_the_tool_out() -> None:
    out = anthropic_to_openai(
        body(WEB_SEARCH, EDITOR, tool_choice={"type": "tool", "name": "web_search"}),
        model="deepseek-chat",
        dialect=DEEPSEEK,
    )
    assert not {"web_search_options", "plugins", "tool_choice"} & set(out)
    assert [tool["function"]["name"] for tool in out["tools"]] == ["str_replace_based_edit_tool"]
    assert out["tools"][0]["function"]["parameters"] == client_tool_schema("text_editor_20250728")


def test_gemini_request_gets_google_search_and_client_tool_schemas() -> None:
    out = anthropic_to_gemini(body(WEB_SEARCH, WEB_FETCH, BASH), model="gemini-2.5-flash")
    declarations = out["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["bash"]
    assert declarations[0]["parameters"]["properties"]["restart"]["type"] == "BOOLEAN"
    assert out["tools"][1] == {"googleSearch": {}}
    assert len(out["tools"]) == 2


@pytest.mark.parametrize(
    ("endpoint", "dialect", "model", "dropped"),
    [
        ("anthropic", PLAIN, "claude-sonnet-4", []),
        ("gemini", PLAIN, "gemini-2.5-flash", ["web_fetch_20250910"]),
        ("openai", OPENROUTER, "openai/gpt-4o", ["web_fetch_20250910"]),
        ("openai", PLAIN, "gpt-4o-search-preview", ["web_fetch_20250910"]),
        ("openai", DEEPSEEK, "deepseek-chat", ["web_search_20250305", "web_fetch_20250910"]),
    ],
)
def test_dropped_server_tools(endpoint: str, dialect: OpenAIDialect, model: str, dropped: list[str]) -> None:
    request = body(READ, WEB_SEARCH, WEB_FETCH, WEB_FETCH, BASH)
    assert dropped_server_tools(request, endpoint=endpoint, dialect=dialect, model=model) == dropped


def test_server_tool_warning_names_what_was_left_out() -> None:
    warning = server_tool_warning(
        body(WEB_SEARCH), endpoint="openai", dialect=DEEPSEEK, model="deepseek-chat"
    )
    assert warning == "server tools not supported by model 'deepseek-chat' and left out: web_search_20250305"
    assert WARNING_HEADER == "x-ccr-warning"
    assert server_tool_warning(body(READ, BASH), endpoint="openai", dialect=PLAIN, model="gpt-4o") is None
    assert server_tool_warning({"tools": "x"}, endpoint="openai", dialect=PLAIN, model="gpt-4o") is None


def test_server_tool_warning_names_domain_filters_a_native_search_cannot_apply() -> None:
    plain = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
    assert server_tool_warning(body(plain), endpoint="gemini", dialect=PLAIN, model="g") is None
    filtered = {**plain, "blocked_domains": ["spam.example"]}
    assert server_tool_warning(body(filtered), endpoint="anthropic", dialect=PLAIN, model="claude") is None
    warning = server_tool_warning(body(filtered, WEB_FETCH), endpoint="gemini", dialect=PLAIN, model="g")
    assert warning == (
        "server tools not supported by model 'g' and left out: web_fetch_20250910; "
        "web search on model 'g' does not apply blocked_domains"
    )
    both = server_tool_warning(body(WEB_SEARCH), endpoint="openai", dialect=OPENROUTER, model="ö/model")
    assert both == "web search on model '\\xf6/model' does not apply allowed_domains"
    assert both.isascii()  # it travels as an HTTP header


# --- the response side ------------------------------------------------------------------------------------


def test_annotations_give_deduplicated_results() -> None:
    found = findings_from_annotations(ANNOTATIONS)
    assert [(r.url, r.title) for r in found.results] == [
        ("https://a.example/1", "First"),
        ("https://b.example/2", "Second"),
    ]
    assert found.queries == []
    assert not findings_from_annotations(None) and not findings_from_annotations([{"type": "url_citation"}])


def test_grounding_gives_queries_and_results() -> None:
    found = findings_from_grounding(GROUNDING)
    assert found.queries == ["python release", "pep 745"]
    assert [(r.url, r.title) for r in found.results] == [
        ("https://r.example/a", "python.org"),
        ("https://r.example/b", "https://r.example/b"),
    ]
    assert not findings_from_grounding({"searchEntryPoint": {}}) and not findings_from_grounding("x")


def test_search_blocks_pair_a_server_tool_use_with_its_result() -> None:
    found = findings_from_grounding(GROUNDING)
    use, result = search_blocks(found)
    assert use["type"] == "server_tool_use" and use["name"] == "web_search"
    assert use["id"].startswith("srvtoolu_01") and len(use["id"]) <= 64
    assert use["input"] == {"query": "python release; pep 745"}
    assert result == {
        "type": "web_search_tool_result",
        "tool_use_id": use["id"],
        "content": [
            {
                "type": "web_search_result",
                "url": "https://r.example/a",
                "title": "python.org",
                "encrypted_content": "",
                "page_age": None,
            },
            {
                "type": "web_search_result",
                "url": "https://r.example/b",
                "title": "https://r.example/b",
                "encrypted_content": "",
                "page_age": None,
            },
        ],
    }
    assert search_usage(found) == {"web_search_requests": 2}
    assert search_usage(findings_from_annotations(ANNOTATIONS)) == {"web_search_requests": 1}
    assert search_blocks(WebSearchFindings()) == [] and search_events(3, WebSearchFindings()) == b""


def test_search_events_are_what_the_sdk_reads_as_the_same_blocks() -> None:
    found = findings_from_annotations(ANNOTATIONS)
    frames = parse(search_events(2, found))
    assert [(f["type"], f.get("index")) for f in frames] == [
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("content_block_start", 3),
        ("content_block_stop", 3),
    ]
    assert frames[0]["content_block"]["input"] == {}
    assert orjson.loads(frames[1]["delta"]["partial_json"]) == {"query": ""}
    assert frames[3]["content_block"]["tool_use_id"] == frames[0]["content_block"]["id"]


def test_openai_response_with_annotations() -> None:
    message = openai_to_anthropic(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Python 3.14 is out.",
                        "reasoning": "let me look",
                        "annotations": ANNOTATIONS,
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        },
        model="m",
    )
    assert [b["type"] for b in message["content"]] == [
        "thinking",
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    assert len(message["content"][2]["content"]) == 2
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 1}
    assert message["stop_reason"] == "end_turn"


def test_openai_response_without_annotations_is_unchanged() -> None:
    message = openai_to_anthropic(
        {"choices": [{"message": {"content": "hi", "annotations": []}, "finish_reason": "stop"}]}, model="m"
    )
    assert [b["type"] for b in message["content"]] == ["text"]
    assert "server_tool_use" not in message["usage"]


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return (
        b"data: "
        + orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        + b"\n\n"
    )


def test_openai_stream_sends_search_blocks_after_the_answer() -> None:
    translator = OpenAIStreamTranslator(model="m", implementation="pure")
    upstream = [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"content": "Python 3.14 "}),
        openai_chunk({"content": "is out.", "annotations": ANNOTATIONS[:2]}),
        openai_chunk({"annotations": ANNOTATIONS[2:]}, finish="stop"),
        b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n',
        b"data: [DONE]\n\n",
    ]
    out = b"".join(translator.feed(chunk) for chunk in upstream) + translator.close()
    frames = parse(out)
    check_order(frames)
    delta = next(f for f in frames if f["type"] == "message_delta")
    assert delta["usage"]["server_tool_use"] == {"web_search_requests": 1}
    assert delta["usage"]["input_tokens"] == 7
    assert "server_tool_use" not in translator.usage  # accounting keeps plain token counts
    message = sdk_message(out)
    assert [b.type for b in message.content] == ["text", "server_tool_use", "web_search_tool_result"]
    text, use, result = message.content
    assert text.type == "text" and text.text == "Python 3.14 is out."
    assert use.type == "server_tool_use" and use.input == {"query": ""}
    assert result.type == "web_search_tool_result" and result.tool_use_id == use.id
    assert isinstance(result.content, list)
    assert [r.url for r in result.content] == ["https://a.example/1", "https://b.example/2"]
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 1


def test_openai_stream_after_tool_calls_keeps_indexes_contiguous() -> None:
    translator = OpenAIStreamTranslator(model="m", implementation="pure")
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
    upstream = [
        openai_chunk({"tool_calls": [call], "annotations": ANNOTATIONS[:1]}),
        openai_chunk({}, finish="tool_calls"),
        b"data: [DONE]\n\n",
    ]
    frames = parse(b"".join(translator.feed(chunk) for chunk in upstream) + translator.close())
    check_order(frames)
    starts = [f["content_block"]["type"] for f in frames if f["type"] == "content_block_start"]
    assert starts == ["tool_use", "server_tool_use", "web_search_tool_result"]
    assert translator.stop_reason == "tool_use"


def gemini_payload(parts: list[dict[str, Any]], **candidate: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0, **candidate}]}


def test_gemini_response_with_grounding() -> None:
    answer = gemini_payload(
        [{"text": "thinking", "thought": True}, {"text": "Python 3.14 is out."}],
        finishReason="STOP",
        groundingMetadata=GROUNDING,
    )
    answer["usageMetadata"] = {
        "promptTokenCount": 20,
        "candidatesTokenCount": 5,
        "toolUsePromptTokenCount": 30,
    }
    message = gemini_to_anthropic(answer, model="gemini-2.5-flash")
    assert [b["type"] for b in message["content"]] == [
        "thinking",
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    assert message["content"][1]["input"] == {"query": "python release; pep 745"}
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 2}
    assert message["usage"]["input_tokens"] == 50
    assert message["stop_reason"] == "end_turn"


def test_gemini_response_with_only_search_results_puts_them_first() -> None:
    message = gemini_to_anthropic(gemini_payload([{"text": "ok"}], groundingMetadata=GROUNDING), model="g")
    assert [b["type"] for b in message["content"]] == ["server_tool_use", "web_search_tool_result", "text"]


def test_gemini_stream_sends_search_blocks_after_the_answer() -> None:
    translator = GeminiStreamTranslator(model="gemini-2.5-flash")
    chunks = [
        gemini_payload([{"text": "Python 3.14 "}]),
        gemini_payload([{"text": "is out."}], groundingMetadata={"webSearchQueries": ["python release"]}),
        gemini_payload([{"text": ""}], finishReason="STOP", groundingMetadata=GROUNDING)
        | {"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4}},
    ]
    upstream = b"".join(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n" for chunk in chunks)
    out = translator.feed(upstream) + translator.close()
    frames = parse(out)
    check_order(frames)
    delta = next(f for f in frames if f["type"] == "message_delta")
    assert delta["usage"]["server_tool_use"] == {"web_search_requests": 2}
    message = sdk_message(out)
    assert [b.type for b in message.content] == ["text", "server_tool_use", "web_search_tool_result"]
    assert message.content[1].type == "server_tool_use"
    assert message.content[1].input == {"query": "python release; pep 745"}
    assert message.usage.input_tokens == 9 and message.usage.output_tokens == 4
