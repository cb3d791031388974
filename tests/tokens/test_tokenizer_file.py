"""Counting with a ``tokenizer.json`` from disk (the ``huggingface`` setting's ``path``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.tokens.hf_files import write_tokenizer_json
from tokenizers import Tokenizer

from ccr_fast.tokens import file_counter, tokenizer_file


@pytest.fixture
def tokenizer_json(tmp_path: Path) -> Path:
    return write_tokenizer_json(tmp_path / "tokenizer.json")


def test_encoder_gives_the_tokenizers_own_ids(tokenizer_json: Path) -> None:
    reference = Tokenizer.from_file(str(tokenizer_json))
    encode = tokenizer_file.encoder(tokenizer_json)
    for text in ("The quick brown fox", "def count(body): <|marker|> return 0", "ünïcödé 東京 🚀", ""):
        assert encode(text) == reference.encode(text, add_special_tokens=False).ids
    assert len(encode("<|marker|>")) == 1


async def test_file_counter_counts_request_fragments(tokenizer_json: Path) -> None:
    reference = Tokenizer.from_file(str(tokenizer_json))
    body = {
        "system": "Token counting works offline.",
        "messages": [{"role": "user", "content": "The quick brown fox jumps over the lazy dog."}],
    }
    expected = sum(
        len(reference.encode(text, add_special_tokens=False).ids)
        for text in ("Token counting works offline.", "The quick brown fox jumps over the lazy dog.")
    )
    counter = file_counter(tokenizer_json)
    assert counter is file_counter(tokenizer_json)
    assert await counter.count_async(body) == counter.count(body) == expected


def test_problems_are_named(tmp_path: Path, tokenizer_json: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tokenizer_file.problem(tokenizer_json) is None
    missing = tmp_path / "nope" / "tokenizer.json"
    problem = tokenizer_file.problem(missing)
    assert problem is not None and str(missing) in problem and "does not exist" in problem
    monkeypatch.setattr(tokenizer_file, "available", lambda: False)
    problem = tokenizer_file.problem(tokenizer_json)
    assert problem is not None and "pip install 'ccr-fast[huggingface]'" in problem


def test_paths_are_resolved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert tokenizer_file.resolve("~/t/tokenizer.json") == tmp_path / "t" / "tokenizer.json"
    assert tokenizer_file.resolve("tokenizer.json") == tmp_path / "tokenizer.json"


def test_an_unreadable_file_fails_with_its_name_and_is_not_reread(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": "1.0", "model": ')
    encode = tokenizer_file.encoder(broken)
    with pytest.raises(ValueError, match=r"broken\.json.*cannot be read"):
        encode("hello")
    write_tokenizer_json(broken)  # fixed on disk: still refused until restart, never reread per request
    with pytest.raises(ValueError, match="cannot be read"):
        encode("hello")
