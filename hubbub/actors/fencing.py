"""Fenced shards: noticing them, reporting them, bringing them back.

A shard is fenced when its lease epoch is no longer the current one in
``shard_leases`` (see :mod:`hubbub.actors.lease`): someone else started that
shard since, and every commit of this one now fails with ``shard_fenced``.
Within one Ray cluster that lasts only until Ray's restart of the shard
takes over; but a shard deposed from outside the cluster — another Ray
sharing this Postgres, a lease bumped by hand — stays fenced for good, and
every write through it fails until it is restarted.

So a gateway restarts such a shard itself: when a command comes back
``shard_fenced``, or its readiness check finds a shard whose epoch is stale,
it kills that shard actor and Ray restarts it; the new process takes a fresh
lease on its first call (which fences the other owner, if there is one: two
clusters on one database take turns, which the readiness check shows, and is
why ``hubbub serve`` refuses to share a data directory).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import asyncpg

from hubbub.actors.runtime import ShardRef
from hubbub.errors import AppError

__all__ = ["Fencing"]

log = logging.getLogger(__name__)

#: Least time between two restarts of one shard: outcomes of calls that were
#: in flight when it was restarted must not restart it again.
_RESTART_EVERY_SECONDS = 5.0


class Fencing:
    """Owns: when each shard of one router was last restarted for fencing.

    Concurrency: one event loop; a shard is restarted at most once per
    ``_RESTART_EVERY_SECONDS``. Failure: a restart that fails is logged and
    tried again on the next fenced outcome or readiness check.
    """

    def __init__(self) -> None:
        self._restarted: dict[tuple[str, int], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(self, ref: ShardRef, error: AppError | None) -> None:
        """Note the outcome of a command sent through ``ref``."""
        if error is not None and error.code == "shard_fenced":
            self.recover(ref)

    def recover(self, ref: ShardRef) -> None:
        """Restart ``ref``'s actor in the background, unless it was just restarted."""
        now = time.monotonic()
        if now < self._restarted.get((ref.kind, ref.index), 0.0) + _RESTART_EVERY_SECONDS:
            return
        self._restarted[(ref.kind, ref.index)] = now
        log.warning("%s shard %d is fenced; restarting it to take its lease", ref.kind, ref.index)
        task = asyncio.get_running_loop().create_task(self._restart(ref))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def check(self, pool: asyncpg.Pool, refs: Iterable[ShardRef]) -> dict[str, Any]:
        """The readiness check: raises ``shards_fenced`` naming every shard whose
        epoch is stale (and starts its recovery); details otherwise."""
        refs = list(refs)
        held = await asyncio.gather(*(ref.stats() for ref in refs))
        rows = await pool.fetch("SELECT kind, shard, epoch FROM shard_leases")
        current = {(row["kind"], row["shard"]): row["epoch"] for row in rows}
        fenced = [
            ref
            for ref, stats in zip(refs, held, strict=True)
            if current.get((ref.kind, ref.index)) != stats["epoch"]
        ]
        for ref in fenced:
            self.recover(ref)
        if fenced:
            names = ", ".join(f"{ref.kind}.{ref.index}" for ref in fenced)
            raise AppError.unavailable(
                "shards_fenced", f"shards {names} lost their lease; restarting them"
            )
        return {"shards": len(refs)}

    async def close(self) -> None:
        """Wait for the restarts under way."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _restart(self, ref: ShardRef) -> None:
        try:
            await asyncio.to_thread(ref.restart)
        except Exception:  # the next fenced outcome or check tries again
            log.exception("restarting %s shard %d failed", ref.kind, ref.index)
            self._restarted.pop((ref.kind, ref.index), None)
