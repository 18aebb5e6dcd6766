"""Shard ownership leases: the fence that stops a deposed shard writing.

Every start of a shard actor (the first, and each restart by Ray) takes the
lease of its ``(kind, shard)`` by bumping the epoch in Postgres. Every
commit re-reads the epoch ``FOR SHARE`` inside its transaction: a shard
whose epoch is no longer current fails the commit instead of writing, and
a new owner's bump waits for commits in flight, so no write of a deposed
owner can land after the new owner started. A shard deposed from outside
its Ray cluster stays fenced until restarted: :mod:`hubbub.actors.fencing`.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from hubbub.errors import AppError

__all__ = ["Lease", "acquire_lease"]


@dataclass(frozen=True, slots=True)
class Lease:
    kind: str
    shard: int
    epoch: int

    async def check(self, conn: asyncpg.Connection) -> None:
        """Raise ``shard_fenced`` unless this lease is still the current one."""
        current = await conn.fetchval(
            "SELECT epoch FROM shard_leases WHERE kind = $1 AND shard = $2 FOR SHARE",
            self.kind,
            self.shard,
        )
        if current != self.epoch:
            raise AppError.unavailable(
                "shard_fenced",
                f"{self.kind} shard {self.shard} lost ownership "
                f"(epoch {self.epoch}, current {current}); retry",
            )


async def acquire_lease(pool: asyncpg.Pool, kind: str, shard: int, owner: str) -> Lease:
    """Take ownership of ``(kind, shard)``, deposing any previous owner."""
    epoch = await pool.fetchval(
        """INSERT INTO shard_leases (kind, shard, epoch, owner) VALUES ($1, $2, 1, $3)
           ON CONFLICT (kind, shard) DO UPDATE
             SET epoch = shard_leases.epoch + 1, owner = $3, acquired_at = now()
           RETURNING epoch""",
        kind,
        shard,
        owner,
    )
    return Lease(kind, shard, epoch)
