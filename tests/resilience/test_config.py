from __future__ import annotations

import pytest

from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.resilience._config import Reader


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (2, 2.0),
        (0.5, 0.5),
        ("3", 3.0),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("1.5m", 90.0),
        ("1h", 3600.0),
        ("2 MS", 0.002),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    reader = Reader()
    assert reader.duration("t", value, 9.0) == seconds
    assert not reader.errors


@pytest.mark.parametrize("value", ["soon", "5d", -1, True, float("inf"), [1]])
def test_bad_durations_keep_the_default_and_say_why(value: object) -> None:
    reader = Reader()
    assert reader.duration("retry.deadline", value, 9.0) == 9.0
    assert [p.path for p in reader.errors] == ["retry.deadline"]


def test_numbers_and_integers_accept_strings_from_the_environment() -> None:
    reader = Reader()
    assert reader.integer("a", "7", 1, 0) == 7
    assert reader.integer("b", 7.0, 1, 0) == 7
    assert reader.number("c", " 0.25 ", 1.0, 0.0, 1.0) == 0.25
    assert not reader.errors
    assert reader.integer("d", 7.5, 1, 0) == 1
    assert reader.integer("e", True, 1, 0) == 1
    assert reader.integer("f", 30, 1, 0, 20) == 1
    assert reader.number("g", float("nan"), 1.0, 0.0) == 1.0
    assert [str(p) for p in reader.errors] == [
        "d: expected an integer >= 0, got 7.5",
        "e: expected an integer >= 0, got true",
        "f: expected an integer 0-20, got 30",
        "g: expected a number >= 0, got nan",
    ]


def test_booleans() -> None:
    reader = Reader()
    assert reader.boolean("a", "TRUE", False) is True
    assert reader.boolean("b", None, True) is True
    assert reader.boolean("c", "yes", False) is False
    assert [p.path for p in reader.errors] == ["c"]


def test_choice() -> None:
    reader = Reader()
    assert reader.choice("s", "b", "a", {"a": "a", "b": "b"}) == "b"
    assert reader.choice("s", "z", "a", {"a": "a", "b": "b"}) == "a"
    assert [str(p) for p in reader.errors] == ["s: expected one of 'a', 'b', got \"z\""]


def test_sections_warn_about_unknown_keys() -> None:
    reader = Reader()
    assert reader.section("retry", None, {"maxAttempts"}) is None
    assert reader.section("retry", False, {"maxAttempts"}) is None
    assert reader.section("retry", {"maxAttempts": 1, "colour": 2}, {"maxAttempts"}) == {
        "maxAttempts": 1,
        "colour": 2,
    }
    assert reader.warnings == [Problem("retry.colour", "unknown key, ignored")]
    assert reader.section("retry", "x", {"maxAttempts"}) is None
    assert [p.path for p in reader.errors] == ["retry"]


def test_tables_take_any_key() -> None:
    reader = Reader()
    assert reader.table("deployments", {"a,b": [], "c,d": []}) == {"a,b": [], "c,d": []}
    assert reader.table("deployments", None) == {}
    assert reader.table("deployments", [1]) == {}
    assert not reader.warnings
    assert [p.path for p in reader.errors] == ["deployments"]


def test_routes() -> None:
    reader = Reader()
    assert reader.route("r", "openrouter,anthropic/claude-sonnet-4") == "openrouter,anthropic/claude-sonnet-4"
    assert reader.route("r", None) is None
    assert reader.route("r", "gpt-4o") is None
    assert reader.route("r", ",gpt-4o") is None
    assert len(reader.errors) == 2


def test_finish_raises_everything_and_hands_over_warnings() -> None:
    reader = Reader()
    reader.section("s", {"x": 1}, ())
    sink: list[Problem] = []
    reader.finish(sink)
    assert [p.path for p in sink] == ["s.x"]
    reader.error("a", "one")
    reader.error("b", "two")
    with pytest.raises(ConfigError) as caught:
        reader.finish(None)
    assert [str(p) for p in caught.value.problems] == ["a: one", "b: two"]
