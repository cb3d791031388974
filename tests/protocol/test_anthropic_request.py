"""How both upstream request translators read an Anthropic request (``protocol._anthropic_request``)."""

from __future__ import annotations

from typing import Any

from ccr_fast.protocol._anthropic_request import is_int, is_number, turns


def test_turns_merge_same_role_messages_but_keep_each_system_message_apart() -> None:
    thinking = {"type": "thinking", "thinking": "t", "signature": "s"}
    call = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}
    messages: list[Any] = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "content": [{"type": "text", "text": "odd role"}]},
        {"role": "assistant", "content": [thinking]},
        {"role": "assistant", "content": [call]},
        {"role": "system", "content": "be brief"},
        {"role": "system", "content": "really"},
        "not a message",
        {"role": "user", "content": None},
    ]
    assert list(turns(messages)) == [
        ("user", [{"type": "text", "text": "hi"}, {"type": "text", "text": "odd role"}]),
        ("assistant", [thinking, call]),
        ("system", [{"type": "text", "text": "be brief"}]),
        ("system", [{"type": "text", "text": "really"}]),
        ("user", []),
    ]
    assert list(turns(None)) == []


def test_turns_leave_the_request_untouched() -> None:
    first = [{"type": "text", "text": "a"}]
    list(turns([{"role": "user", "content": first}, {"role": "user", "content": "b"}]))
    assert first == [{"type": "text", "text": "a"}]


def test_booleans_are_not_numbers() -> None:
    assert is_int(3) and not is_int(True) and not is_int(3.0)
    assert is_number(3) and is_number(0.5) and not is_number(False) and not is_number("3")
