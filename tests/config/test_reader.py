"""The config reader where the main config check and the sections read differently: integers and unknown
keys (the rest is exercised through ``test_validate`` and ``tests/resilience/test_config.py``)."""

from __future__ import annotations

from ccr_fast.config.errors import Problem
from ccr_fast.config.reader import Reader


def test_integers_digits_only_reject_what_the_sections_accept() -> None:
    reader = Reader()
    assert reader.integer("a", " 42 ", 1, 0, digits_only=True) == 42
    assert reader.integer("b", 2**60 + 1, 1, 0, digits_only=True) == 2**60 + 1
    assert reader.integer("c", 7.0, 1, 0, digits_only=True) == 1
    assert reader.integer("d", "7.0", 1, 0, digits_only=True) == 1
    assert reader.integer("e", False, 1, 0, digits_only=True) == 1
    assert reader.integer("f", 7.0, 1, 0) == 7
    assert reader.integer("g", "7.0", 1, 0) == 7
    assert [str(p) for p in reader.errors] == [
        "c: expected an integer >= 0, got 7.0",
        'd: expected an integer >= 0, got "7.0"',
        "e: expected an integer >= 0, got false",
    ]


def test_notes_come_first_and_only_sections_suggest_a_known_key() -> None:
    reader = Reader([Problem("env", "unset")])
    reader.unknown_keys("", {"PROT": 1, "PORT": 2}, frozenset({"PORT"}))
    assert reader.section("retry", {"maxAtempts": 3}, ["maxAttempts"]) == {"maxAtempts": 3}
    assert [str(p) for p in reader.warnings] == [
        "env: unset",
        "PROT: unknown key, ignored",
        "retry.maxAtempts: unknown key, ignored; did you mean 'maxAttempts'?",
    ]
    assert not reader.errors
