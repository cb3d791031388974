"""Cluster-wide metrics through Redis: each machine publishes its totals at an interval; any machine reads
the sum.

Per machine (not per worker): the workers' metrics are already summed in shared memory, so one worker
at a time publishes the machine's numbers.  Every worker runs ``run()``; at each interval the first to
move the shared "next publish" word forward publishes (one ``EVALSHA`` of ``PUBLISH``: one round trip,
off the request path).  The script adds to the cluster totals only what each counter grew by since the
machine's last publish (its baseline, kept in Redis), so a publish that is repeated, overlaps another or
follows an outage adds every request exactly once.  Nothing is lost while Redis is down: the counters
keep growing in shared memory and the next publish adds the difference.

The machine is identified by its host name and a random number drawn once per server start (kept in
shared memory, so every worker agrees): a restarted server is a new instance, whose counters start from
zero, while the totals of the old one stay in the cluster hash.  Its baseline expires a day after its
last publish.  If a machine is cut off from Redis for longer than that, its next publish rebuilds the
baseline without adding, so the requests of that gap are not counted (never counted twice), and a
warning says so.  A Redis that lost its data (restarted without persistence) starts a new epoch of
totals; each live machine then adds its whole totals again, so the cluster totals come back as the sum
of the machines alive, and lose only the machines that stopped meanwhile.

Reading (``read``) first publishes this machine's numbers, so the answering machine is always current
and the others lag by at most one interval; it returns None when Redis is unreachable (the API answers
503 rather than zeros).  The layout of the data is ``ccr_fast.observe.cluster_view``'s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Final

from ccr_fast.observe import cluster_view
from ccr_fast.observe.cluster_view import ClusterSnapshot
from ccr_fast.state.redis_scripts import PUBLISH, READ_CLUSTER

if TYPE_CHECKING:
    from ccr_fast.observe.metrics import Metrics
    from ccr_fast.state.redis_backend import RedisBackend
    from ccr_fast.state.shared import SharedState

__all__ = ["BASELINE_TTL_MS", "ClusterMetrics"]

log = logging.getLogger(__name__)

#: how long Redis keeps a silent machine's baseline (its totals are kept for good)
BASELINE_TTL_MS: Final = 86_400_000
_SLOT: Final = "cluster/metrics"
# words of the machine's slot
_INSTANCE: Final = 0  # the random half of the instance id (0 until the first worker draws it)
_NEXT: Final = 8  # CLOCK_MONOTONIC ns of the next periodic publish
_EPOCH: Final = 16  # the epoch of the cluster totals this instance last published into (0: never)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: list[Any]) -> dict[str, int]:
    return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


class ClusterMetrics:
    """This machine's share of the cluster metrics in Redis, for one worker."""

    __slots__ = (
        "_atomics",
        "_backend",
        "_interval_ns",
        "_interval_s",
        "_keys",
        "_live_prefix",
        "_live_ttl_ms",
        "_metrics",
        "_publish",
        "_read",
        "_slot",
        "instance",
    )

    def __init__(
        self,
        metrics: Metrics,
        backend: RedisBackend,
        state: SharedState,
        *,
        interval_ms: int = 1000,
        hostname: str | None = None,
    ) -> None:
        if interval_ms < 1:
            raise ValueError(f"interval_ms must be positive, not {interval_ms}")
        self._metrics = metrics
        self._backend = backend
        table = state.table
        self._atomics = atomics = table.atomics
        self._slot = slot = table.slot(_SLOT)
        atomics.cas(slot + _INSTANCE, 0, int.from_bytes(os.urandom(8), "big") or 1)
        #: this server run's id in the cluster: host name and a number drawn at start
        self.instance = f"{hostname or socket.gethostname()}/{atomics.load(slot + _INSTANCE):016x}"
        self._interval_s = interval_ms / 1000
        self._interval_ns = interval_ms * 1_000_000
        #: a machine counts as live while its last publish is younger than three intervals (and a second)
        self._live_ttl_ms = 3 * interval_ms + 1000
        prefix = backend.prefix
        totals = f"{prefix}:metrics:{cluster_view.SCHEMA}"
        self._live_prefix = f"{prefix}:live:"
        self._keys = (
            totals,
            f"{totals}:base:{self.instance}",
            self._live_prefix + self.instance,
            f"{prefix}:instances",
            f"{totals}:epoch",
        )
        self._publish = backend.client.register_script(PUBLISH)
        self._read = backend.client.register_script(READ_CLUSTER)

    @property
    def interval_s(self) -> float:
        return self._interval_s

    async def run(self) -> None:
        """Publish once per interval (in whichever worker gets there first), until cancelled.

        First connects to Redis and loads every script, so this worker's first request does not pay it.
        """
        await self._backend.warm_up(PUBLISH, READ_CLUSTER)
        while True:
            await asyncio.sleep(self._interval_s)
            if self._due():
                try:
                    await self.publish()
                except Exception:  # a bug here must not stop the loop (Redis failures are handled below)
                    log.exception("publishing the cluster metrics failed")

    def _due(self) -> bool:
        """Claim this interval's publish: True for exactly one worker of the machine per interval."""
        now = time.monotonic_ns()
        word = self._slot + _NEXT
        due = self._atomics.load(word)
        return now >= due and self._atomics.cas(word, due, now + self._interval_ns - self._interval_ns // 10)

    async def publish(self) -> bool:
        """Add this machine's counters to the cluster totals and refresh its live gauges; False when Redis
        did not answer (nothing is lost: the next publish adds the difference)."""
        snapshot = self._metrics.snapshot()
        known = self._atomics.load(self._slot + _EPOCH)
        gauges = cluster_view.live(snapshot)
        args: list[str | int] = [
            self.instance,
            BASELINE_TTL_MS,
            self._live_ttl_ms,
            known,
            int.from_bytes(os.urandom(7), "big") or 1,
            len(gauges),
        ]
        for field, value in gauges.items():
            args.extend((field, value))
        for field, value in cluster_view.totals(snapshot).items():
            args.extend((field, value))
        keys = list(self._keys)
        reply = await self._backend.run(lambda: self._publish(keys=keys, args=args))
        if reply is None:
            return False
        epoch = int(reply[1])
        if epoch != known:
            self._atomics.cas(self._slot + _EPOCH, known, epoch)
        if int(reply[0]) == 2:
            log.warning(
                "cluster metrics: this machine (%s) had not reached Redis for more than %d s; the requests "
                "it served meanwhile are not in the cluster totals",
                self.instance,
                BASELINE_TTL_MS // 1000,
            )
        return True

    async def read(self) -> ClusterSnapshot | None:
        """The cluster totals and live machines, this machine's numbers published first; None when Redis
        is unreachable."""
        await self.publish()
        keys = [self._keys[0], self._keys[3]]
        args: list[str | int] = [self._live_prefix, self._live_ttl_ms]
        reply = await self._backend.run(lambda: self._read(keys=keys, args=args))
        if reply is None:
            return None
        machines = {_text(reply[i]): _pairs(reply[i + 1]) for i in range(1, len(reply) - 1, 2)}
        metrics = self._metrics
        return cluster_view.parse(
            _pairs(reply[0]), machines, int(time.time() * 1000), lambda p, m: metrics.priced(p, m)
        )
