"""A provider's ``tokenizer`` setting (CCR v2's shape), read: what answers ``count_tokens`` for a model.

::

    tokenizer: {
      default: { type: "tiktoken", encoding: "o200k_base" },          // every model of the provider
      models: {
        "gemini-2.5-pro": { type: "api" },                             // per model, wins over default
        "qwen3-coder": { type: "huggingface", model: "Qwen/Qwen3-Coder-480B-A35B-Instruct" },
        "glm-4.6": { type: "huggingface", path: "~/tokenizers/glm-4.6/tokenizer.json" },
      },
    }

* no setting: the model's own encoding when it is bundled and known by name (``models.encoding_for_model``:
  o200k_base for OpenAI's current models), else cl100k_base, CCR's count.
* ``tiktoken``: ``encoding`` ``cl100k_base`` or ``o200k_base`` (``o200k_harmony`` counts as o200k_base);
  without ``encoding``, the model's default above.
* ``huggingface``: ``model`` names a Hugging Face model whose tokenizer is bundled (Qwen, DeepSeek-V3), or
  ``path`` a ``tokenizer.json`` on disk (needs the optional ``tokenizers`` package).  ccr-fast never
  downloads a tokenizer, so any other model gets the default count and a note.
* ``api``: the upstream's own counter (``server.count_tokens``), with the default local count as fallback.

Settings that cannot be honoured carry a ``note`` (the handler logs it once) and count with the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ccr_fast.tokens import tokenizer_file
from ccr_fast.tokens.counter import TokenCounter, counter_for, file_counter
from ccr_fast.tokens.encodings import CCR_ENCODING
from ccr_fast.tokens.models import encoding_for_model, hf_encoding, tiktoken_encoding

if TYPE_CHECKING:
    from ccr_fast.config import ProviderConfig

__all__ = ["TokenizerChoice", "local_counter", "tokenizer_choice"]


@dataclass(frozen=True, slots=True)
class TokenizerChoice:
    """How one provider/model's tokens are counted."""

    #: "api": the upstream's own counter; "local": a counter in this process
    kind: Literal["api", "local"] = "local"
    #: the bundled encoding of the local count (also what "api" falls back to)
    encoding: str = CCR_ENCODING
    #: a Hugging Face ``tokenizer.json`` the local count uses instead of ``encoding``
    path: Path | None = None
    #: why the setting could not be followed as written (logged once)
    note: str | None = None

    @property
    def counts_like_routing(self) -> bool:
        """Whether the local count is CCR's cl100k count, which routing may already have made."""
        return self.path is None and self.encoding == CCR_ENCODING


def local_counter(choice: TokenizerChoice) -> TokenCounter:
    """The process-wide counter that makes ``choice``'s local count."""
    return file_counter(choice.path) if choice.path is not None else counter_for(choice.encoding)


def _entry(settings: Mapping[str, Any], model: str) -> Mapping[str, Any] | None:
    models = settings.get("models")
    chosen = models.get(model) if isinstance(models, Mapping) else None
    if not isinstance(chosen, Mapping):
        chosen = settings.get("default")
    return chosen if isinstance(chosen, Mapping) else None


def tokenizer_choice(provider: ProviderConfig, model: str) -> TokenizerChoice:
    """The counter the provider's ``tokenizer`` setting asks for ``model`` (per-model entry, else default)."""
    default = encoding_for_model(model)
    chosen = _entry(provider.tokenizer, model)
    if chosen is None:
        return TokenizerChoice(encoding=default)
    kind = chosen.get("type", "tiktoken")
    if kind == "api":
        return TokenizerChoice("api", default)
    if kind == "tiktoken":
        name = chosen.get("encoding")
        bundled = tiktoken_encoding(name) if isinstance(name, str) else None
        if name is None or bundled is not None:
            return TokenizerChoice(encoding=bundled or default)
        problem = f"tiktoken encoding {name!r} is not bundled (cl100k_base and o200k_base are)"
    elif kind == "huggingface":
        choice, problem = _huggingface(chosen, default)
        if choice is not None:
            return choice
    else:
        problem = f"unknown tokenizer type {kind!r}"
    where = f"provider '{provider.name}', model '{model}'"
    return TokenizerChoice(encoding=default, note=f"{where}: {problem}; counting with {default}")


def _huggingface(chosen: Mapping[str, Any], default: str) -> tuple[TokenizerChoice | None, str]:
    path = chosen.get("path")
    if path is not None:
        if not isinstance(path, str) or not path:
            return None, "huggingface 'path' must be the path of a tokenizer.json"
        resolved = tokenizer_file.resolve(path)
        problem = tokenizer_file.problem(resolved)
        if problem is not None:
            return None, problem
        return TokenizerChoice(encoding=default, path=resolved), ""
    model_id = chosen.get("model")
    if not isinstance(model_id, str) or not model_id:
        return None, "a huggingface tokenizer needs 'model' (a Hugging Face model id) or 'path'"
    bundled = hf_encoding(model_id)
    if bundled is not None:
        return TokenizerChoice(encoding=bundled), ""
    return None, (
        f"the tokenizer of huggingface model {model_id!r} is not bundled (Qwen's and DeepSeek-V3's are) "
        "and is never downloaded; give 'path' to its tokenizer.json"
    )
