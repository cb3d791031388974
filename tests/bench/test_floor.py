"""bench.floor: the summary and the table (the measurement itself runs servers and is not a unit test)."""

from __future__ import annotations

import argparse

from bench.floor import FIXED_ANSWER, Measured, render, summarize


def test_measured_rates() -> None:
    m = Measured(requests=5000, seconds=2.0, cpu_s=0.5, errors=0)
    assert m.rps == 2500
    assert m.cpu_us_per_request == 100


def test_summary_takes_medians_and_the_table_names_the_gateways_own_work() -> None:
    rounds = {
        "mock": [Measured(9000, 1, 0.6, 0)],
        "granian": [Measured(5000, 1, 0.5, 0), Measured(4000, 1, 0.48, 0), Measured(4500, 1, 0.5, 0)],
        "relay": [Measured(3000, 1, 0.45, 0)],
        "ccr-fast": [Measured(2000, 1, 0.5, 1)],
    }
    result = summarize(rounds, argparse.Namespace(rounds=3, duration=1))
    granian = result["systems"]["granian"]
    assert granian["rps"] == 4500
    assert round(granian["cpu_us_per_request"]) == 111  # median of 100, 120, 111
    table = render(result)
    assert "| relay | 3,000 | 150 | 0 |" in table
    assert "| ccr-fast | 2,000 | 250 | 1 |" in table
    assert "100 µs of CPU per request on top of the 150 µs floor" in table


def test_the_fixed_answer_is_an_anthropic_message() -> None:
    import orjson

    message = orjson.loads(FIXED_ANSWER)
    assert message["type"] == "message" and message["content"][0]["type"] == "text"
