"""Blocks of shared words larger than one key-table slot, addressed by a key.

A key-table slot holds only a few state words (``KeyTable.state_words``), while a metrics series or a
session record needs a dozen or more.  A block of ``n`` words under ``key`` is spread over
``ceil(n / state_words)`` slots keyed ``key + b"#" + chunk number``; word ``i`` lives in chunk
``i // state_words``.  Everything the key table promises carries over: a chunk is claimed with one
compare-and-swap, starts zeroed, and never moves, so the offsets of a block are computed once per process
and cached by the caller, and an update is a single atomic operation on a precomputed offset.

The words of one block are not contiguous, so there is no multi-word atomicity here; users either keep
each word meaningful on its own (counters) or publish a record by writing one word last (see
``ccr_fast.observe.names``).
"""

from __future__ import annotations

from ccr_fast.state.table import KeyTable

__all__ = ["chunk_keys", "claim_block", "find_block"]


def chunk_keys(table: KeyTable, key: bytes, words: int) -> list[bytes]:
    """The table keys holding a block of ``words`` words under ``key``."""
    if words < 1:
        raise ValueError(f"a block needs at least one word, not {words}")
    per_slot = table.state_words
    return [b"%s#%d" % (key, chunk) for chunk in range((words + per_slot - 1) // per_slot)]


def claim_block(table: KeyTable, key: bytes, words: int) -> tuple[int, ...]:
    """Byte offsets of the ``words`` words of ``key``'s block, claiming slots as needed.

    Raises ``TableFull`` (already counted and logged by the table) when a chunk finds no slot; chunks
    claimed before that stay claimed, which costs slots but never correctness.
    """
    chunks = [table.slot(chunk) for chunk in chunk_keys(table, key, words)]
    return _offsets(chunks, table.state_words, words)


def find_block(table: KeyTable, key: bytes, words: int) -> tuple[int, ...] | None:
    """Offsets of ``key``'s block when every chunk of it has been claimed (by any process), else None.

    For readers: they must not claim slots for blocks nobody writes.
    """
    found: list[int] = []
    for chunk in chunk_keys(table, key, words):
        offset = table.find(chunk)
        if offset is None:
            return None
        found.append(offset)
    return _offsets(found, table.state_words, words)


def _offsets(chunks: list[int], per_slot: int, words: int) -> tuple[int, ...]:
    return tuple(chunks[i // per_slot] + 8 * (i % per_slot) for i in range(words))
