"""State shared by the worker processes of one server, in one shared-memory segment.

``segment`` creates, attaches and cleans up the segment and owns its versioned header; ``atomic`` (or the
compiled ``ccr_fast._ext.shm_atomic``) provides the word-level atomics everything else is built on;
``table`` maps keys to fixed slots; ``gcra`` rate-limits keys; ``counters`` keeps per-worker counter shards.

The master calls ``Segment.cleanup_stale()`` and ``Segment.create(layout)`` before the workers start and
passes the segment name on; each worker calls ``Segment.attach(name)``.
"""

from ccr_fast.state.counters import Counters
from ccr_fast.state.gcra import Decision, RateLimiter
from ccr_fast.state.segment import Header, Layout, Segment, SegmentError
from ccr_fast.state.table import KeyTable, TableFull

__all__ = [
    "Counters",
    "Decision",
    "Header",
    "KeyTable",
    "Layout",
    "RateLimiter",
    "Segment",
    "SegmentError",
    "TableFull",
]
