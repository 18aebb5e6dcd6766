"""Group commit: many entities' writes in one Postgres transaction.

A shard hands each batch of staged writes to :func:`commit_group`, one
request per entity. Entities own disjoint rows, so only each entity's own
writes must keep their order; writes of one statement are gathered across
entities and sent as one ``executemany`` (pipelined by asyncpg). A batch of
1,000 message sends thus costs one round trip per statement, not four per
send. Each tenant's writes run under that tenant's row-level-security
scope, so batching across tenants never widens what a statement may touch.

One entity's writes must not sink everyone's: when Postgres refuses a batch
for what some writes hold (text with a NUL, a violated constraint), the
batch is split in halves, each committed on its own, down to the entity
refused alone. Every other entity's writes commit; so do that entity's
requests before the refused one. A refused entity among ``n`` costs about
``2·log2(n)`` more transactions; the usual batch stays one transaction.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from hubbub.actors.entity import Write
from hubbub.actors.lease import Lease
from hubbub.errors import AppError
from hubbub.metrics import COMMIT_FAILURES, GROUP_COMMIT_DURATION, GROUP_COMMIT_SIZE
from hubbub.storage.database import Database, set_tenant

__all__ = ["CommitRequest", "commit_error", "commit_group", "reset_error", "statement_runs"]

log = logging.getLogger(__name__)

# SQLSTATE classes of failures of the moment (connection, rollback, resources,
# lock, shutdown, read-only standby, server internals): the same writes may
# commit on another try. Any other error Postgres reports is about the writes.
_TRANSIENT_CLASSES = frozenset({"08", "25", "40", "53", "55", "57", "58", "XX"})
# SQLSTATE classes that say what the writes hold cannot be stored: data
# exceptions (a NUL in text, a value out of range, an argument asyncpg cannot
# encode), integrity constraint violations, limits (an index row too large)
# and WITH CHECK OPTION violations.
_REFUSED_CLASSES = frozenset({"22", "23", "44", "54"})


@dataclass(frozen=True, slots=True)
class CommitRequest:
    """The writes of one entity's staged commands, in the order decided."""

    tenant_id: str | None
    key: str
    writes: list[Write]


async def commit_group(
    db: Database, lease: Lease, requests: list[CommitRequest]
) -> list[AppError | None]:
    """Commit ``requests``, fenced by ``lease``; one outcome each, in order.

    ``None``: committed. Otherwise the request's writes are not in Postgres
    and the error says why (see :func:`commit_error`); a request after a
    failed one of its entity is not tried and gets :func:`reset_error`.
    A failure of the moment fails the whole part that was being tried.
    """
    outcomes: list[AppError | None] = [None] * len(requests)
    GROUP_COMMIT_SIZE.observe(len(requests))
    started = time.perf_counter()
    failure = await _attempt(db, lease, requests)
    if failure is not None:  # only now: the usual commit pays for no split
        await _pin(db, lease, requests, _entities(requests), failure, outcomes)
        for error in outcomes:
            if error is not None:
                COMMIT_FAILURES.labels(error.code).inc()  # rare: a lookup costs nothing here
    GROUP_COMMIT_DURATION.observe(time.perf_counter() - started)
    return outcomes


def commit_error(exc: Exception) -> AppError:
    """The answer for writes whose commit raised ``exc``.

    Retriable (``commit_failed`` 503, or the lease's own ``shard_fenced``)
    when the same writes may commit later: connection loss, a deadlock, a
    deposed shard, anything not reported by Postgres. Not retriable when
    Postgres refused the writes themselves: ``commit_refused`` (422) for
    data it cannot store, ``internal_error`` (500) for a statement it
    rejects as written (a bug of the entity kind).
    """
    if isinstance(exc, AppError):
        return exc
    sqlstate = exc.sqlstate if isinstance(exc, asyncpg.PostgresError) else None
    if sqlstate is None or sqlstate[:2] in _TRANSIENT_CLASSES:
        return AppError.unavailable("commit_failed", "the change may not have been saved; retry")
    if sqlstate[:2] in _REFUSED_CLASSES:
        return AppError(
            "commit_refused",
            "the change holds data that cannot be stored; nothing was saved, "
            "and sending it unchanged fails again",
            status=422,
        )
    return AppError("internal_error", "the command failed", status=500)


def reset_error() -> AppError:
    """The answer for a command decided after a change of its entity that
    failed to commit: not saved, and safe to send again (the entity reloads
    its committed state first)."""
    return AppError.unavailable("shard_reset", "the entity reloaded its state; retry")


async def _commit_part(
    db: Database,
    lease: Lease,
    requests: list[CommitRequest],
    entities: list[list[int]],
    outcomes: list[AppError | None],
) -> None:
    """Commit the requests of ``entities`` (each its request indices, in order)."""
    failure = await _attempt(db, lease, [requests[i] for e in entities for i in e])
    if failure is not None:
        await _pin(db, lease, requests, entities, failure, outcomes)


async def _pin(
    db: Database,
    lease: Lease,
    requests: list[CommitRequest],
    entities: list[list[int]],
    failure: Exception,
    outcomes: list[AppError | None],
) -> None:
    """Record the outcome of ``entities``' requests, whose commit together
    raised ``failure``: split them until a refusal is pinned on its request."""
    error = commit_error(failure)
    if error.retriable or (len(entities) == 1 and len(entities[0]) == 1):
        _log_failure(lease, requests, entities, failure, error)
        for index in (i for e in entities for i in e):
            outcomes[index] = error
    elif len(entities) > 1:
        half = len(entities) // 2
        await _commit_part(db, lease, requests, entities[:half], outcomes)
        await _commit_part(db, lease, requests, entities[half:], outcomes)
    else:
        await _commit_in_order(db, lease, requests, entities[0], outcomes)


async def _commit_in_order(
    db: Database,
    lease: Lease,
    requests: list[CommitRequest],
    indices: list[int],
    outcomes: list[AppError | None],
) -> None:
    """Commit one entity's requests up to the first that fails; the later
    ones were decided after it, so they are not tried."""
    half = len(indices) // 2
    await _commit_part(db, lease, requests, [indices[:half]], outcomes)
    if any(outcomes[i] is not None for i in indices[:half]):
        for index in indices[half:]:
            outcomes[index] = reset_error()
    else:
        await _commit_part(db, lease, requests, [indices[half:]], outcomes)


async def _attempt(db: Database, lease: Lease, requests: list[CommitRequest]) -> Exception | None:
    """Commit ``requests`` in one transaction; what it raised, if it failed."""
    try:
        async with db.pool.acquire() as conn, conn.transaction():
            await lease.check(conn)
            for tenant_id, entities in _by_tenant(requests).items():
                await set_tenant(conn, tenant_id)
                for statement, args in statement_runs(entities):
                    await conn.executemany(statement, args)
    except Exception as exc:  # classified by the caller; cancellation passes
        return exc
    return None


def _log_failure(
    lease: Lease,
    requests: list[CommitRequest],
    entities: list[list[int]],
    failure: Exception,
    error: AppError,
) -> None:
    if error.retriable:
        log.error(
            "commit of %d %s requests failed",
            sum(map(len, entities)),
            lease.kind,
            exc_info=not isinstance(failure, AppError),
        )
        return
    request = requests[entities[0][0]]
    # Where it failed, never the message: it may quote the values (user content).
    log.warning(
        "Postgres refused a write of %s %r (tenant %s): %s %s, table %s, constraint %s",
        lease.kind,
        request.key,
        request.tenant_id,
        type(failure).__name__,
        getattr(failure, "sqlstate", None),
        getattr(failure, "table_name", None),
        getattr(failure, "constraint_name", None),
    )


def _entities(requests: list[CommitRequest]) -> list[list[int]]:
    """The indices of each entity's requests, in order; entities in order of first request."""
    entities: dict[tuple[str | None, str], list[int]] = {}
    for index, request in enumerate(requests):
        entities.setdefault((request.tenant_id, request.key), []).append(index)
    return list(entities.values())


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
