"""Record the reference token counts of tests/vectors/tokens with each provider's own tokenizer.

The counts tests/tokens and tests/server compare ccr-fast against come from the reference implementations,
not from ccr-fast's code:

* cl100k_base and o200k_base: tiktoken's own encoding definitions (``tiktoken_ext.openai_public``), fed
  ranks files whose sha256 is the one tiktoken expects, ``encode_ordinary``;
* qwen: the ``QwenTokenizer`` of Alibaba's dashscope SDK (its wheel's ``dashscope/tokenizers``), ``encode``;
* deepseek_v3: the Hugging Face ``tokenizers`` library with DeepSeek's ``tokenizer.json`` (from the
  litellm wheel), ``encode(text, add_special_tokens=False)``.

Each text of ``texts.json`` is counted, each of the 400 random strings of ``random_texts.json`` (mixed
scripts, digits, CJK, emoji, control and format characters, special-token text: the corners where
tokenizers' splitting rules differ), and the Claude Code first turn of ``claude_code_first_turn.json`` is
counted as CCR counts a request: fragment by fragment (system texts, message texts, tool inputs as compact
JSON, tool names + descriptions, tool schemas as compact JSON), summed.

Needs tiktoken and tokenizers (a scratch virtualenv is enough)::

    pip download litellm dashscope --no-deps -d /tmp/wheels
    python scripts/record_token_vectors.py /tmp/wheels/litellm-*.whl /tmp/wheels/dashscope-*.whl
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken_ext.openai_public as openai_public
from tiktoken.load import load_tiktoken_bpe

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "ccr_fast" / "tokens" / "data"
VECTORS = ROOT / "tests" / "vectors" / "tokens"


def openai_encoding(name: str) -> Callable[[str], int]:
    """tiktoken's definition of ``name`` with the bundled ranks (checked against tiktoken's expected hash)."""
    constructor = getattr(openai_public, name)
    real_loader = openai_public.load_tiktoken_bpe

    def local_ranks(url: str, expected_hash: str) -> dict[bytes, int]:
        return load_tiktoken_bpe(str(DATA / f"{name}.tiktoken"), expected_hash=expected_hash)

    openai_public.load_tiktoken_bpe = local_ranks
    try:
        encoding = tiktoken.Encoding(**constructor())
    finally:
        openai_public.load_tiktoken_bpe = real_loader
    return lambda text: len(encoding.encode_ordinary(text))


def qwen_counter(dashscope_wheel: Path, scratch: Path) -> Callable[[str], int]:
    with zipfile.ZipFile(dashscope_wheel) as wheel:
        for name in ("tokenizer_base.py", "qwen_tokenizer.py"):
            (scratch / name).write_bytes(wheel.read(f"dashscope/tokenizers/{name}"))
        (scratch / "qwen.tiktoken").write_bytes(wheel.read("dashscope/resources/qwen.tiktoken"))
        (scratch / "__init__.py").write_text("")
    spec = importlib.util.spec_from_file_location(
        "dashscope_tokenizers", scratch / "__init__.py", submodule_search_locations=[str(scratch)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["dashscope_tokenizers"] = package
    spec.loader.exec_module(package)
    from dashscope_tokenizers.qwen_tokenizer import QwenTokenizer  # type: ignore[import-not-found]

    tokenizer = QwenTokenizer(str(scratch / "qwen.tiktoken"))
    return lambda text: len(tokenizer.encode(text))


def deepseek_counter(litellm_wheel: Path, scratch: Path) -> Callable[[str], int]:
    from tokenizers import Tokenizer

    path = scratch / "deepseek_tokenizer.json"
    with zipfile.ZipFile(litellm_wheel) as wheel:
        path.write_bytes(wheel.read("litellm/litellm_core_utils/tokenizers/deepseek_tokenizer.json"))
    tokenizer = Tokenizer.from_file(str(path))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def ccr_fragments(body: dict[str, Any]) -> list[str]:
    """The texts CCR counts in a request (the body here has only these block types)."""
    out = [block["text"] for block in body["system"]]
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, str):
            out.append(content)
            continue
        for block in content:
            if block["type"] == "text":
                out.append(block["text"])
            elif block["type"] == "tool_use":
                out.append(compact(block["input"]))
            elif block["type"] == "tool_result":
                out.append(block["content"])
            elif block["type"] == "thinking":
                out.append(block["thinking"])
    for tool in body["tools"]:
        out.append(tool["name"] + tool.get("description", ""))
        out.append(compact(tool["input_schema"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("litellm_wheel", type=Path)
    parser.add_argument("dashscope_wheel", type=Path)
    args = parser.parse_args()
    texts: dict[str, str] = json.loads((VECTORS / "texts.json").read_text())
    first_turn = json.loads((VECTORS / "claude_code_first_turn.json").read_text())
    fragments = ccr_fragments(first_turn)
    random_texts: list[str] = json.loads((VECTORS / "random_texts.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        counters = {
            "cl100k_base": openai_encoding("cl100k_base"),
            "o200k_base": openai_encoding("o200k_base"),
            "qwen": qwen_counter(args.dashscope_wheel, Path(tmp)),
            "deepseek_v3": deepseek_counter(args.litellm_wheel, Path(tmp)),
        }
        counts = {
            encoding: {
                **{name: count(text) for name, text in texts.items()},
                "claude_code_first_turn": sum(count(text) for text in fragments),
            }
            for encoding, count in counters.items()
        }
        random_counts = {
            encoding: [count(text) for text in random_texts] for encoding, count in counters.items()
        }
    out = VECTORS / "reference_counts.json"
    out.write_text(json.dumps(counts, indent=2) + "\n")
    print(out.read_text())
    (VECTORS / "random_counts.json").write_text(
        "{\n" + ",\n".join(f'  "{name}": {json.dumps(c)}' for name, c in random_counts.items()) + "\n}\n"
    )


if __name__ == "__main__":
    main()
