"""Anthropic request → Gemini request: URL, layout (roles, system, tool results), media, tools and tool
choice, generation and thinking config, and the thought-signature round trip through a client's history."""

from __future__ import annotations

import copy
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from bench.bodies import claude_code_request

from ccr_fast.protocol.gemini_request import GeminiDialect, anthropic_to_gemini, gemini_url
from ccr_fast.protocol.gemini_response import gemini_to_anthropic
from ccr_fast.protocol.gemini_schema import to_gemini_schema
from ccr_fast.protocol.gemini_stream import GeminiStreamTranslator
from ccr_fast.protocol.server_tools import client_tool_schema

SIG = "CiQBjz1rX8Zm4Q=="
SIG2 = "Cr0BAY89a1xyz="
SKIP = "skip_thought_signature_validator"
REQUEST_KEYS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
PART_KEYS = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "thoughtSignature"}
GENERATION_KEYS = {"maxOutputTokens", "temperature", "topP", "topK", "stopSequences", "thinkingConfig"}


def translate(body: dict[str, Any], model: str = "gemini-2.5-flash", **kwargs: Any) -> dict[str, Any]:
    """Translate, checking what holds for every request: the input is untouched, the output is JSON with
    only keys Gemini knows, and no call id is ever sent."""
    before = copy.deepcopy(body)
    out = anthropic_to_gemini(body, model=model, **kwargs)
    assert body == before
    assert orjson.loads(orjson.dumps(out)) == out
    assert set(out) <= REQUEST_KEYS
    assert set(out.get("generationConfig", {})) <= GENERATION_KEYS
    for content in out["contents"]:
        assert set(content) == {"role", "parts"} and content["role"] in ("user", "model") and content["parts"]
        for part in content["parts"]:
            assert set(part) <= PART_KEYS and len(set(part) - {"thoughtSignature"}) == 1, part
            assert "id" not in part.get("functionCall", {}) and "id" not in part.get("functionResponse", {})
    return out


def request(messages: list[Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-5", "max_tokens": 1024, "messages": messages, **extra}


def user(*content: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(content)}


def assistant(*content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(content)}


def tool_use(tool_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}


def tool_result(tool_id: str, content: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content, **extra}


def thinking(signature: str, text: str = "") -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": signature}


# --- URL and dialect ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base",
    [
        "https://generativelanguage.googleapis.com/v1beta/models/",
        "https://generativelanguage.googleapis.com/v1beta/models",
        "https://generativelanguage.googleapis.com/v1beta/",
        "https://generativelanguage.googleapis.com/v1beta",
        "https://generativelanguage.googleapis.com",
    ],
)
def test_url_for_every_way_of_writing_the_base(base: str) -> None:
    root = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro"
    assert gemini_url(base, "gemini-2.5-pro", stream=False) == root + ":generateContent"
    assert gemini_url(base, "models/gemini-2.5-pro", stream=True) == root + ":streamGenerateContent?alt=sse"


def test_url_keeps_a_proxy_path() -> None:
    assert (
        gemini_url("https://proxy.example/google/v1beta/models/", "gemini-3-pro-preview", stream=True)
        == "https://proxy.example/google/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gemini-2.5-flash", GeminiDialect(thinking_off=True, max_thinking_budget=24576)),
        ("models/gemini-2.5-flash-lite", GeminiDialect(thinking_off=True, max_thinking_budget=24576)),
        ("gemini-2.5-pro", GeminiDialect(max_thinking_budget=32768)),
        ("gemini-3-pro-preview", GeminiDialect()),
        ("gemini-2.0-flash", GeminiDialect(thinking=False)),
        ("gemini-1.5-pro", GeminiDialect(thinking=False)),
        ("gemma-3-27b-it", GeminiDialect(thinking=False)),
    ],
)
def test_dialect_for_model(model: str, expected: GeminiDialect) -> None:
    assert GeminiDialect.for_model(model) == expected


# --- layout -------------------------------------------------------------------------------------------------


def test_minimal_request() -> None:
    assert translate(
        request([{"role": "user", "content": "hi"}], stream=True, metadata={"user_id": "u"})
    ) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 1024},
    }


def test_system_prompt_string_and_blocks() -> None:
    blocks = [
        {"type": "text", "text": "header"},
        {"type": "text", "text": "", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "main prompt", "cache_control": {"type": "ephemeral"}},
    ]
    out = translate(request([user({"type": "text", "text": "q"})], system=blocks))
    assert out["systemInstruction"] == {"parts": [{"text": "header"}, {"text": "main prompt"}]}
    assert translate(request([user({"type": "text", "text": "q"})], system="Be brief."))[
        "systemInstruction"
    ] == {"parts": [{"text": "Be brief."}]}
    assert "systemInstruction" not in translate(request([user({"type": "text", "text": "q"})], system=""))


def test_mid_conversation_system_message_stays_in_place_as_a_marked_user_part() -> None:
    out = translate(
        request(
            [
                user({"type": "text", "text": "first"}),
                assistant({"type": "text", "text": "answer"}),
                {"role": "system", "content": "The user switched to plan mode."},
                user({"type": "text", "text": "second"}),
            ],
            system="base",
        )
    )
    assert out["systemInstruction"] == {"parts": [{"text": "base"}]}  # unchanged: a stable cache prefix
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "first"}]},
        {"role": "model", "parts": [{"text": "answer"}]},
        {
            "role": "user",
            "parts": [{"text": "<system>\nThe user switched to plan mode.\n</system>"}, {"text": "second"}],
        },
    ]


def test_system_message_between_a_call_and_its_result_goes_behind_the_response() -> None:
    out = translate(
        request(
            [
                user({"type": "text", "text": "run it"}),
                assistant(tool_use("toolu_1", "Bash", command="ls")),
                {"role": "system", "content": [{"type": "text", "text": "Reminder."}]},
                user(tool_result("toolu_1", "a.txt"), {"type": "text", "text": "and now?"}),
            ]
        )
    )
    assert out["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "Bash", "response": {"result": "a.txt"}}},
            {"text": "<system>\nReminder.\n</system>"},
            {"text": "and now?"},
        ],
    }


def test_consecutive_turns_of_one_role_are_merged() -> None:
    out = translate(
        request(
            [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                assistant({"type": "text", "text": "c"}),
                assistant({"type": "redacted_thinking", "data": "xyz"}, {"type": "text", "text": "d"}),
                user({"type": "text", "text": ""}),  # nothing Gemini could use: dropped
                user({"type": "text", "text": "e"}),
            ]
        )
    )
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
        {"role": "user", "parts": [{"text": "e"}]},
    ]


def test_images_and_documents() -> None:
    out = translate(
        request(
            [
                user(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/webp", "data": "UklG"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.PNG?size=2"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/render"}},
                    {"type": "image", "source": {"type": "file", "file_id": "f_1"}},
                    {
                        "type": "document",
                        "title": "Spec",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                    },
                    {"type": "document", "source": {"type": "url", "url": "https://x.test/paper.pdf"}},
                    {"type": "document", "title": "Notes", "source": {"type": "text", "data": "plain"}},
                    {
                        "type": "document",
                        "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]},
                    },
                    {
                        "type": "search_result",
                        "title": "Result",
                        "source": "https://x.test/r",
                        "content": [{"type": "text", "text": "snippet"}],
                    },
                )
            ]
        )
    )
    assert out["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/cat.PNG?size=2"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/render"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x.test/paper.pdf"}},
        {"text": "Notes\n\nplain"},
        {"text": "inner"},
        {"text": "Result\nhttps://x.test/r\nsnippet"},
    ]


# --- tool results -------------------------------------------------------------------------------------------


def test_tool_results_recover_names_and_wrap_responses_in_objects() -> None:
    out = translate(
        request(
            [
                user({"type": "text", "text": "go"}),
                assistant(
                    tool_use("toolu_a", "Read", path="x"),
                    tool_use("toolu_b", "1password", item="y"),
                    tool_use("toolu_c", "Grep"),
                    tool_use("toolu_d", "Bash"),
                ),
                user(
                    tool_result(
                        "toolu_a", [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]
                    ),
                    tool_result("toolu_b", "secret"),
                    tool_result("toolu_c", "no such pattern", is_error=True),
                    tool_result("toolu_d", None),
                    {"type": "text", "text": "continue"},
                ),
            ]
        )
    )
    assert out["contents"][1]["parts"][1] == {"functionCall": {"name": "_1password", "args": {"item": "y"}}}
    assert out["contents"][2]["parts"] == [
        {"functionResponse": {"name": "Read", "response": {"result": "line 1\nline 2"}}},
        {"functionResponse": {"name": "_1password", "response": {"result": "secret"}}},
        {"functionResponse": {"name": "Grep", "response": {"error": "no such pattern"}}},
        {"functionResponse": {"name": "Bash", "response": {"result": ""}}},
        {"text": "continue"},
    ]


def test_images_returned_by_a_tool_follow_the_responses() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
    out = translate(
        request(
            [
                assistant(tool_use("toolu_s", "Screenshot"), tool_use("toolu_r", "Read")),
                user(
                    tool_result("toolu_s", [image]),
                    tool_result("toolu_r", [{"type": "text", "text": "see"}, image]),
                    {"type": "text", "text": "what now"},
                ),
            ]
        )
    )
    assert out["contents"][1]["parts"] == [
        {
            "functionResponse": {
                "name": "Screenshot",
                "response": {"result": "(the tool returned files; they follow this response)"},
            }
        },
        {"functionResponse": {"name": "Read", "response": {"result": "see"}}},
        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
        {"text": "what now"},
    ]


def test_a_result_whose_call_is_not_in_the_history_becomes_text() -> None:
    out = translate(
        request([user(tool_result("toolu_gone", "stale output"), {"type": "text", "text": "hi"})])
    )
    assert out["contents"] == [
        {
            "role": "user",
            "parts": [{"text": "[result of tool call toolu_gone]\nstale output"}, {"text": "hi"}],
        }
    ]


# --- tools and tool choice ----------------------------------------------------------------------------------


def test_tool_declarations() -> None:
    tools = [
        {
            "name": "Read",
            "description": "Read a file",
            "input_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "limit": {"type": "integer", "exclusiveMinimum": 0},
                },
                "required": ["path"],
                "additionalProperties": False,
            },
            "cache_control": {"type": "ephemeral"},
            "defer_loading": True,
        },
        {"name": "ExitPlanMode", "description": "", "input_schema": {"type": "object", "properties": {}}},
        {"name": "2fa", "input_schema": {"type": "object", "properties": {"code": {"type": "string"}}}},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "web_fetch_20250910", "name": "web_fetch"},
        {"type": "tool_search_tool_regex_20251119", "name": "tool_search"},
    ]
    out = translate(request([user({"type": "text", "text": "x"})], tools=tools))
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "Read",
                    "description": "Read a file",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "path": {"type": "STRING"},
                            "limit": {"type": "INTEGER", "minimum": 1},
                        },
                        "required": ["path"],
                    },
                },
                {"name": "ExitPlanMode"},
                {
                    "name": "_2fa",
                    "parameters": {"type": "OBJECT", "properties": {"code": {"type": "STRING"}}},
                },
                {
                    "name": "bash",
                    # Anthropic-defined client tools come without a schema; one is supplied
                    "parameters": to_gemini_schema(client_tool_schema("bash_20250124")),
                },
            ]
        },
        {"googleSearch": {}},
    ]


def test_web_search_alone_gives_google_search_and_no_tool_config() -> None:
    out = translate(
        request(
            [user({"type": "text", "text": "news?"})],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            tool_choice={"type": "auto"},
        )
    )
    assert out["tools"] == [{"googleSearch": {}}] and "toolConfig" not in out


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"mode": "AUTO"}),
        ({"type": "any", "disable_parallel_tool_use": True}, {"mode": "ANY"}),
        ({"type": "none"}, {"mode": "NONE"}),
        ({"type": "tool", "name": "Read"}, {"mode": "ANY", "allowedFunctionNames": ["Read"]}),
        ({"type": "tool", "name": "9lives"}, {"mode": "ANY", "allowedFunctionNames": ["_9lives"]}),
        ({"type": "tool", "name": "Unknown"}, None),
        ({"type": "bogus"}, None),
        ("auto", None),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any] | None) -> None:
    tools = [
        {"name": "Read", "input_schema": {"type": "object"}},
        {"name": "9lives", "input_schema": {"type": "object"}},
    ]
    out = translate(request([user({"type": "text", "text": "x"})], tools=tools, tool_choice=choice))
    if expected is None:
        assert "toolConfig" not in out
    else:
        assert out["toolConfig"] == {"functionCallingConfig": expected}


# --- generation config and thinking -------------------------------------------------------------------------


def test_generation_config() -> None:
    out = translate(
        request(
            [user({"type": "text", "text": "x"})],
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop_sequences=["a", "", "b", "c", "d", "e", "f", 7],
        )
    )
    assert out["generationConfig"] == {
        "maxOutputTokens": 1024,
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40,
        "stopSequences": ["a", "b", "c", "d", "e"],
    }
    odd = translate(request([user({"type": "text", "text": "x"})], temperature=True, top_k=2.5, max_tokens=0))
    assert "generationConfig" not in odd


def budget(tokens: int, *, summaries: bool = True) -> dict[str, Any]:
    return {"thinkingBudget": tokens, "includeThoughts": summaries}


@pytest.mark.parametrize(
    ("model", "thinking", "expected"),
    [
        ("gemini-2.5-flash", {"type": "enabled", "budget_tokens": 8000}, budget(8000)),
        ("gemini-2.5-flash", {"type": "enabled", "budget_tokens": 31999}, budget(24576)),
        ("gemini-2.5-pro", {"type": "enabled", "budget_tokens": 31999}, budget(31999)),
        ("gemini-3-pro-preview", {"type": "enabled", "budget_tokens": 64000}, budget(64000)),
        ("gemini-2.5-pro", {"type": "enabled"}, budget(-1)),
        ("gemini-2.5-pro", {"type": "adaptive"}, budget(-1)),
        ("gemini-2.5-pro", {"type": "adaptive", "display": "omitted"}, budget(-1, summaries=False)),
        ("gemini-2.5-flash", {"type": "disabled"}, {"thinkingBudget": 0}),
        ("gemini-2.5-pro", {"type": "disabled"}, None),
        ("gemini-3-pro-preview", {"type": "disabled"}, None),
        ("gemini-2.0-flash", {"type": "enabled", "budget_tokens": 4096}, None),
        ("gemini-2.5-flash", None, None),
    ],
)
def test_thinking_config(model: str, thinking: Any, expected: dict[str, Any] | None) -> None:
    body = request([user({"type": "text", "text": "x"})])
    if thinking is not None:
        body["thinking"] = thinking
    config = translate(body, model=model)["generationConfig"]
    assert config.get("thinkingConfig") == expected


def test_an_explicit_dialect_wins_over_the_model_name() -> None:
    body = request([user({"type": "text", "text": "x"})], thinking={"type": "disabled"})
    out = translate(body, model="my-tuned-model", dialect=GeminiDialect(thinking_off=True))
    assert out["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}


# --- thought signatures through the client's history -------------------------------------------------------


def next_turn(reply_content: list[dict[str, Any]], results: list[Any]) -> dict[str, Any]:
    """The request a client sends after running the tools of a reply: its history plus the results."""
    return request([user({"type": "text", "text": "do it"}), assistant(*reply_content), user(*results)])


def stream_reply(upstream: dict[str, Any]) -> list[dict[str, Any]]:
    """The content the official SDK assembles when the reply arrives as a stream, as a client stores it."""
    t = GeminiStreamTranslator(model="claude")
    out = t.feed(b"data: " + orjson.dumps(upstream) + b"\r\n\r\n") + t.close()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=out)

    client = anthropic.Anthropic(
        api_key="k",
        base_url="http://u.test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client.messages.stream(
        model="claude", max_tokens=8, messages=[{"role": "user", "content": "x"}]
    ) as s:
        message = s.get_final_message()
    return [block.model_dump(exclude_none=True) for block in message.content]


def nonstream_reply(upstream: dict[str, Any]) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = gemini_to_anthropic(upstream, model="claude")["content"]
    return content


@pytest.mark.parametrize("receive", [nonstream_reply, stream_reply], ids=["non-stream", "stream"])
def test_signatures_come_back_on_the_parts_they_came_on(receive: Any) -> None:
    upstream = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Plan: read both.", "thought": True},
                        {"text": "Reading.", "thoughtSignature": SIG},
                        {"functionCall": {"name": "Read", "args": {"path": "a"}}, "thoughtSignature": SIG2},
                        {"functionCall": {"name": "Read", "args": {"path": "b"}}},
                    ],
                },
                "finishReason": "STOP",
            }
        ]
    }
    content = receive(upstream)
    assert [b["type"] for b in content] == ["thinking", "text", "thinking", "tool_use", "tool_use"]
    out = translate(
        next_turn(content, [tool_result(content[3]["id"], "A"), tool_result(content[4]["id"], "B")])
    )
    assert out["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "Reading.", "thoughtSignature": SIG},
            {"functionCall": {"name": "Read", "args": {"path": "a"}}, "thoughtSignature": SIG2},
            {"functionCall": {"name": "Read", "args": {"path": "b"}}},
        ],
    }
    assert [p["functionResponse"]["response"] for p in out["contents"][2]["parts"]] == [
        {"result": "A"},
        {"result": "B"},
    ]


def test_each_step_keeps_its_own_signature_and_split_messages_are_merged() -> None:
    out = translate(
        request(
            [
                user({"type": "text", "text": "go"}),
                assistant(thinking("gemini:" + SIG, "step one")),
                assistant(tool_use("toolu_1", "Glob", pattern="*")),  # stored as a separate message
                user(tool_result("toolu_1", "a.py")),
                assistant(thinking("gemini:" + SIG2), tool_use("toolu_2", "Read", path="a.py")),
                user(tool_result("toolu_2", "print()")),
            ]
        )
    )
    assert out["contents"][1]["parts"] == [
        {"functionCall": {"name": "Glob", "args": {"pattern": "*"}}, "thoughtSignature": SIG}
    ]
    assert out["contents"][3]["parts"] == [
        {"functionCall": {"name": "Read", "args": {"path": "a.py"}}, "thoughtSignature": SIG2}
    ]


def test_lost_or_foreign_signatures_get_the_documented_sentinel_on_the_first_call_only() -> None:
    out = translate(
        request(
            [
                user({"type": "text", "text": "go"}),
                assistant(
                    thinking("EqQBCkgIARABGAIiQLWn...anthropic", "Claude's own thinking"),
                    {"type": "text", "text": "Two calls."},
                    tool_use("toolu_1", "Read", path="a"),
                    tool_use("toolu_2", "Read", path="b"),
                ),
                user(tool_result("toolu_1"), tool_result("toolu_2")),
                assistant({"type": "text", "text": "No tools here."}),
                user({"type": "text", "text": "ok"}),
            ]
        )
    )
    assert out["contents"][1]["parts"] == [
        {"text": "Two calls."},
        {"functionCall": {"name": "Read", "args": {"path": "a"}}, "thoughtSignature": SKIP},
        {"functionCall": {"name": "Read", "args": {"path": "b"}}},
    ]
    assert out["contents"][3]["parts"] == [{"text": "No tools here."}]


def test_a_thinking_block_last_in_the_turn_signs_the_last_part() -> None:
    out = translate(
        request(
            [
                user({"type": "text", "text": "hi"}),
                assistant({"type": "text", "text": "Hello."}, thinking("gemini:" + SIG)),
                assistant(thinking("gemini:" + SIG2, "only thoughts")),  # merged into the same turn
                user({"type": "text", "text": "again"}),
            ]
        )
    )
    assert out["contents"][1] == {"role": "model", "parts": [{"text": "Hello.", "thoughtSignature": SIG2}]}


def test_a_turn_with_only_thinking_is_left_out() -> None:
    out = translate(
        request(
            [
                user({"type": "text", "text": "hi"}),
                assistant(thinking("gemini:" + SIG, "cut off while thinking")),
                user({"type": "text", "text": "again"}),
            ]
        )
    )
    assert out["contents"] == [{"role": "user", "parts": [{"text": "hi"}, {"text": "again"}]}]


# --- a Claude Code-sized request ----------------------------------------------------------------------------


def test_a_claude_code_first_turn() -> None:
    body = claude_code_request(model="claude-sonnet-5")
    out = translate(body, model="gemini-2.5-pro")
    system = out["systemInstruction"]["parts"]
    assert [p["text"] for p in system] == [b["text"] for b in body["system"]]
    assert out["contents"][0]["role"] == "user"
    assert out["contents"][0]["parts"][0]["text"].startswith("<system>\nThe user switched to plan mode")
    declarations = out["tools"][0]["functionDeclarations"]
    assert len(declarations) == len(body["tools"])
    for declaration in declarations:
        assert declaration["parameters"]["type"] == "OBJECT"
        assert "additionalProperties" not in orjson.dumps(declaration).decode()
        assert "$schema" not in orjson.dumps(declaration).decode()
    assert out["generationConfig"] == {
        "maxOutputTokens": 32000,
        "temperature": 1,
        "thinkingConfig": {"thinkingBudget": -1, "includeThoughts": True},
    }
