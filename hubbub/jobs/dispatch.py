"""Submitting a job: the job entity commits it, then the job sweep launches it.

The job entity is the single writer of the job; launching is the sweep's
(``hubbub.jobs.sweep``), which a submit starts at once on this gateway, so a
job that may run now is launched within a round trip or two, and one that
may not (a concurrency limit, a later ``run_at``) waits in Postgres for a
later round, on any gateway.

With an ``Idempotency-Key`` the job id is derived from (tenant, creator,
key), so the job entity — one writer — answers every retry with the same
job, race-free, for as long as the job exists. A kind's conflict key is
checked under a Postgres advisory lock on (tenant, key), held until the
new job is committed, so two gateways cannot both admit a conflicting job.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web

from hubbub.actors.command import Command
from hubbub.errors import AppError
from hubbub.ids import new_id
from hubbub.jobs.commands import Submit
from hubbub.jobs.keys import SWEEP_ROUNDS
from hubbub.jobs.registry import JobKind
from hubbub.services import DATABASE, ROUTER
from hubbub.tenancy.creations import request_hash

__all__ = ["job_id_for", "submit_job"]

_KEYED = uuid.UUID("6f1d2c3b-8a4e-5b7f-9c0d-1e2f3a4b5c6d")  # namespace of keyed job ids
_ACTIVE_WITH_KEY = """SELECT id FROM jobs WHERE conflict_key = $1 AND id <> $2
  AND status IN ('queued', 'running', 'retrying') LIMIT 1"""


def job_id_for(tenant_id: str, user_id: str, idempotency_key: str | None) -> UUID:
    """The id of a new job: fixed by an idempotency key, fresh without one."""
    if idempotency_key is None:
        return new_id()
    return uuid.uuid5(_KEYED, f"{tenant_id}\x1f{user_id}\x1f{idempotency_key}")


async def submit_job(
    app: web.Application,
    tenant_id: str,
    user_id: str,
    kind: JobKind,
    input: dict[str, Any],
    idempotency_key: str | None = None,
    *,
    run_at: datetime | None = None,
    priority: int | None = None,
    schedule_id: str | None = None,
) -> dict[str, Any]:
    """The committed job (an existing one for a repeated key).

    ``input`` must have passed ``kind.parse`` already. ``run_at``: not
    launched before; ``priority``: the kind's unless given. 409
    ``job_conflict`` (with ``active_job_id``) if the kind's conflict key
    names an active job of the tenant.
    """
    job_id = str(job_id_for(tenant_id, user_id, idempotency_key))
    policy = kind.policy
    conflict_key = (
        None
        if policy.conflict_key is None
        else policy.conflict_key(kind.input.model_validate(input))
    )
    submit = Submit(
        job_id=job_id,
        tenant_id=tenant_id,
        kind=kind.name,
        input=input,
        created_by=user_id,
        request_hash=request_hash({"kind": kind.name, "input": input}).hex(),
        idempotency_key=idempotency_key,
        priority=policy.priority if priority is None else priority,
        conflict_key=conflict_key,
        run_at=run_at,
        max_attempts=policy.max_attempts,
        backoff_seconds=policy.backoff_seconds,
        timeout_seconds=policy.timeout_seconds,
        concurrency=policy.concurrency,
        schedule_id=schedule_id,
        private=policy.private,
    )
    # No receipt key: the entity itself answers a retry, with the job as it is now.
    command = Command("job", job_id, submit, tenant_id)
    if conflict_key is None:
        job = await app[ROUTER].send(command)
    else:
        job = await _submit_unless_conflicting(app, command, conflict_key)
    if job["status"] == "queued":
        app[SWEEP_ROUNDS].kick()
    return job


async def _submit_unless_conflicting(
    app: web.Application, command: Command, conflict_key: str
) -> dict[str, Any]:
    tenant_id = command.tenant_id
    async with app[DATABASE].tenant(tenant_id) as conn:
        lock = f"job-conflict\x1f{tenant_id}\x1f{conflict_key}"
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock)
        active = await conn.fetchval(_ACTIVE_WITH_KEY, conflict_key, command.key)
        if active is not None:
            raise AppError(
                "job_conflict",
                f"expected no active job with conflict key {conflict_key!r}, "
                f"but job {active} is; wait for it or cancel it",
                status=409,
                extra={"active_job_id": str(active), "conflict_key": conflict_key},
            )
        return await app[ROUTER].send(command)
