"""Wire shapes of workflows and their runs (after the API Service's schemas:
``WorkflowSummary``, ``WorkflowDescriptorResponse``, ``WorkflowRunRequestBody``,
``WorkflowRunResponse``, ``WorkflowRunListResponse``, ``WorkflowRunDetail``).

A run is a job: its id is the job's, its status the job's status, and its
stream the job's events (``hubbub.jobs.wire.JobEventView``).
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hubbub.jobs.wire import JobError, Status
from hubbub.workflows.declaration import KEY_PATTERN

__all__ = [
    "WorkflowDescriptorResponse",
    "WorkflowListResponse",
    "WorkflowPath",
    "WorkflowRunDetail",
    "WorkflowRunListItem",
    "WorkflowRunListResponse",
    "WorkflowRunPath",
    "WorkflowRunQuery",
    "WorkflowRunRequestBody",
    "WorkflowRunResponse",
    "WorkflowStageDescriptor",
    "WorkflowStageResult",
    "WorkflowStepDescriptor",
    "WorkflowStepResultSchema",
    "WorkflowSummary",
]

KEY = f"^{KEY_PATTERN}$"
StepStatus = Literal[
    "pending", "running", "succeeded", "failed", "cancelled", "timed_out", "skipped"
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowPath(BaseModel):
    workflow_key: str = Field(pattern=KEY)


class WorkflowRunPath(BaseModel):
    run_id: UUID


class WorkflowRunRequestBody(_Input):
    input: dict[str, Any] = Field(
        default_factory=dict, description="The workflow's input, checked against its schema."
    )


class WorkflowRunQuery(_Input):
    workflow_key: str | None = Field(None, pattern=KEY, description="Only this workflow's runs.")
    status: Status | None = None
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(50, ge=1, le=100)


class WorkflowStepDescriptor(BaseModel):
    key: str
    title: str
    description: str


class WorkflowStageDescriptor(WorkflowStepDescriptor):
    steps: list[WorkflowStepDescriptor]


class WorkflowSummary(BaseModel):
    key: str
    title: str
    description: str
    kind: str = Field(description="The job kind its runs have (`workflow.<key>`).")
    stage_count: int
    step_count: int
    stages: list[WorkflowStageDescriptor]


class WorkflowListResponse(BaseModel):
    items: list[WorkflowSummary]


class WorkflowDescriptorResponse(WorkflowSummary):
    input_schema: dict[str, Any] = Field(description="JSON Schema of the run's `input`.")


class WorkflowRunResponse(BaseModel):
    id: UUID = Field(description="The run's id, which is its job's id.")
    workflow_key: str
    status: Status
    stream_url: str = Field(description="SSE stream of the run's job events.")
    status_url: str = Field(description="The run itself.")


class WorkflowRunListItem(BaseModel):
    id: UUID
    workflow_key: str
    status: Status
    progress: float = Field(description="0 to 100: the share of steps begun, or more.")
    current_stage: str | None
    current_step: str | None
    cancel_requested: bool
    created_by: UUID
    created_at: str
    started_at: str | None
    finished_at: str | None


class WorkflowRunListResponse(BaseModel):
    items: list[WorkflowRunListItem]
    next_cursor: str | None


class WorkflowStepResultSchema(BaseModel):
    key: str
    title: str
    status: StepStatus
    started_at: str | None
    finished_at: str | None


class WorkflowStageResult(BaseModel):
    key: str
    title: str
    status: StepStatus
    steps: list[WorkflowStepResultSchema]


class WorkflowRunDetail(WorkflowRunListItem):
    result: Any = Field(description="The workflow's JSON result, once succeeded.")
    error: JobError | None
    last_seq: int = Field(description="The seq of the run's latest job event.")
    stages: list[WorkflowStageResult]
