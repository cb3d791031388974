"""Anthropic pass-through: bytes forwarded untouched, usage peeked, errors kept."""

from __future__ import annotations

import re

import anthropic
import httpx
import pytest

from ccr_fast.mock import MockProvider
from tests.servers import RunningServer

pytestmark = pytest.mark.e2e

HAIKU = "claude-haiku-4-5-20251001"  # the background rule routes haiku to the Anthropic provider


def test_non_stream_passthrough(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"text": "from anthropic upstream", "usage": {"prompt_tokens": 11, "completion_tokens": 3}}])
    msg = client.messages.create(model=HAIKU, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "from anthropic upstream"
    sent = mock.requests[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["model"] == "claude-upstream"
    assert sent["headers"]["x-api-key"] == "sk-ant-secret-5678"
    assert "authorization" not in sent["headers"]


def test_stream_bytes_identical_to_upstream(gateway: RunningServer, mock: MockProvider) -> None:
    reply = {"text": "stream me ✓ 😀", "thinking": "hmm", "chunks": 8}
    body = {"model": HAIKU, "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    mock.script([reply])
    via_gateway = httpx.post(gateway.url + "/v1/messages?beta=true", json=body, timeout=10)
    mock.script([reply])
    direct_body = dict(body, model="claude-upstream")
    direct = httpx.post(mock.url + "/v1/messages", json=direct_body, timeout=10)
    assert via_gateway.status_code == 200
    assert via_gateway.headers["content-type"].startswith("text/event-stream")

    # message ids are minted per response by the mock: compare with them masked
    def mask(b: bytes) -> bytes:
        return re.sub(rb'"id":"[^"]*"', b'"id":"X"', b)

    assert mask(via_gateway.content) == mask(direct.content)


def test_beta_headers_forwarded(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"text": "ok"}])
    client.messages.create(
        model=HAIKU,
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14,context-1m-2025-08-07"},
    )
    headers = mock.requests[-1]["headers"]
    assert headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,context-1m-2025-08-07"
    # the client's own anthropic-version is forwarded as sent (the SDK picks it)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", headers["anthropic-version"])


def test_anthropic_version_defaulted(gateway: RunningServer, mock: MockProvider) -> None:
    mock.script([{"text": "ok"}])
    body = {"model": HAIKU, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(gateway.url + "/v1/messages", json=body).status_code == 200
    assert mock.requests[-1]["headers"]["anthropic-version"] == "2023-06-01"


def test_anthropic_error_type_kept(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script([{"error": {"status": 529, "message": "Overloaded", "type": "overloaded_error"}}])
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model=HAIKU, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_stream_thinking_and_tools_via_sdk(client: anthropic.Anthropic, mock: MockProvider) -> None:
    mock.script(
        [
            {
                "thinking": "plan",
                "text": "calling",
                "tool_calls": [{"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Rome"}}],
            }
        ]
    )
    with client.messages.stream(
        model=HAIKU, max_tokens=100, messages=[{"role": "user", "content": "weather"}]
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[2].input == {"city": "Rome"}
    assert final.stop_reason == "tool_use"
