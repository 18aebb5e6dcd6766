"""Group commit: many entities' writes in one Postgres transaction.

A shard hands each batch of staged writes to :func:`commit_group`, one
request per entity. Entities own disjoint rows, so only each entity's own
writes must keep their order; writes of one statement are gathered across
entities and sent as one ``executemany`` (pipelined by asyncpg). A batch of
1,000 message sends thus costs one round trip per statement, not four per
send. Each tenant's writes run under that tenant's row-level-security
scope, so batching across tenants never widens what a statement may touch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hubbub.actors.entity import Write
from hubbub.actors.lease import Lease
from hubbub.storage.database import Database, set_tenant

__all__ = ["CommitRequest", "commit_group", "statement_runs"]


@dataclass(frozen=True, slots=True)
class CommitRequest:
    """The writes of one entity's staged commands, in the order decided."""

    tenant_id: str | None
    key: str
    writes: list[Write]


async def commit_group(db: Database, lease: Lease, requests: list[CommitRequest]) -> None:
    """Commit every request in one transaction, fenced by ``lease``."""
    async with db.pool.acquire() as conn, conn.transaction():
        await lease.check(conn)
        for tenant_id, entities in _by_tenant(requests).items():
            await set_tenant(conn, tenant_id)
            for statement, args in statement_runs(entities):
                await conn.executemany(statement, args)


def _by_tenant(requests: list[CommitRequest]) -> dict[str | None, list[list[Write]]]:
    """Each tenant's entities, each with its writes from every request in order."""
    entities: dict[tuple[str | None, str], list[Write]] = {}
    for request in requests:
        entities.setdefault((request.tenant_id, request.key), []).extend(request.writes)
    tenants: dict[str | None, list[list[Write]]] = {}
    for (tenant_id, _), writes in entities.items():
        tenants.setdefault(tenant_id, []).append(writes)
    return tenants


def statement_runs(entities: list[list[Write]]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """``(statement, rows)`` runs covering every write once, each entity's in order.

    Each round takes the statement at the head of the first unfinished
    entity and, from every entity whose next writes use it, all of those.
    """
    queues = [deque(writes) for writes in entities if writes]
    while queues:
        statement = queues[0][0].statement
        rows: list[tuple[Any, ...]] = []
        for queue in queues:
            while queue and queue[0].statement == statement:
                rows.append(queue.popleft().args)
        yield statement, rows
        queues = [queue for queue in queues if queue]
