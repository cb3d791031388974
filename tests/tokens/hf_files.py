"""A small Hugging Face ``tokenizer.json`` made on the spot, for the ``path`` setting's tests."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from tokenizers.trainers import BpeTrainer

TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog. " * 20,
    "def count(body):\n    return sum(len(encode(text)) for text in fragments(body))\n" * 10,
    "Token counting works offline, from a file the user provides. " * 20,
]


def write_tokenizer_json(path: Path) -> Path:
    """A byte-level BPE with a 400-token vocabulary and one special token, ``<|marker|>``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = BpeTrainer(
        vocab_size=400,
        special_tokens=["<|marker|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer)
    tokenizer.save(str(path))
    return path
