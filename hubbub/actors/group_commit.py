"""Group commit: many entities' writes in one Postgres transaction.

A shard hands each batch of staged writes to :func:`commit_group`. Writes
keep their order within a tenant; consecutive writes of one statement are
sent as one ``executemany`` (pipelined by asyncpg), and each tenant's writes
run under that tenant's row-level-security scope, so batching across
tenants never widens what a statement may touch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from hubbub.actors.entity import Write
from hubbub.actors.lease import Lease
from hubbub.storage.database import Database, set_tenant

__all__ = ["CommitRequest", "commit_group"]


@dataclass(frozen=True, slots=True)
class CommitRequest:
    """The writes of one entity's staged commands."""

    tenant_id: str | None
    writes: list[Write]


async def commit_group(db: Database, lease: Lease, requests: list[CommitRequest]) -> None:
    """Commit every request in one transaction, fenced by ``lease``."""
    async with db.pool.acquire() as conn, conn.transaction():
        await lease.check(conn)
        for tenant_id, writes in _by_tenant(requests):
            await set_tenant(conn, tenant_id)
            for statement, args in _runs(writes):
                await conn.executemany(statement, args)


def _by_tenant(requests: list[CommitRequest]) -> Iterator[tuple[str | None, list[Write]]]:
    tenants: dict[str | None, list[Write]] = {}
    for request in requests:
        tenants.setdefault(request.tenant_id, []).extend(request.writes)
    return iter(tenants.items())


def _runs(writes: list[Write]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    for statement, run in groupby(writes, key=lambda write: write.statement):
        yield statement, [write.args for write in run]
