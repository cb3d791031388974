"""Token counting: cl100k fidelity, CCR's choice of fragments, the fragment cache, async offloading."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import tiktoken
import tiktoken_ext.openai_public as openai_public
from tiktoken.load import load_tiktoken_bpe

from ccr_fast.tokens import (
    IMAGE_TOKENS,
    TokenCounter,
    count_tokens,
    count_tokens_async,
    counter_for,
    default_counter,
    encoding,
    encodings,
    text_tokens,
)


@pytest.fixture(scope="module")
def reference() -> Iterator[tiktoken.Encoding]:
    """cl100k_base exactly as tiktoken defines it, its ranks read by tiktoken from the bundled file."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # read the file, never copy it into a cache
        ranks = load_tiktoken_bpe(str(encodings.DATA / "cl100k_base.tiktoken"))
        mp.setattr(openai_public, "load_tiktoken_bpe", lambda *args, **kwargs: ranks)
        params = openai_public.cl100k_base()
    yield tiktoken.Encoding(**params)


class EncodeSpy:
    """A real cl100k encoder that remembers what it was asked to encode and on which thread."""

    def __init__(self, fail_on: str | None = None, gate: threading.Event | None = None) -> None:
        self.calls: list[str] = []
        self.threads: list[str] = []
        self._fail_on = fail_on
        self._gate = gate

    def __call__(self, text: str) -> list[int]:
        # Bounded so that a regression (tokenizing on the event loop) fails instead of hanging.
        if self._gate is not None and not self._gate.wait(timeout=10):
            raise AssertionError("tokenized before every caller had joined the in-flight work")
        self.calls.append(text)
        self.threads.append(threading.current_thread().name)
        if self._fail_on is not None and text == self._fail_on:
            self._fail_on = None
            raise RuntimeError("tokenizer failure")
        return encoding().encode_ordinary(text)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def claude_code_body(turns: int = 3) -> dict[str, Any]:
    """A body shaped like Claude Code's: 3 system blocks, a mid-conversation system message, tools."""
    tools = [
        {
            "name": f"Tool{i}",
            "description": f"Tool number {i} does something useful. " * 12,
            "input_schema": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": f"The file path for tool {i}. " * 10},
                    "limit": {"type": "integer"},
                },
                "required": ["path"],
                "$schema": "http://json-schema.org/draft-07/schema#",
            },
        }
        for i in range(6)
    ]
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>Context for the session.</system-reminder>"},
                {"type": "text", "text": "Please refactor the parser module."},
            ],
        },
        {"role": "system", "content": "Mid-conversation system note about the environment."},
    ]
    for turn in range(turns):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": f"Considering turn {turn}.", "signature": "sig"},
                    {"type": "text", "text": f"Reading file {turn}."},
                    {
                        "type": "tool_use",
                        "id": f"t{turn}",
                        "name": "Tool1",
                        "input": {"path": f"/f{turn}.py"},
                    },
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"t{turn}", "content": f"line {turn}\n" * 40},
                ],
            }
        )
    return {
        "model": "claude-sonnet-5",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Main prompt. " * 600, "cache_control": {"type": "ephemeral"}},
        ],
        "messages": messages,
        "tools": tools,
        "metadata": {"user_id": '{"device_id":"d","account_uuid":"","session_id":"s"}'},
        "thinking": {"type": "adaptive"},
    }


def expected_fragments(body: dict[str, Any]) -> list[str]:
    """The fragments CCR counts, listed independently of the implementation."""
    out = [block["text"] for block in body["system"]]
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, str):
            out.append(content)
            continue
        for block in content:
            if block["type"] == "text":
                out.append(block["text"])
            elif block["type"] == "thinking":
                out.append(block["thinking"])
            elif block["type"] == "tool_use":
                out.append(compact(block["input"]))
            elif block["type"] == "tool_result":
                inner = block["content"]
                if isinstance(inner, str):
                    out.append(inner)
                else:
                    out.extend(part["text"] for part in inner if part["type"] == "text")
    for tool in body["tools"]:
        out.append(tool["name"] + tool.get("description", ""))
        if "input_schema" in tool:
            out.append(compact(tool["input_schema"]))
    return out


def test_encoding_is_cl100k_base(reference: tiktoken.Encoding) -> None:
    enc = encoding()
    assert enc is encoding()
    assert enc.name == "cl100k_base"
    assert enc._pat_str == reference._pat_str
    assert enc._special_tokens == reference._special_tokens
    assert enc.n_vocab == reference.n_vocab
    # Published cl100k_base ids for this string.
    assert enc.encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "naïve café — 東京 🚀",
        "def f(x):\n    return x ** 2\n",
        "a" * 300,
        "<|endoftext|> hi",
    ],
)
def test_text_tokens_matches_tiktoken(reference: tiktoken.Encoding, text: str) -> None:
    assert text_tokens(text) == len(reference.encode_ordinary(text))


def test_special_token_text_is_counted_as_ordinary_text() -> None:
    assert text_tokens("<|endoftext|>") > 1
    assert count_tokens({"messages": [{"role": "user", "content": "<|endoftext|><|fim_prefix|>"}]}) > 2


def test_body_count_is_the_sum_over_ccr_fragments(reference: tiktoken.Encoding) -> None:
    body = claude_code_body()
    expected = sum(len(reference.encode_ordinary(text)) for text in expected_fragments(body))
    assert count_tokens(body) == expected
    assert TokenCounter().count(body) == expected


def test_string_system_and_string_content(reference: tiktoken.Encoding) -> None:
    body = {"system": "Be brief.", "messages": [{"role": "user", "content": "What is 2+2?"}]}
    expected = len(reference.encode_ordinary("Be brief.")) + len(reference.encode_ordinary("What is 2+2?"))
    assert count_tokens(body) == expected


def test_tool_result_text_blocks_and_images(reference: tiktoken.Encoding) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    image,
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "screenshot taken"}, image],
                    },
                ],
            }
        ]
    }
    assert count_tokens(body) == len(reference.encode_ordinary("screenshot taken")) + 2 * IMAGE_TOKENS


def test_tool_use_input_is_compact_json_with_unicode_kept(reference: tiktoken.Encoding) -> None:
    tool_input = {"command": "echo 'héllo'", "nested": {"list": [1, 2.5, None, True]}}
    body = {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "input": tool_input}]}]}
    assert count_tokens(body) == len(reference.encode_ordinary(compact(tool_input)))


def test_tools_count_name_description_and_schema(reference: tiktoken.Encoding) -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    body = {
        "tools": [
            {"name": "Search", "description": "Find things.", "input_schema": schema},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        ]
    }
    expected = (
        len(reference.encode_ordinary("SearchFind things."))
        + len(reference.encode_ordinary(compact(schema)))
        + len(reference.encode_ordinary("web_search"))
    )
    assert count_tokens(body) == expected


def test_uncountable_parts_are_ignored() -> None:
    body = {
        "system": [{"type": "text", "text": 42}, "loose", {"type": "image"}],
        "messages": [None, "text", {"role": "user", "content": [None, {"type": "redacted_thinking"}]}],
        "tools": "not a list",
    }
    assert count_tokens(body) == 0
    assert count_tokens({}) == 0
    assert count_tokens({"messages": {"role": "user"}, "system": 7}) == 0


def test_unserializable_tool_input_still_counts() -> None:
    body = {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "input": {"n": 2**70}}]}]}
    assert count_tokens(body) > 0


def grow(body: dict[str, Any], turn: int) -> list[str]:
    """Append one large assistant/user exchange; return its (large) fragments."""
    answer = f"Answer for turn {turn}. " * 30
    output = f"output line {turn}\n" * 40
    body["messages"].append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    body["messages"].append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": output}]}
    )
    return [answer, output]


def test_grown_conversation_only_tokenizes_the_new_parts() -> None:
    spy = EncodeSpy()
    counter = TokenCounter(spy)
    body = {
        "system": [{"type": "text", "text": "System prompt. " * 100}],
        "messages": [{"role": "user", "content": "First request. " * 40}],
        "tools": [{"name": "Read", "description": "Reads files. " * 30, "input_schema": {"type": "object"}}],
    }
    small = [compact({"type": "object"})]
    first = counter.count(body)
    assert len(spy.calls) == 4

    for turn in range(3):
        spy.calls.clear()
        new_parts = grow(body, turn)
        total = counter.count(body)
        assert sorted(spy.calls) == sorted(new_parts + small)
        assert total > first
        assert total == TokenCounter().count(body)


def test_small_fragments_bypass_the_cache() -> None:
    spy = EncodeSpy()
    counter = TokenCounter(spy, min_cached_chars=256)
    body = {"messages": [{"role": "user", "content": "short"}]}
    counter.count(body)
    counter.count(body)
    assert spy.calls == ["short", "short"]


def test_repeated_fragment_in_one_body_is_tokenized_once() -> None:
    spy = EncodeSpy()
    counter = TokenCounter(spy)
    text = "the same long tool output\n" * 30
    block = {"type": "tool_result", "tool_use_id": "t", "content": text}
    body = {"messages": [{"role": "user", "content": [block, dict(block), dict(block)]}]}
    assert counter.count(body) == 3 * text_tokens(text)
    assert spy.calls == [text]


def test_cache_is_a_bounded_lru() -> None:
    spy = EncodeSpy()
    counter = TokenCounter(spy, cache_size=2)
    a, b, c = ("alpha " * 60), ("bravo " * 60), ("charlie " * 60)
    for text in (a, b, c):
        counter.text(text)
    spy.calls.clear()
    counter.text(c)
    counter.text(b)
    assert spy.calls == []
    counter.text(a)
    assert spy.calls == [a]
    # a was reinserted and pushed out c, the least recently used.
    counter.text(b)
    counter.text(c)
    assert spy.calls == [a, c]


def test_text_uses_the_cache_for_large_strings() -> None:
    spy = EncodeSpy()
    counter = TokenCounter(spy)
    text = "cache me " * 50
    assert counter.text(text) == counter.text(text) == text_tokens(text)
    assert spy.calls == [text]


async def test_count_async_small_work_stays_on_the_event_loop() -> None:
    spy = EncodeSpy()
    counter = TokenCounter(spy)
    body = {"messages": [{"role": "user", "content": "hello"}]}
    assert await counter.count_async(body) == counter.count(body)
    assert set(spy.threads) == {threading.current_thread().name}


async def test_count_async_offloads_large_uncached_work() -> None:
    spy = EncodeSpy()
    counter = TokenCounter(spy, inline_chars=1024)
    body = claude_code_body()
    expected = TokenCounter().count(body)
    assert await counter.count_async(body) == expected
    assert all(name.startswith("ccr-fast-tokens") for name in spy.threads)
    spy.threads.clear()
    # Second time round everything large is cached; the small rest is cheaper than a thread hop.
    assert await counter.count_async(body) == expected
    assert set(spy.threads) == {threading.current_thread().name}


async def test_twelve_concurrent_counts_share_new_fragments() -> None:
    spy = EncodeSpy()
    counter = TokenCounter(spy, inline_chars=0)
    bodies = []
    for i in range(12):
        body = claude_code_body(turns=i % 4)
        body["messages"].append({"role": "user", "content": f"question {i}"})
        bodies.append(body)
    expected = [TokenCounter().count(body) for body in bodies]

    results = await asyncio.gather(*(counter.count_async(body) for body in bodies))

    assert results == expected
    schema = compact(bodies[0]["tools"][0]["input_schema"])
    assert spy.calls.count(schema) == 1
    assert spy.calls.count(bodies[0]["system"][2]["text"]) == 1


async def test_module_level_async_count_with_twelve_concurrent_calls() -> None:
    bodies = [claude_code_body(turns=i) for i in range(12)]
    results = await asyncio.gather(*(count_tokens_async(body) for body in bodies))
    assert results == [count_tokens(body) for body in bodies]


async def test_failed_offloaded_count_releases_its_in_flight_work() -> None:
    text = "a fragment the tokenizer chokes on once " * 20
    spy = EncodeSpy(fail_on=text)
    counter = TokenCounter(spy, inline_chars=0)
    body = {"messages": [{"role": "user", "content": text}]}
    with pytest.raises(RuntimeError, match="tokenizer failure"):
        await counter.count_async(body)
    assert await counter.count_async(body) == text_tokens(text)


async def test_waiters_see_the_owner_failure() -> None:
    text = "shared fragment that fails " * 20
    gate = threading.Event()
    spy = EncodeSpy(fail_on=text, gate=gate)
    counter = TokenCounter(spy, inline_chars=0)
    body = {"messages": [{"role": "user", "content": text}]}
    tasks = [asyncio.create_task(counter.count_async(body)) for _ in range(3)]
    await asyncio.sleep(0)  # every task has planned and joined the first one's in-flight work
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    assert spy.calls == [text]


def test_counter_is_shared_safely_across_threads() -> None:
    counter = TokenCounter(cache_size=8)
    bodies = [claude_code_body(turns=i) for i in range(6)] * 4
    expected = [TokenCounter().count(body) for body in bodies]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(counter.count, bodies)) == expected


async def test_count_async_loads_the_encoding_on_a_worker_thread() -> None:
    """Loading an encoding takes a few hundred milliseconds: never on the event loop."""
    loads: list[str] = []
    spy = EncodeSpy()
    counter = TokenCounter(spy, load=lambda: loads.append(threading.current_thread().name))
    body = {"messages": [{"role": "user", "content": "hello"}]}
    assert await counter.count_async(body) == await counter.count_async(body) == text_tokens("hello")
    assert len(loads) == 1 and loads[0].startswith("ccr-fast-tokens")
    assert set(spy.threads) == {threading.current_thread().name}  # small work still stays on the loop


def test_one_counter_and_one_cache_per_encoding() -> None:
    assert counter_for("cl100k_base") is default_counter()
    o200k = counter_for("o200k_base")
    assert o200k is counter_for("o200k_base") and o200k is not default_counter()
    text = "Привет, как дела? Это длинный текст на русском языке. " * 10
    body = {"messages": [{"role": "user", "content": text}]}
    assert o200k.count(body) == len(encodings.get("o200k_base").encode_ordinary(text))
    assert default_counter().count(body) == len(encoding().encode_ordinary(text))
    assert o200k.count(body) < default_counter().count(body)
    with pytest.raises(KeyError):
        counter_for("p50k_base")
