"""Wire shapes of async signup (HTTP bodies and the job's input)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hubbub.identity.wire import Email, NewAccount
from hubbub.tenancy.wire import Name

__all__ = ["AsyncSignup", "ProvisionInput", "SignupAccepted", "StreamPath"]


class AsyncSignup(NewAccount):
    tenant_name: Name = Field(description="Name of the tenant (workspace) to create.")


class SignupAccepted(BaseModel):
    job_id: UUID = Field(description="The `tenant.provision` job.")
    stream_url: str = Field(
        description="SSE stream of the job, no bearer token needed: the link is the secret."
    )
    expires_at: datetime = Field(description="When the stream link stops working.")


class StreamPath(BaseModel):
    stream_token: str = Field(max_length=200)


class ProvisionInput(BaseModel):
    """The job's input: ids chosen at the gateway (a retried run finds what an
    earlier one created), no secret — the password's hash stays in
    ``account_signups``."""

    model_config = ConfigDict(extra="forbid")

    user_id: UUID
    tenant_id: UUID
    email: Email
    name: Name
    tenant_name: Name
