"""HTTP routes of workflows, under ``/api/v1/workflows``.

Built on jobs: running a workflow submits its job kind, a run is that job
(its id, status and events), cancelling a run cancels the job through its
entity, and ``run-stream`` answers with the job's SSE stream. Every route
takes a bearer token or an ``X-API-Key`` of the tenant (keys without the
write scope may only read), and acts in the caller's tenant: another
tenant's run answers 404.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from hubbub.http.routing import Api
from hubbub.jobs.caller import Caller, caller, idempotency_key
from hubbub.jobs.control import cancel_job
from hubbub.jobs.dispatch import submit_job
from hubbub.jobs.stream import serve_stream
from hubbub.jobs.wire import JobEventView, StreamQuery
from hubbub.services import DATABASE
from hubbub.workflows import runs
from hubbub.workflows.declaration import Workflow, find, registered
from hubbub.workflows.wire import (
    WorkflowDescriptorResponse,
    WorkflowListResponse,
    WorkflowPath,
    WorkflowRunDetail,
    WorkflowRunListResponse,
    WorkflowRunPath,
    WorkflowRunQuery,
    WorkflowRunRequestBody,
    WorkflowRunResponse,
    WorkflowSummary,
)

__all__ = ["api"]

api = Api(
    "workflows", "Multi-step work with declared stages and steps, run as jobs.", tenant_header=True
)

BASE = "/api/v1/workflows"
JOBS = "/api/v1/jobs"  # a run's stream is its job's
RUNS = f"{BASE}/runs"
RUN = f"{RUNS}/{{run_id}}"
ONE = f"{BASE}/{{workflow_key}}"
KEYED = ("bearer", "api_key")
NO_WORKFLOW = {404: "No workflow with this key (`not_found`)"}
NO_RUN = {404: "No run with this id in this tenant (`not_found`)"}
BAD_RUN = {
    422: "Input the workflow refuses (`validation_failed`, naming `input.<field>`), or an "
    "`Idempotency-Key` used with another body (`idempotency_key_reused`)"
}


@api.get(BASE, response=WorkflowListResponse, security=KEYED)
async def list_workflows(request: web.Request) -> WorkflowListResponse:
    """The workflows this gateway can run, by key, with their stages and steps."""
    await caller(request)
    return WorkflowListResponse(items=[_summary(flow) for flow, _ in registered()])


# The runs routes come before /{workflow_key}: "runs" is not a workflow key.
@api.get(RUNS, query=WorkflowRunQuery, response=WorkflowRunListResponse, security=KEYED)
async def list_workflow_runs(
    request: web.Request, *, query: WorkflowRunQuery
) -> WorkflowRunListResponse:
    """The tenant's workflow runs, newest first; filter by workflow and status."""
    who = await caller(request)
    async with request.app[DATABASE].tenant(who.tenant_id) as conn:
        items, cursor = await runs.runs(
            conn, query.workflow_key, query.status, query.cursor, query.limit, who.viewer
        )
    return WorkflowRunListResponse.model_validate({"items": items, "next_cursor": cursor})


@api.get(RUN, params=WorkflowRunPath, response=WorkflowRunDetail, security=KEYED, responses=NO_RUN)
async def get_workflow_run(request: web.Request, *, path: WorkflowRunPath) -> WorkflowRunDetail:
    """One run with the status and times of each stage and step."""
    who = await caller(request)
    return await _run(request, who, str(path.run_id))


@api.post(
    f"{RUN}/cancel",
    params=WorkflowRunPath,
    response=WorkflowRunDetail,
    security=KEYED,
    responses=NO_RUN
    | {
        403: "Neither its creator nor a tenant owner or admin (`insufficient_role`)",
        409: "The run is finished already (`job_finished`)",
    },
)
async def cancel_workflow_run(request: web.Request, *, path: WorkflowRunPath) -> WorkflowRunDetail:
    """Cancel a run as its job is cancelled: a queued one at once, a running
    one is asked to stop (`cancel_requested`) and ends `cancelled`."""
    who = await caller(request)
    run_id = str(path.run_id)
    async with request.app[DATABASE].tenant(who.tenant_id) as conn:
        await runs.find_run(conn, run_id, who.viewer)  # 404 unless it is a run of this tenant
    await cancel_job(request.app, who.tenant_id, run_id, who.user_id, who.role)
    return await _run(request, who, run_id)


@api.get(
    ONE,
    params=WorkflowPath,
    response=WorkflowDescriptorResponse,
    security=KEYED,
    responses=NO_WORKFLOW,
)
async def get_workflow(request: web.Request, *, path: WorkflowPath) -> WorkflowDescriptorResponse:
    """A workflow's descriptor: its stages, their steps and its input schema."""
    await caller(request)
    flow, kind = find(path.workflow_key)
    return WorkflowDescriptorResponse.model_validate(
        _summary(flow).model_dump() | {"input_schema": kind.input.model_json_schema()}
    )


@api.post(
    f"{ONE}/run",
    params=WorkflowPath,
    body=WorkflowRunRequestBody,
    response=WorkflowRunResponse,
    status=202,
    security=KEYED,
    responses=NO_WORKFLOW | BAD_RUN,
)
async def run_workflow(
    request: web.Request, *, path: WorkflowPath, body: WorkflowRunRequestBody
) -> WorkflowRunResponse:
    """Start a run (a job); with an `Idempotency-Key` the same key gives the same run."""
    who = await caller(request)
    flow, job = await _start(request, who, path.workflow_key, body.input)
    return WorkflowRunResponse(
        id=job["id"],
        workflow_key=flow.key,
        status=job["status"],
        stream_url=f"{JOBS}/{job['id']}/stream",
        status_url=f"{RUNS}/{job['id']}",
    )


@api.post(
    f"{ONE}/run-stream",
    params=WorkflowPath,
    body=WorkflowRunRequestBody,
    response=JobEventView,
    content_type="text/event-stream",
    security=KEYED,
    responses=NO_WORKFLOW | BAD_RUN,
)
async def run_workflow_stream(
    request: web.Request, *, path: WorkflowPath, body: WorkflowRunRequestBody
) -> web.StreamResponse:
    """Start a run and answer with its job's Server-Sent Events, from the first
    to the final `status`; the `Location` header names the run."""
    who = await caller(request)
    _, job = await _start(request, who, path.workflow_key, body.input)
    headers = {"Location": f"{RUNS}/{job['id']}"}
    return await serve_stream(request, who.tenant_id, job["id"], StreamQuery(), None, headers)


async def _start(
    request: web.Request, who: Caller, key: str, raw: dict[str, Any]
) -> tuple[Workflow, dict[str, Any]]:
    """Submit workflow ``key``'s job with ``raw`` input; 404 / 422 before anything is made."""
    flow, kind = find(key)
    value = kind.parse(raw).model_dump(mode="json")
    token = idempotency_key(request)
    job = await submit_job(request.app, who.tenant_id, who.user_id, kind, value, token)
    return flow, job


async def _run(request: web.Request, who: Caller, run_id: str) -> WorkflowRunDetail:
    async with request.app[DATABASE].tenant(who.tenant_id) as conn:
        return WorkflowRunDetail.model_validate(await runs.run(conn, run_id, who.viewer))


def _summary(flow: Workflow) -> WorkflowSummary:
    return WorkflowSummary(
        key=flow.key,
        title=flow.title,
        description=flow.description,
        kind=flow.kind,
        stage_count=len(flow.stages),
        step_count=len(flow.steps()),
        stages=[asdict(stage) for stage in flow.stages],
    )
