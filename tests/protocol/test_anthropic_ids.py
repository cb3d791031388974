"""Minted ids: unique, Anthropic-shaped, cheap, and never shared between a worker and its parent."""

from __future__ import annotations

import os
import random

from ccr_fast.protocol import anthropic_ids as ids


def test_counter_digits_match_the_plain_base62() -> None:
    rng = random.Random(7)
    for n in [0, 1, 61, 62, 3843, 3844, 62**10 - 1, *(rng.randrange(62**10) for _ in range(2000))]:
        assert ids._counter62(n) == ids._base62(n, 10)


def test_a_forked_child_draws_its_own_sequence() -> None:
    read, write = os.pipe()
    parent_next = ids.new_message_id()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ids.new_message_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    mine = ids.new_message_id()
    assert child != mine
    assert child[6:20] != parent_next[6:20]  # a new random prefix, not the parent's counter continued
    assert mine[6:20] == parent_next[6:20]


def test_request_ids_are_unique_and_header_safe() -> None:
    seen = {ids.new_request_id() for _ in range(5000)}
    assert len(seen) == 5000
    assert all(i.startswith("req_") and len(i) == 28 and i[4:].isalnum() for i in seen)
