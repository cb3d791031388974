"""The BPE encodings whose data ships with ccr-fast (``data/``), each loaded the first time it is used.

* ``cl100k_base``: CCR's routing count; gpt-4 and gpt-3.5 (OpenAI's data, as tiktoken downloads it).
* ``o200k_base``: gpt-4o, gpt-4.1, gpt-5, the o-series, gpt-oss (OpenAI's data, from the litellm wheel).
* ``qwen``: Qwen 1 to Qwen 3 and QwQ (from Alibaba's dashscope SDK wheel, Apache-2.0).
* ``deepseek_v3``: DeepSeek V3, R1, V3.1, V3.2 (DeepSeek's tokenizer.json in the litellm wheel, MIT,
  converted to tiktoken's format).

``scripts/tokenizer_data.py`` rebuilds every file from those wheels; the sha256 pinned here is checked on
every load, so a damaged install fails loudly instead of counting wrong.  Nothing is downloaded, and the
loader reads the files directly (tiktoken's own loader would also copy them into a cache directory).

An encoding costs 25-50 MB of memory and 0.2-0.5 s to load, so each is built once, on first use, under a
lock (worker threads may ask at the same time), and only the encodings a config's providers and models use
are ever loaded.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import tiktoken

__all__ = ["BUNDLED", "CCR_ENCODING", "BundledEncoding", "encoder", "get", "is_loaded"]

DATA: Final = Path(__file__).with_name("data")

#: the encoding CCR counts with, for routing and by default
CCR_ENCODING: Final = "cl100k_base"

_ENDOFTEXT = "<|endoftext|>"

# The split patterns and special tokens of OpenAI's encodings, as tiktoken_ext.openai_public defines them.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
    r"""\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    _ENDOFTEXT: 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_O200K_SPECIAL = {_ENDOFTEXT: 199999, "<|endofprompt|>": 200018}

# Qwen's pattern and special tokens as Alibaba's dashscope SDK defines them (dashscope/tokenizers).
_QWEN_PAT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"""
    r"""\s+(?!\S)|\s+"""
)
_QWEN_SPECIAL = {
    token: 151643 + offset
    for offset, token in enumerate(
        (_ENDOFTEXT, "<|im_start|>", "<|im_end|>", *(f"<|extra_{i}|>" for i in range(205)))
    )
}

# DeepSeek-V3 splits text in three passes (Hugging Face "Split" pre-tokenizers, each isolating its
# matches): runs of 1-3 digits, then runs of CJK characters, then the rest with the pattern below, where
# text no alternative matches becomes a piece of its own.  One tiktoken pattern does the same: digits and
# CJK first, every class of the third pattern minus those characters (they end a piece), ``(?!\S)``
# succeeding at such a boundary as it does at the end of a piece, and a last alternative for the
# unmatched runs: characters no alternative can start with (controls, format characters such as the
# zero-width joiner), except one followed by a letter, which starts the second alternative.  Such a run
# is cut every 1000 characters, which keeps the regex engine within its backtracking limit; it only
# differs from DeepSeek's split on runs that long.  Checked token for token against the ``tokenizers``
# library on every text of tests/tokens and on random text.
_CJK = "一-龥぀-ゟ゠-ヿ"  # U+4E00-9FA5, hiragana U+3040-309F, katakana U+30A0-30FF
_LETTER = rf"[[\p{{L}}\p{{M}}]--[{_CJK}]]"
_DEEPSEEK_PAT = (
    rf"""\p{{N}}{{1,3}}|[{_CJK}]+"""
    r"""|[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+"""
    rf"""|[^\r\n\p{{L}}\p{{P}}\p{{S}}\p{{N}}{_CJK}]?{_LETTER}+"""
    rf"""| ?[[\p{{P}}\p{{S}}]--[{_CJK}]]+[\r\n]*"""
    r"""|\s*[\r\n]+"""
    rf"""|\s+(?![^\s\p{{N}}{_CJK}])"""
    r"""|\s+"""
    rf"""|(?:[^\p{{L}}\p{{M}}\p{{P}}\p{{S}}\s\p{{N}}{_CJK}](?!{_LETTER})){{1,1000}}"""
)


def _deepseek_special() -> dict[str, int]:
    data = (DATA / "deepseek_v3.special.json").read_bytes()
    _check(
        data, "828b3ae9646dfb41cde487eef25aa3656349db16fd99fc7cd39b3336a1412d5c", "deepseek_v3.special.json"
    )
    special: dict[str, int] = json.loads(data)
    return special


@dataclass(frozen=True, slots=True)
class BundledEncoding:
    """One bundled encoding: where its ranks are, how it splits text, and how its reference counts."""

    name: str
    file: str
    sha256: str
    pat_str: str
    special_tokens: Callable[[], Mapping[str, int]]
    #: special-token text counts as the special token (as Hugging Face tokenizers and dashscope do);
    #: otherwise it is ordinary text (CCR's count, OpenAI's ``encode_ordinary``)
    match_special: bool = False
    #: text is NFC-normalized first (Qwen's tokenizers do)
    nfc: bool = False


BUNDLED: Final[Mapping[str, BundledEncoding]] = {
    enc.name: enc
    for enc in (
        BundledEncoding(
            "cl100k_base",
            "cl100k_base.tiktoken",
            "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
            _CL100K_PAT,
            lambda: _CL100K_SPECIAL,
        ),
        BundledEncoding(
            "o200k_base",
            "o200k_base.tiktoken",
            "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
            _O200K_PAT,
            lambda: _O200K_SPECIAL,
        ),
        BundledEncoding(
            "qwen",
            "qwen.tiktoken",
            "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186",
            _QWEN_PAT,
            lambda: _QWEN_SPECIAL,
            match_special=True,
            nfc=True,
        ),
        BundledEncoding(
            "deepseek_v3",
            "deepseek_v3.tiktoken",
            "ea361439831165203088c236a65f20163f58a68d735b51593dfe1068a23920b2",
            _DEEPSEEK_PAT,
            _deepseek_special,
            match_special=True,
        ),
    )
}


def _check(data: bytes, sha256: str, name: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise RuntimeError(
            f"bundled tokenizer data {DATA / name} is damaged (sha256 {actual}, expected {sha256}); "
            "reinstall ccr-fast"
        )


def _ranks(spec: BundledEncoding) -> dict[bytes, int]:
    """tiktoken's format: one ``<base64 token> <rank>`` per line."""
    data = (DATA / spec.file).read_bytes()
    _check(data, spec.sha256, spec.file)
    fields = data.split()
    return dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, shaped as a trie so a search costs little per character."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def branch(node: dict[str, Any]) -> str:
        options = [re.escape(char) + branch(child) for char, child in sorted(node.items()) if char]
        if not options:
            return ""
        body = options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"
        return f"(?:{body})?" if "" in node else body

    return branch(trie)


@dataclass(frozen=True, slots=True)
class _Loaded:
    encoding: tiktoken.Encoding
    #: finds special-token text, for encodings that count it as the special token
    specials: re.Pattern[str] | None


_loaded: dict[str, _Loaded] = {}
_locks = {name: threading.Lock() for name in BUNDLED}


def _load(name: str) -> _Loaded:
    found = _loaded.get(name)
    if found is not None:
        return found
    spec = BUNDLED[name]
    with _locks[name]:
        found = _loaded.get(name)
        if found is None:
            special = dict(spec.special_tokens())
            encoding = tiktoken.Encoding(
                spec.name, pat_str=spec.pat_str, mergeable_ranks=_ranks(spec), special_tokens=special
            )
            # The ranks now live in tiktoken's Rust core; the Python copy is only needed to pickle an
            # encoding, which ccr-fast never does, and is a third of the memory an encoding takes.
            encoding._mergeable_ranks = {}
            specials = re.compile(_trie_pattern(special)) if spec.match_special else None
            found = _Loaded(encoding, specials)
            _loaded[name] = found
    return found


def get(name: str) -> tiktoken.Encoding:
    """The bundled encoding ``name``, built on first use (``KeyError`` for a name that is not bundled)."""
    return _load(name).encoding


def is_loaded(name: str) -> bool:
    """Whether ``name`` has been built in this process (memory and start-up cost already paid)."""
    return name in _loaded


def encoder(name: str) -> Callable[[str], list[int]]:
    """The function that turns text into the token ids ``name``'s reference tokenizer produces.

    The encoding itself is only loaded on the first call.
    """
    spec = BUNDLED[name]
    if not spec.match_special:
        # Special-token text such as ``<|endoftext|>`` is counted as ordinary text, never rejected.
        def encode_ordinary(text: str) -> list[int]:
            return _load(name).encoding.encode_ordinary(text)

        return encode_ordinary

    def encode(text: str) -> list[int]:
        loaded = _load(name)
        if spec.nfc:
            text = unicodedata.normalize("NFC", text)
        assert loaded.specials is not None
        # tiktoken converts the whole set of allowed special tokens on every call (DeepSeek has 1283),
        # so texts without any special-token text, nearly all of them, take the ordinary path.
        if loaded.specials.search(text) is None:
            return loaded.encoding.encode_ordinary(text)
        return loaded.encoding.encode(text, allowed_special="all")

    return encode
