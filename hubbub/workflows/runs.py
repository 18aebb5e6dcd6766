"""Workflow runs read from Postgres: a run is a job whose kind is a workflow.

Reads are in the caller's tenant scope (row-level security), so another
tenant's run — like a job that is not a workflow's — reads as absent: 404.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from hubbub.errors import AppError
from hubbub.jobs import reads
from hubbub.jobs.reads import Viewer
from hubbub.workflows import progress
from hubbub.workflows.declaration import KIND_PREFIX, Workflow, registered

__all__ = ["find_run", "run", "runs", "summary", "view"]

#: The step events of the run's latest attempt (a retry starts the steps over).
_STEPS = """SELECT data->>'name' AS name, created_at FROM job_events
WHERE job_id = $1 AND type = 'step' AND seq > coalesce((SELECT max(seq) FROM job_events
  WHERE job_id = $1 AND type = 'status' AND data ? 'attempt'), 0)
ORDER BY seq"""


async def run(conn: asyncpg.Connection, run_id: str, viewer: Viewer) -> dict[str, Any]:
    """The run's view with its stages; 404 if no run of this tenant has that id."""
    flow, job = await find_run(conn, run_id, viewer)
    rows = await conn.fetch(_STEPS, run_id)
    entered = [progress.Entered(r["name"], r["created_at"].isoformat()) for r in rows]
    return view(job) | {"stages": progress.stages(flow, job, entered)}


async def find_run(
    conn: asyncpg.Connection, run_id: str, viewer: Viewer
) -> tuple[Workflow, dict[str, Any]]:
    """The run's workflow and job view; 404 unless it is a workflow's job of
    this tenant that ``viewer`` may see."""
    job = await reads.job(conn, run_id, viewer)
    for flow, _ in registered():
        if flow.kind == job["kind"]:
            return flow, job
    raise AppError.not_found("workflow run")


async def runs(
    conn: asyncpg.Connection,
    key: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
    viewer: Viewer,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tenant's runs (of workflow ``key``, or of any) that
    ``viewer`` may see, newest first."""
    kinds = [flow.kind for flow, _ in registered() if key is None or flow.key == key]
    jobs, next_cursor = await reads.jobs(conn, None, status, cursor, limit, viewer, kinds=kinds)
    return [summary(job) for job in jobs], next_cursor


def summary(job: dict[str, Any]) -> dict[str, Any]:
    """A run's summary from its job's view (``hubbub.jobs.reads``)."""
    stage, step = progress.current(job["step"])
    shown = ("id", "status", "progress", "cancel_requested", "created_by", "created_at")
    return {name: job[name] for name in shown} | {
        "workflow_key": job["kind"].removeprefix(KIND_PREFIX),
        "current_stage": stage,
        "current_step": step,
        "started_at": job["started_at"],
        "finished_at": job["finished_at"],
    }


def view(job: dict[str, Any]) -> dict[str, Any]:
    """A run's fields from its job's view, without its stages."""
    return summary(job) | {
        "result": job["result"],
        "error": job["error"],
        "last_seq": job["last_seq"],
    }
