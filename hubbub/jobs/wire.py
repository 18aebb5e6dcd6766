"""Wire shapes of jobs and job events (HTTP bodies; sockets use the same names).

Inputs forbid unknown fields; a job's ``input`` is checked against its
kind's own model (``hubbub.jobs.registry``). Names follow issue 5's "Wire
names".
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EventList",
    "EventsQuery",
    "JobAccepted",
    "JobEventView",
    "JobList",
    "JobPath",
    "JobView",
    "ListQuery",
    "NewJob",
    "StreamQuery",
]

Status = Literal["queued", "running", "retrying", "succeeded", "failed", "cancelled", "timed_out"]
EventType = Literal["status", "progress", "step", "log", "output"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewJob(_Input):
    kind: str = Field(min_length=1, max_length=100, description="A registered job kind.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="The kind's input, checked against its schema."
    )


class JobPath(BaseModel):
    job_id: UUID


class ListQuery(_Input):
    kind: str | None = Field(None, max_length=100)
    status: Status | None = None
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(50, ge=1, le=100)


class EventsQuery(_Input):
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


class EventList(BaseModel):
    items: list[JobEventView]
    last_seq: int
    next_cursor: str | None = Field(description="The `after_seq` of the next page, if any.")
