"""Cancelling and retrying a job on a member's behalf: the functions every
edge calls (the job routes, workflow runs, broadcasts).

The job entity decides who may (the job's creator, or a tenant owner or
admin) and what happens; a job queued again by a retry starts this
gateway's sweep at once, as a submit does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hubbub.actors.command import Command
from hubbub.jobs.commands import Cancel, Retry
from hubbub.jobs.keys import SWEEP_ROUNDS
from hubbub.services import ROUTER

__all__ = ["cancel_job", "retry_job"]


async def cancel_job(
    app: web.Application, tenant_id: str, job_id: str, actor: str, role: str | None
) -> dict[str, Any]:
    """The job's view after ``actor`` (with tenant ``role``) cancels it: a
    queued one at once, a running one asked to stop. 409 ``job_finished``
    for a finished job, 403 ``insufficient_role`` for someone else's."""
    return await _ask(app, tenant_id, job_id, Cancel(actor, role))


async def retry_job(
    app: web.Application, tenant_id: str, job_id: str, actor: str, role: str | None
) -> dict[str, Any]:
    """The job's view after ``actor`` (with tenant ``role``) runs a failed or
    timed out job again. 409 ``job_not_retryable`` for any other."""
    return await _ask(app, tenant_id, job_id, Retry(actor, role))


async def _ask(
    app: web.Application, tenant_id: str, job_id: str, body: Cancel | Retry
) -> dict[str, Any]:
    job: dict[str, Any] = await app[ROUTER].send(Command("job", job_id, body, tenant_id))
    if job["status"] == "queued":
        app[SWEEP_ROUNDS].kick()
    return job
