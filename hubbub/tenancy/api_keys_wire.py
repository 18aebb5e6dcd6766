"""The JSON shapes of a tenant's API keys (snake_case), validated at the edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["ApiKeyList", "ApiKeyPath", "ApiKeyView", "IssuedApiKey", "NewApiKey"]

Scope = Literal["read", "write", "admin"]
KeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KeyName = Field(description="1 to 100 characters, to recognise the key by.")
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=3,
        description="At least one of read, write, admin. The key acts with the role of its "
        "highest scope: read → viewer, write → member, admin → admin.",
    )
    expires_in_days: int = Field(ge=1, le=365, description="The key's lifetime, 1 to 365 days.")

    def unique_scopes(self) -> list[str]:
        return sorted(set(self.scopes), key=["read", "write", "admin"].index)


class ApiKeyPath(BaseModel):
    tenant_id: UUID
    key_id: UUID


class IssuedApiKey(BaseModel):
    id: UUID
    name: str
    scopes: list[Scope]
    key: str = Field(description="The key itself: shown only in this answer, never again.")
    expires_at: datetime


class ApiKeyView(BaseModel):
    id: UUID
    name: str
    scopes: list[Scope]
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    revoked_at: datetime | None


class ApiKeyList(BaseModel):
    items: list[ApiKeyView]
    next_cursor: str | None
