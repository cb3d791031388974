"""The registry of metric series in shared memory, so the worker serving ``/metrics`` can list every series
that any worker created.

The key table stores hashes, not keys, so a label set hashed into it cannot be read back.  The registry
therefore gives each label set a series id and keeps its labels, as a JSON array, in shared words too:

=======================  ==========================================================================
key                      words
=======================  ==========================================================================
``REGISTRY``             next series id (bumped with a fetch-add), series not tracked
``LABELS + json``        the label set's series id + 1 (0 = none yet)
``NAME + id`` (a block)  meta word, then the JSON bytes: published once the meta word is non-zero
``DATA + id`` (a block)  the series' own words (counters, histogram buckets), claimed before publishing
=======================  ==========================================================================

Registering a label set: look up its ``LABELS`` word; when it is 0, take an id with a fetch-add on the
counter and compare-and-swap ``id + 1`` into the word (a process that loses the race uses the winner's id,
and the id it drew stays unused).  Then claim the data block and publish the name: write the JSON bytes,
then compare-and-swap the meta word (``1 << 63 | data words << 32 | byte length``) from 0.  Every process
that registers the label set checks the meta word and publishes when it is still 0, so a worker killed
between taking an id and publishing leaves nothing behind that the next registrant does not repair; two
publishers write identical bytes.  Readers walk ids ``0 .. next id`` and skip ids that are not published
(unused, or being written).

Label sets are bounded by ``max_series``: past it ``register`` returns None, counts the refusal (once per
process and label set) and the caller drops that series' updates.  Label values come from configuration
(providers, models, scenarios) and small fixed sets (status codes, error types), so hitting the bound means
a misuse worth seeing in ``ccr_metrics_series_dropped_total``, not a normal state.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import orjson

from ccr_fast.state.blocks import claim_block, find_block
from ccr_fast.state.table import KeyTable, TableFull

__all__ = ["KEY_PREFIX", "MAX_LABEL_BYTES", "Series", "SeriesRegistry"]

#: every metrics key in the table starts with this (a NUL keeps it apart from text keys of other users)
KEY_PREFIX: Final = b"\x00m/"
REGISTRY: Final = KEY_PREFIX + b"registry"
LABELS: Final = KEY_PREFIX + b"labels/"
NAME: Final = KEY_PREFIX + b"name/"
DATA: Final = KEY_PREFIX + b"data/"
#: longest label set, as JSON, that can be registered
MAX_LABEL_BYTES: Final = 1024

_NEXT_ID: Final = 0
_DROPPED: Final = 1
_PUBLISHED: Final = 1 << 63
_LENGTH_MASK: Final = (1 << 32) - 1
_WORDS_MASK: Final = (1 << 31) - 1


class Series(NamedTuple):
    """A registered label set and the offsets of its words."""

    id: int
    labels: tuple[str, ...]
    offsets: tuple[int, ...]


class SeriesRegistry:
    """The series registry of one segment, as this process sees it."""

    __slots__ = ("_atomics", "_header", "_max_series", "_published", "_table")

    def __init__(self, table: KeyTable, *, max_series: int = 1024) -> None:
        if max_series < 1:
            raise ValueError(f"max_series must be at least 1, not {max_series}")
        self._table = table
        self._atomics = table.atomics
        self._max_series = max_series
        self._header = claim_block(table, REGISTRY, 2)
        #: id -> series, for ids this process has seen published (they never change)
        self._published: dict[int, Series] = {}

    @property
    def dropped(self) -> int:
        """How often a label set was refused (registry or key table full), summed over processes."""
        return self._atomics.load(self._header[_DROPPED])

    def register(self, labels: tuple[str, ...], words: int) -> Series | None:
        """The series for ``labels`` with ``words`` data words, created when new; None when refused
        (registry full, key table full, or labels longer than ``MAX_LABEL_BYTES`` as JSON).

        Every process must pass the same ``words`` for the same label set (the first element of a label
        set names its kind, and the kind fixes the layout).
        """
        if not 1 <= words <= _WORDS_MASK:
            raise ValueError(f"a series needs 1 to {_WORDS_MASK} words, not {words}")
        encoded = orjson.dumps(list(labels))
        atomics = self._atomics
        if len(encoded) > MAX_LABEL_BYTES:
            atomics.add(self._header[_DROPPED], 1)
            return None
        try:
            word = self._table.slot(LABELS + encoded)
            series_id = atomics.load(word) - 1
            if series_id < 0:
                drawn = atomics.add(self._header[_NEXT_ID], 1)
                if drawn >= self._max_series:
                    atomics.add(self._header[_DROPPED], 1)
                    return None
                series_id = drawn if atomics.cas(word, 0, drawn + 1) else atomics.load(word) - 1
            offsets = claim_block(self._table, DATA + b"%d" % series_id, words)
            self._publish(series_id, encoded, words)
        except TableFull:
            atomics.add(self._header[_DROPPED], 1)
            return None
        return Series(series_id, labels, offsets)

    def series(self) -> list[Series]:
        """Every published series, in id order."""
        known = self._published
        count = min(self._atomics.load(self._header[_NEXT_ID]), self._max_series)
        for series_id in range(count):
            if series_id not in known:
                found = self._read(series_id)
                if found is not None:
                    known[series_id] = found
        return [known[i] for i in sorted(known)]

    def _publish(self, series_id: int, encoded: bytes, words: int) -> None:
        key = NAME + b"%d" % series_id
        meta = claim_block(self._table, key, 1)[0]
        atomics = self._atomics
        if atomics.load(meta):
            return
        block = claim_block(self._table, key, 1 + (len(encoded) + 7) // 8)
        padded = encoded.ljust((len(encoded) + 7) // 8 * 8, b"\0")
        for index in range(len(padded) // 8):
            atomics.store(block[1 + index], int.from_bytes(padded[index * 8 : index * 8 + 8], "little"))
        atomics.cas(meta, 0, _PUBLISHED | words << 32 | len(encoded))

    def _read(self, series_id: int) -> Series | None:
        key = NAME + b"%d" % series_id
        head = find_block(self._table, key, 1)
        if head is None:
            return None
        load = self._atomics.load
        meta = load(head[0])
        if not meta & _PUBLISHED:
            return None
        length = meta & _LENGTH_MASK
        words = (meta >> 32) & _WORDS_MASK
        block = find_block(self._table, key, 1 + (length + 7) // 8)
        data = find_block(self._table, DATA + b"%d" % series_id, words)
        if block is None or data is None:
            return None
        raw = b"".join(load(offset).to_bytes(8, "little") for offset in block[1:])[:length]
        try:
            labels = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            return None
        return Series(series_id, tuple(labels), data)
