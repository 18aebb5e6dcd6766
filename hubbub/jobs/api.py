"""HTTP routes of jobs, under ``/api/v1/jobs``, and their SSE stream
(relayed by ``hubbub.jobs.stream``).

Every route needs a bearer token and a tenant (``X-Tenant-Id``) the caller
is a member of, or a tenant's API key (its service account acts); every
member sees the tenant's jobs (a private kind's only their creator and the
tenant's owners and admins) and schedules, their creator or a tenant
owner or admin may cancel or retry a job, and owners and admins manage
schedules. Changes go to the job entity; reads come from Postgres in the
tenant's scope, so another tenant's job answers 404 whatever the route.
"""

from __future__ import annotations

from aiohttp import web

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.ids import new_id
from hubbub.jobs import control, reads, schedules
from hubbub.jobs.caller import Caller, idempotency_key
from hubbub.jobs.caller import caller as _caller
from hubbub.jobs.dispatch import submit_job
from hubbub.jobs.registry import KINDS
from hubbub.jobs.stream import serve_stream
from hubbub.jobs.wire import (
    JobAccepted,
    JobEventList,
    JobEventsQuery,
    JobEventView,
    JobList,
    JobListQuery,
    JobPath,
    JobView,
    NewJob,
    NewSchedule,
    ScheduleList,
    SchedulePath,
    ScheduleQuery,
    ScheduleView,
    StreamQuery,
)
from hubbub.services import DATABASE
from hubbub.tenancy.roles import at_least

__all__ = ["api"]

api = Api("jobs", "Long-running work on Ray workers, with live progress.", tenant_header=True)

BASE = "/api/v1/jobs"
ONE = f"{BASE}/{{job_id}}"
SCHEDULES = "/api/v1/job-schedules"
BEARER = ("bearer", "api_key")
NOT_FOUND = {404: "No such job in this tenant (`not_found`)"}
MANAGERS_ONLY = {403: "Not a tenant owner or admin (`insufficient_role`)"}


@api.post(
    BASE,
    body=NewJob,
    response=JobAccepted,
    status=202,
    security=BEARER,
    responses={
        422: "An unknown kind (`unknown_job_kind`), input the kind refuses "
        "(`validation_failed`, naming `input.<field>`), or an `Idempotency-Key` "
        "used with another body (`idempotency_key_reused`)",
        409: "An active job of the tenant has the new job's conflict key (`job_conflict`, "
        "with `active_job_id`)",
    },
)
async def create_job(request: web.Request, *, body: NewJob) -> JobAccepted:
    """Submit a job; with an `Idempotency-Key` the same key gives the same job.
    `run_at` holds it until then; `priority` orders waiting jobs."""
    caller = await _caller(request)
    key = idempotency_key(request)
    kind = KINDS.get(body.kind)
    value = kind.parse(body.input).model_dump(mode="json")
    job = await submit_job(
        request.app,
        caller.tenant_id,
        caller.user_id,
        kind,
        value,
        key,
        run_at=body.run_at,
        priority=body.priority,
    )
    return JobAccepted(
        id=job["id"],
        status=job["status"],
        stream_url=f"{BASE}/{job['id']}/stream",
        status_url=f"{BASE}/{job['id']}",
    )


@api.get(BASE, query=JobListQuery, response=JobList, security=BEARER)
async def list_jobs(request: web.Request, *, query: JobListQuery) -> JobList:
    """The tenant's jobs, newest first; filter by kind and status."""
    caller = await _caller(request)
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        items, cursor = await reads.jobs(
            conn, query.kind, query.status, query.cursor, query.limit, caller.viewer
        )
    return JobList.model_validate({"items": items, "next_cursor": cursor})


@api.get(ONE, params=JobPath, response=JobView, security=BEARER, responses=NOT_FOUND)
async def get_job(request: web.Request, *, path: JobPath) -> JobView:
    """One job of the tenant."""
    caller = await _caller(request)
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        return JobView.model_validate(await reads.job(conn, str(path.job_id), caller.viewer))


@api.post(
    f"{ONE}/cancel",
    params=JobPath,
    response=JobView,
    security=BEARER,
    responses=NOT_FOUND
    | {
        403: "Neither its creator nor a tenant owner or admin (`insufficient_role`)",
        409: "The job is finished already (`job_finished`)",
    },
)
async def cancel_job(request: web.Request, *, path: JobPath) -> JobView:
    """Cancel a job: a queued one at once; a running one is asked to stop
    (`cancel_requested`) and ends `cancelled` when its handler does."""
    caller = await _caller(request)
    job_id = str(path.job_id)
    job = await control.cancel_job(
        request.app, caller.tenant_id, job_id, caller.user_id, caller.role
    )
    return JobView.model_validate(job)


@api.post(
    f"{ONE}/retry",
    params=JobPath,
    response=JobView,
    security=BEARER,
    responses=NOT_FOUND
    | {
        403: "Neither its creator nor a tenant owner or admin (`insufficient_role`)",
        409: "The job did not fail or time out (`job_not_retryable`)",
    },
)
async def retry_job(request: web.Request, *, path: JobPath) -> JobView:
    """Run a failed or timed out job again: it is queued with a new set of
    attempts (the kind's `max_attempts`) and its stream goes on."""
    caller = await _caller(request)
    job_id = str(path.job_id)
    job = await control.retry_job(
        request.app, caller.tenant_id, job_id, caller.user_id, caller.role
    )
    return JobView.model_validate(job)


@api.post(
    SCHEDULES,
    body=NewSchedule,
    response=ScheduleView,
    status=201,
    security=BEARER,
    responses=MANAGERS_ONLY
    | {422: "An unknown kind, input it refuses or a bad `cron` (`validation_failed`)"},
)
async def create_schedule(request: web.Request, *, body: NewSchedule) -> ScheduleView:
    """A recurring job: the kind with its input, at the times the cron
    expression names in the tenant's timezone."""
    caller = await _manager(request)
    kind = KINDS.get(body.kind)
    value = kind.parse(body.input).model_dump(mode="json")
    cron = schedules.parse_cron(body.cron)
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        view = await schedules.create(
            conn, str(new_id()), caller.tenant_id, kind.name, value, cron, caller.user_id
        )
    return ScheduleView.model_validate(view)


@api.get(SCHEDULES, query=ScheduleQuery, response=ScheduleList, security=BEARER)
async def list_schedules(request: web.Request, *, query: ScheduleQuery) -> ScheduleList:
    """The tenant's schedules, newest first."""
    caller = await _caller(request)
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        items, cursor = await schedules.listing(conn, query.cursor, query.limit)
    return ScheduleList.model_validate({"items": items, "next_cursor": cursor})


@api.delete(
    f"{SCHEDULES}/{{schedule_id}}",
    params=SchedulePath,
    security=BEARER,
    responses=MANAGERS_ONLY | {404: "No such schedule in this tenant (`not_found`)"},
)
async def delete_schedule(request: web.Request, *, path: SchedulePath) -> None:
    """Stop a schedule; jobs it already started go on."""
    caller = await _manager(request)
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        await schedules.delete(conn, str(path.schedule_id))


async def _manager(request: web.Request) -> Caller:
    caller = await _caller(request)
    if not at_least(caller.role, "admin"):
        raise AppError(
            "insufficient_role", "expected a tenant owner or admin to manage schedules", status=403
        )
    return caller


@api.get(
    f"{ONE}/events",
    params=JobPath,
    query=JobEventsQuery,
    response=JobEventList,
    security=BEARER,
    responses=NOT_FOUND | {422: "An after_seq past the last one (`seq_out_of_range`)"},
)
async def list_job_events(
    request: web.Request, *, path: JobPath, query: JobEventsQuery
) -> JobEventList:
    """The job's events after `after_seq`, in order (for clients that poll)."""
    caller = await _caller(request)
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        items, job = await reads.events_after(
            conn, str(path.job_id), query.after_seq, query.limit, caller.viewer
        )
    more = bool(items) and items[-1]["seq"] < job["last_seq"]
    cursor = str(items[-1]["seq"]) if more else None
    return JobEventList.model_validate(
        {"items": items, "last_seq": job["last_seq"], "next_cursor": cursor}
    )


@api.get(
    f"{ONE}/stream",
    params=JobPath,
    query=StreamQuery,
    response=JobEventView,
    content_type="text/event-stream",
    security=BEARER,
    responses=NOT_FOUND | {422: "A `Last-Event-ID` that is not a seq (`validation_failed`)"},
)
async def stream_job(
    request: web.Request, *, path: JobPath, query: StreamQuery
) -> web.StreamResponse:
    """Server-Sent Events of the job: every event after `Last-Event-ID` (or
    `after_seq`) in order, then live ones, ending with the final `status`."""
    caller = await _caller(request)
    return await serve_stream(request, caller.tenant_id, str(path.job_id), query, caller.viewer)
