"""The run's options (which phases, how long, which systems) and its file-descriptor budget."""

from __future__ import annotations

import resource

import pytest
from bench.phases import FDS_PER_STREAM, MAX_OPEN_STREAMS, raise_file_limit, streams_within
from bench.run import parse_args


def test_defaults_full_and_quick() -> None:
    full = parse_args([])
    assert full.systems == ["direct", "ccr-fast", "ccr"]  # LiteLLM only when asked for
    assert (full.open_streams, full.soak_seconds, full.feature_rounds) == (1000, 180.0, 5)
    quick = parse_args(["--quick"])
    assert (quick.open_streams, quick.soak_seconds, quick.feature_rounds) == (200, 0.0, 1)
    assert quick.micro is False
    long_soak = parse_args(["--quick", "--soak-seconds", "1800"])
    assert long_soak.soak_seconds == 1800


def test_litellm_is_added_when_asked_for() -> None:
    assert parse_args(["--litellm"]).systems == ["direct", "ccr-fast", "ccr", "litellm"]
    assert parse_args(["--systems", "ccr-fast,litellm", "--litellm"]).systems == ["ccr-fast", "litellm"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--systems", "ccr-fast,nginx"],
        ["--open-streams", str(MAX_OPEN_STREAMS + 1)],
        ["--open-streams", "-1"],
        ["--soak-seconds", "60", "--soak-interval", "0"],
    ],
)
def test_bad_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_file_limit_covers_the_streams_or_bounds_them() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        limit = raise_file_limit(100)
        wanted = 100 * FDS_PER_STREAM + 1024
        if hard == resource.RLIM_INFINITY or hard >= wanted:
            assert limit >= wanted
        else:
            assert limit == hard  # as far as this process may go
        assert limit >= soft
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert streams_within(100_000, 1000) == 1000
    assert streams_within(100_000, 50_000) == MAX_OPEN_STREAMS
    assert streams_within(1024, 1000) == (1024 - 512) // FDS_PER_STREAM
    assert streams_within(256, 1000) == 0
