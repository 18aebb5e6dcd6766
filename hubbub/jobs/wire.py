"""Wire shapes of jobs and job events (HTTP bodies; sockets use the same names).

Inputs forbid unknown fields; a job's ``input`` is checked against its
kind's own model (``hubbub.jobs.registry``). Names follow issue 5's "Wire
names".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "JobAccepted",
    "JobEventList",
    "JobEventView",
    "JobEventsQuery",
    "JobList",
    "JobListQuery",
    "JobPath",
    "JobView",
    "NewJob",
    "NewSchedule",
    "ScheduleList",
    "SchedulePath",
    "ScheduleQuery",
    "ScheduleView",
    "StreamQuery",
]

#: How far ahead a job may be scheduled.
MAX_RUN_AHEAD = timedelta(days=366)

Status = Literal["queued", "running", "retrying", "succeeded", "failed", "cancelled", "timed_out"]
EventType = Literal["status", "progress", "step", "log", "output"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewJob(_Input):
    kind: str = Field(min_length=1, max_length=100, description="A registered job kind.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="The kind's input, checked against its schema."
    )
    run_at: AwareDatetime | None = Field(
        None, description="Not started before this time (at most 366 days ahead)."
    )
    priority: int | None = Field(
        None, ge=-100, le=100, description="Higher runs first; the kind's own unless given."
    )

    @field_validator("run_at")
    @classmethod
    def _not_too_far(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + MAX_RUN_AHEAD:
            raise ValueError("expected a time at most 366 days ahead")
        return value


class NewSchedule(_Input):
    kind: str = Field(min_length=1, max_length=100, description="A registered job kind.")
    input: dict[str, Any] = Field(default_factory=dict, description="Each job's input.")
    cron: str = Field(
        min_length=9,
        max_length=200,
        description="Five-field cron expression, in the tenant's timezone, e.g. `0 9 * * 1-5`.",
    )


class SchedulePath(BaseModel):
    schedule_id: UUID


class ScheduleQuery(_Input):
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(50, ge=1, le=100)


class ScheduleView(BaseModel):
    id: UUID
    tenant_id: UUID
    kind: str
    input: dict[str, Any]
    cron: str
    created_by: UUID
    next_run_at: str
    last_run_at: str | None
    last_job_id: UUID | None
    created_at: str


class ScheduleList(BaseModel):
    items: list[ScheduleView]
    next_cursor: str | None


class JobPath(BaseModel):
    job_id: UUID


class JobListQuery(_Input):
    kind: str | None = Field(None, max_length=100)
    status: Status | None = None
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(50, ge=1, le=100)


class JobEventsQuery(_Input):
    after_seq: int = Field(0, ge=0)
    limit: int = Field(100, ge=1, le=1000)


class StreamQuery(_Input):
    after_seq: int | None = Field(
        None, ge=0, description="Replay after this seq; `Last-Event-ID` wins when both are sent."
    )


class JobError(BaseModel):
    code: str
    message: str


class JobView(BaseModel):
    id: UUID
    tenant_id: UUID
    kind: str
    status: Status
    progress: float = Field(description="0 to 100.")
    step: str | None
    done: int | None
    total: int | None
    result: Any = Field(description="The handler's JSON result, once succeeded.")
    error: JobError | None
    attempts: int
    max_attempts: int = Field(description="Attempts before the job fails (the kind's policy).")
    priority: int
    conflict_key: str | None = Field(description="At most one active job per key and tenant.")
    run_at: str | None = Field(description="Not started before this time.")
    retry_at: str | None = Field(description="When a retrying job's next attempt starts.")
    cancel_requested: bool
    last_seq: int = Field(description="The seq of the job's latest event.")
    created_by: UUID
    created_at: str
    started_at: str | None
    finished_at: str | None


class JobAccepted(BaseModel):
    id: UUID
    status: Status
    stream_url: str = Field(description="SSE stream of the job's events.")
    status_url: str = Field(description="The job itself.")


class JobList(BaseModel):
    items: list[JobView]
    next_cursor: str | None


class JobEventView(BaseModel):
    job_id: UUID
    seq: int
    type: EventType
    data: dict[str, Any]
    at: str


class JobEventList(BaseModel):
    items: list[JobEventView]
    last_seq: int
    next_cursor: str | None = Field(description="The `after_seq` of the next page, if any.")
