"""Which bundled encoding is the reference tokenizer of a model.

* ``encoding_for_model``: the default without a ``tokenizer`` setting.  OpenAI's models that tokenize with
  o200k_base (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1/o3/o4, chatgpt-4o, gpt-oss) count with it, according to
  tiktoken's own model table (a lookup only, nothing is downloaded); everything else counts with
  cl100k_base, CCR's encoding.
* ``hf_encoding``: the bundled encoding for a Hugging Face model id in a ``huggingface`` setting
  (Qwen and DeepSeek-V3 models), or None.
"""

from __future__ import annotations

import re
from typing import Final

from tiktoken.model import MODEL_PREFIX_TO_ENCODING, MODEL_TO_ENCODING

from ccr_fast.tokens.encodings import CCR_ENCODING

__all__ = ["HF_FAMILIES", "encoding_for_model", "hf_encoding", "tiktoken_encoding"]

#: tiktoken encodings that count ordinary text exactly like a bundled one
_TIKTOKEN_ALIASES: Final = {
    "cl100k_base": "cl100k_base",
    "o200k_base": "o200k_base",
    # gpt-oss: o200k_base's ranks and split with more special tokens, which ccr-fast counts as text
    "o200k_harmony": "o200k_base",
}
#: model names tiktoken's table misses, as Ollama and similar servers spell them
_EXTRA_MODELS: Final = {"gpt-oss": "o200k_base"}

#: Hugging Face model ids whose tokenizer is bundled, first match wins
HF_FAMILIES: Final[tuple[tuple[re.Pattern[str], str | None], ...]] = (
    # DeepSeek-R1's distilled models keep the tokenizer of the model they were distilled into
    (re.compile(r"distill-qwen"), "qwen"),
    (re.compile(r"distill-llama"), None),
    (re.compile(r"(?:^|/)deepseek-(?:v3|r1|chat|reasoner)"), "deepseek_v3"),
    (re.compile(r"(?:^|/)(?:qwen|qwq)"), "qwen"),
)


def tiktoken_encoding(name: str) -> str | None:
    """The bundled encoding that counts like tiktoken's encoding ``name``, or None."""
    return _TIKTOKEN_ALIASES.get(name)


def _tiktoken_table(name: str) -> str | None:
    if name in MODEL_TO_ENCODING:
        return MODEL_TO_ENCODING[name]
    for prefix, encoding in MODEL_PREFIX_TO_ENCODING.items():
        if name.startswith(prefix):
            return encoding
    return _EXTRA_MODELS.get(name)


def encoding_for_model(model: str) -> str:
    """The bundled encoding to count ``model``'s requests with when no ``tokenizer`` setting says.

    Gateways prefix OpenAI's names (``openai/gpt-4o`` on OpenRouter) and local servers tag them
    (``gpt-oss:20b``), so the name is also tried without either.
    """
    name = model.strip().lower().rsplit("/", 1)[-1]
    found = _tiktoken_table(name)
    if found is None and ":" in name:
        found = _tiktoken_table(name.split(":", 1)[0])
    return _TIKTOKEN_ALIASES.get(found or "", CCR_ENCODING)


def hf_encoding(model_id: str) -> str | None:
    """The bundled encoding of Hugging Face model ``model_id`` (``Qwen/Qwen3-Coder-30B-A3B-Instruct``), or
    None when its tokenizer is not bundled."""
    name = model_id.strip().lower()
    for pattern, encoding in HF_FAMILIES:
        if pattern.search(name):
            return encoding
    return None
