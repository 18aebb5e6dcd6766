"""Request and response shapes of the broadcast routes (and of OpenAPI)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from hubbub.jobs.wire import MAX_RUN_AHEAD

__all__ = [
    "MAX_RECIPIENTS",
    "BroadcastCounts",
    "BroadcastList",
    "BroadcastPath",
    "BroadcastView",
    "BroadcastsQuery",
    "NewBroadcast",
    "RecipientError",
    "RecipientList",
    "RecipientStatus",
    "RecipientView",
    "RecipientsQuery",
    "Status",
]

#: Most conversations one broadcast names by id (Plixa's limit).
MAX_RECIPIENTS = 1000

Status = Literal["queued", "sending", "completed", "cancelled"]
RecipientStatus = Literal["pending", "sent", "failed", "cancelled"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewBroadcast(_Input):
    body: str = Field(description="The message: 1 byte up to HUBBUB_MESSAGE_MAX_BYTES of UTF-8.")
    recipient_ids: list[UUID] | None = Field(
        None,
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description="The conversations to send to (duplicates count once). "
        "Exactly one of `recipient_ids` and `label`.",
    )
    label: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Send to every support conversation with this label that you are a "
        "member of, as they are now.",
    )
    start_at: AwareDatetime | None = Field(
        None,
        description="When to start sending (RFC 3339, at most 366 days ahead); absent: at once.",
    )

    @field_validator("start_at")
    @classmethod
    def _not_too_far(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + MAX_RUN_AHEAD:
            raise ValueError("expected a time at most 366 days ahead")
        return value


class BroadcastPath(BaseModel):
    broadcast_id: UUID


class BroadcastsQuery(_Input):
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(50, ge=1, le=100)


class RecipientsQuery(BroadcastsQuery):
    status: RecipientStatus | None = None


class BroadcastCounts(BaseModel):
    pending: int
    sent: int
    failed: int
    cancelled: int


class RecipientError(BaseModel):
    code: str
    message: str


class BroadcastView(BaseModel):
    id: UUID
    tenant_id: UUID
    job_id: UUID = Field(description="The `broadcast.send` job that sends it.")
    body: str
    label: str | None
    status: Status
    job_status: str | None = Field(
        description="Its job's status: `failed` or `timed_out` means sending stopped for "
        "good, with the recipients not reached still `pending` (`job_error` says why)."
    )
    job_error: RecipientError | None
    start_at: datetime | None
    total: int = Field(description="Number of recipients.")
    counts: BroadcastCounts = Field(description="Recipients per status.")
    created_by: UUID
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class BroadcastList(BaseModel):
    items: list[BroadcastView]
    next_cursor: str | None


class RecipientView(BaseModel):
    conversation_id: UUID
    status: RecipientStatus
    error: RecipientError | None
    message_id: UUID | None
    message_seq: int | None
    updated_at: datetime


class RecipientList(BaseModel):
    items: list[RecipientView]
    next_cursor: str | None
