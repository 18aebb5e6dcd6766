"""Submitting a job: the job entity commits it, then a Ray task is launched.

The job entity is the single writer of the job; launching is only a nudge.
A launch that finds its job no longer queued (cancelled, or started by an
earlier launch) ends before the handler (``hubbub.jobs.worker``), so a job
may be launched more than once — a retried submit of a still queued job
launches again — but runs once. Ray queues the task until a node has the
kind's resources: ``queued`` means "waiting for a worker".

With an ``Idempotency-Key`` the job id is derived from (tenant, creator,
key), so the job entity — one writer — answers every retry with the same
job, race-free, for as long as the job exists.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any
from uuid import UUID

from aiohttp import web

from hubbub.actors.command import Command
from hubbub.actors.runtime import launch_task
from hubbub.gateway import ROUTER, SETTINGS
from hubbub.ids import new_id
from hubbub.jobs.registry import JobKind
from hubbub.jobs.worker import Launch
from hubbub.tenancy.creations import request_hash

__all__ = ["WORK", "job_id_for", "launch", "submit_job"]

log = logging.getLogger(__name__)

#: The worker function every job task runs.
WORK = "hubbub.jobs.worker:run_job"
_KEYED = uuid.UUID("6f1d2c3b-8a4e-5b7f-9c0d-1e2f3a4b5c6d")  # namespace of keyed job ids


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
) -> dict[str, Any]:
    """The committed job (an existing one for a repeated key), launched if queued.

    ``input`` must have passed ``kind.parse`` already.
    """
    job_id = str(job_id_for(tenant_id, user_id, idempotency_key))
    args = {
        "job_id": job_id,
        "tenant_id": tenant_id,
        "kind": kind.name,
        "input": input,
        "created_by": user_id,
        "request_hash": request_hash({"kind": kind.name, "input": input}).hex(),
        "idempotency_key": idempotency_key,
    }
    # No receipt key: the entity itself answers a retry, with the job as it is now.
    job = await app[ROUTER].send(Command("job", job_id, "submit", args, tenant_id))
    if job["status"] == "queued":
        try:
            await launch(app, kind, job_id, tenant_id, input)
        except Exception:  # the job is committed: a retried submit launches it again
            log.exception("could not launch job %s (%s); it stays queued", job_id, kind.name)
    return job


async def launch(
    app: web.Application, kind: JobKind, job_id: str, tenant_id: str, input: dict[str, Any]
) -> None:
    """Start a Ray task for the job (off the event loop: Ray's submit may block)."""
    work = Launch(uuid.uuid4().hex, job_id, tenant_id, kind.name, kind.module, input, kind.entities)
    await asyncio.to_thread(
        launch_task,
        WORK,
        work.to_payload(),
        kinds=["job", *kind.entities],
        resources=kind.resources,
        settings=app[SETTINGS],
    )
