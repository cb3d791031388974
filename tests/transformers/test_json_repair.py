"""repair_object: what broken tool arguments models write, and the object each one meant."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccr_fast.transformers.json_repair import repair_object


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("", {}),
        ("  \n", {}),
        ('"{\\"a\\": 1}"', {"a": 1}),
        ('```json\n{"path": "x.py"}\n```', {"path": "x.py"}),
        ("```\n{'a': 'b',}\n```", {"a": "b"}),
        ('```json\n{"a": 1}', {"a": 1}),
        ("{'path': 'x', 'flag': True, 'n': None}", {"path": "x", "flag": True, "n": None}),
        ("{a: 1, b: 'it\"s'}", {"a": 1, "b": 'it"s'}),
        ('{"a": 1,}', {"a": 1}),
        ('{"a": [1, 2,],}', {"a": [1, 2]}),
        ('{"a": 1 // the count\n}', {"a": 1}),
        ('Sure! {"a": 1} hope this helps', {"a": 1}),
        ('{"a": 1}}', {"a": 1}),
        ('{"text": "line1\nline2\tend"}', {"text": "line1\nline2\tend"}),
    ],
)
def test_common_mistakes_are_repaired(raw: str, expected: dict[str, Any]) -> None:
    assert repair_object(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"command": "ls -la', {"command": "ls -la"}),
        ('{"a": "q \\"x\\" ', {"a": 'q "x" '}),
        ('{"a": "back\\', {"a": "back"}),
        ('{"a": [1, 2, ', {"a": [1, 2]}),
        ('{"a": {"b": "c"', {"a": {"b": "c"}}),
        ('{"a": 1, "b"', {"a": 1, "b": None}),
        ('{"a":', {"a": None}),
        ('{"a": tr', {"a": True}),
        ('{"a": nu', {"a": None}),
        ('{"a": 1.', {"a": 1}),
        ('{"a": 2e', {"a": 2}),
        ('{"n": -', {"n": None}),
        ('{"a": [{"b": 1}, {"c": ', {"a": [{"b": 1}, {"c": None}]}),
        ('{"x": "é😀', {"x": "é😀"}),
    ],
)
def test_arguments_cut_short_are_closed(raw: str, expected: dict[str, Any]) -> None:
    assert repair_object(raw) == expected


@pytest.mark.parametrize("raw", ["[1, 2]", "nothing to see", "42", '"just a string"', "null"])
def test_text_without_an_object_gives_none(raw: str) -> None:
    assert repair_object(raw) is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4))
def test_valid_objects_come_back_unchanged(value: dict[str, Any]) -> None:
    assert repair_object(orjson.dumps(value).decode()) == value


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, min_size=1, max_size=4), st.data())
def test_any_truncation_of_an_object_is_recovered_as_an_object(
    value: dict[str, Any], data: st.DataObject
) -> None:
    text = orjson.dumps(value).decode()
    cut = data.draw(st.integers(1, len(text)))
    assert isinstance(repair_object(text[:cut]), dict)
