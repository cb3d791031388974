"""The bundled encodings: their data, their definitions, and counts recorded with each reference tokenizer.

tests/vectors/tokens holds texts (English, code, JSON schemas, German, Chinese, Japanese, Russian, emoji,
mixed scripts), a Claude Code first turn, 400 random strings, and the counts that tiktoken (cl100k_base,
o200k_base), Alibaba's dashscope tokenizer (Qwen) and Hugging Face ``tokenizers`` (DeepSeek-V3) gave for
them; scripts/record_token_vectors.py recorded them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken_ext.openai_public as openai_public
from tiktoken.load import load_tiktoken_bpe

from ccr_fast.tokens import counter_for, encodings

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "tokens"
TEXTS: dict[str, str] = json.loads((VECTORS / "texts.json").read_text())
FIRST_TURN: dict[str, Any] = json.loads((VECTORS / "claude_code_first_turn.json").read_text())
REFERENCE: dict[str, dict[str, int]] = json.loads((VECTORS / "reference_counts.json").read_text())
RANDOM_TEXTS: list[str] = json.loads((VECTORS / "random_texts.json").read_text())
RANDOM_COUNTS: dict[str, list[int]] = json.loads((VECTORS / "random_counts.json").read_text())
OPENAI = ["cl100k_base", "o200k_base"]


def tiktoken_definition(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[tiktoken.Encoding, str]:
    """``name`` exactly as tiktoken defines it, its ranks read by tiktoken's own loader from the bundled file
    and checked against the hash tiktoken expects for the download.  Returns the encoding and that hash."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the file, never copy it into a cache
    expected: list[str] = []

    def bundled(url: str, expected_hash: str) -> dict[bytes, int]:
        assert url.endswith(f"/{name}.tiktoken")
        expected.append(expected_hash)
        return load_tiktoken_bpe(str(encodings.DATA / f"{name}.tiktoken"), expected_hash=expected_hash)

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", bundled)
    return tiktoken.Encoding(**getattr(openai_public, name)()), expected[0]


@pytest.mark.parametrize("name", OPENAI)
def test_openai_encodings_are_tiktokens_own(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reference, expected_hash = tiktoken_definition(name, monkeypatch)
    ours = encodings.get(name)
    assert encodings.BUNDLED[name].sha256 == expected_hash
    assert ours.name == name
    assert ours._pat_str == reference._pat_str
    assert ours._special_tokens == reference._special_tokens
    assert ours.n_vocab == reference.n_vocab
    for text in [*TEXTS.values(), *RANDOM_TEXTS[:100]]:
        assert ours.encode_ordinary(text) == reference.encode_ordinary(text)


def test_published_token_ids() -> None:
    assert encodings.get("cl100k_base").encode_ordinary("tiktoken is great!") == [
        83,
        1609,
        5963,
        374,
        2294,
        0,
    ]
    assert encodings.get("o200k_base").encode_ordinary("hello world") == [24912, 2375]


@pytest.mark.parametrize("name", sorted(TEXTS))
@pytest.mark.parametrize("encoding", sorted(REFERENCE))
def test_text_counts_equal_the_reference_tokenizer(encoding: str, name: str) -> None:
    assert len(encodings.encoder(encoding)(TEXTS[name])) == REFERENCE[encoding][name]


@pytest.mark.parametrize("encoding", sorted(REFERENCE))
def test_a_claude_code_first_turn_counts_like_the_reference(encoding: str) -> None:
    assert counter_for(encoding).count(FIRST_TURN) == REFERENCE[encoding]["claude_code_first_turn"]


@pytest.mark.parametrize("encoding", sorted(RANDOM_COUNTS))
def test_random_strings_count_like_the_reference(encoding: str) -> None:
    encode = encodings.encoder(encoding)
    pairs = zip(RANDOM_TEXTS, RANDOM_COUNTS[encoding], strict=True)
    assert [(text, len(encode(text)), ref) for text, ref in pairs if len(encode(text)) != ref] == []


def test_cl100k_overcounts_non_latin_text_against_o200k() -> None:
    """Why OpenAI's current models count with o200k: cl100k is more than 10% off on these."""
    for name in ("german", "chinese", "japanese", "russian", "emoji"):
        assert REFERENCE["cl100k_base"][name] > 1.1 * REFERENCE["o200k_base"][name]
    for name in ("english", "code", "json_schema", "claude_code_first_turn"):
        assert (
            abs(REFERENCE["cl100k_base"][name] - REFERENCE["o200k_base"][name])
            <= 0.03 * (REFERENCE["o200k_base"][name])
        )


@pytest.mark.parametrize("encoding", OPENAI)
def test_openai_special_token_text_is_ordinary_text(encoding: str) -> None:
    encode = encodings.encoder(encoding)
    assert len(encode("<|endoftext|>")) > 1


@pytest.mark.parametrize(
    ("encoding", "special"),
    [
        ("qwen", "<|im_end|>"),
        ("qwen", "<|endoftext|>"),
        ("deepseek_v3", "<think>"),
        ("deepseek_v3", "<｜User｜>"),
    ],
)
def test_hugging_face_style_special_token_text_is_one_token(encoding: str, special: str) -> None:
    encode = encodings.encoder(encoding)
    assert len(encode(special)) == 1
    assert len(encode(f"before {special} after")) == len(encode("before ")) + 1 + len(encode(" after"))


def test_qwen_counts_nfc_normalized_text() -> None:
    encode = encodings.encoder("qwen")
    assert encode("cafe\u0301") == encode("café")
    raw = encodings.get("qwen")
    assert raw.encode_ordinary("cafe\u0301") != raw.encode_ordinary("café")


@pytest.mark.parametrize("encoding", sorted(encodings.BUNDLED))
def test_long_runs_of_one_character_class_are_counted(encoding: str) -> None:
    """Runs that make a backtracking regex engine give up (the zero-width joiner is a piece of its own
    kind in DeepSeek's split) still count."""
    encode = encodings.encoder(encoding)
    for text in ("\u200d" * 300_000, " " * 100_000 + "x", "7" * 100_000, "中" * 100_000, "\x00" * 100_000):
        assert len(encode(text)) > 0


def test_damaged_data_is_refused() -> None:
    damaged = encodings.BundledEncoding(
        "o200k_base", "o200k_base.tiktoken", "0" * 64, "x", lambda: {}, match_special=False
    )
    with pytest.raises(RuntimeError, match="damaged"):
        encodings._ranks(damaged)


def test_concurrent_first_use_builds_one_encoding() -> None:
    """In a fresh process, threads racing to the first use of an encoding all get the same one."""
    code = """
import threading
from ccr_fast.tokens import encodings
seen = []
threads = [threading.Thread(target=lambda: seen.append(encodings.get("qwen"))) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len({id(e) for e in seen}), len(seen), sorted(encodings._loaded))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["1", "8", "['qwen']"]


def test_nothing_is_loaded_until_counted() -> None:
    code = """
from ccr_fast.tokens import count_tokens, counter_for, encodings
counter_for("o200k_base")  # creating a counter costs nothing
before = sorted(encodings._loaded)
count_tokens({"messages": [{"role": "user", "content": "hi"}]})
print(before, sorted(encodings._loaded))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[] ['cl100k_base']"


def test_loading_is_thread_safe_in_process() -> None:
    results: list[tiktoken.Encoding] = []
    threads = [
        threading.Thread(target=lambda: results.append(encodings.get("deepseek_v3"))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(enc) for enc in results}) == 1 and encodings.is_loaded("deepseek_v3")
