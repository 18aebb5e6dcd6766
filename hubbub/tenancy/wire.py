"""The JSON shapes of the tenant API (snake_case), validated at the edge."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    model_validator,
)

from hubbub.identity.wire import Email, Password

__all__ = [
    "AcceptInvite",
    "Deletion",
    "FeaturePath",
    "FeatureUse",
    "InviteList",
    "InvitePath",
    "InviteView",
    "IssuedInvite",
    "ListQuery",
    "MemberList",
    "MemberPath",
    "MemberView",
    "NewInvite",
    "NewTenant",
    "PlanView",
    "RoleChange",
    "TenantList",
    "TenantPath",
    "TenantSettings",
    "TenantUpdate",
    "TenantView",
    "slugify",
]

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{1,46}[a-z0-9])$"
SETTINGS_MAX_BYTES = 16_384
_LOCALE = re.compile(r"^[a-zA-Z]{2,3}(?:-[a-zA-Z0-9]{2,8})*$")

RoleName = Literal["owner", "admin", "member", "viewer"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Slug = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    StringConstraints(pattern=SLUG_PATTERN),
    Field(description="3 to 48 of a-z, 0-9 and inner hyphens; unique across tenants."),
]


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"expected an IANA time zone such as Europe/Paris, got {value!r}")
    return value


def _locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError(f"expected a BCP 47 language tag such as en or pt-BR, got {value!r}")
    return value


TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
Locale = Annotated[str, Field(max_length=35), AfterValidator(_locale)]


def slugify(name: str) -> str:
    """A slug from a tenant name (ASCII letters and digits, hyphens between words)."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
    return base if len(base) >= 3 else f"tenant-{base}".strip("-")


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantPath(BaseModel):
    tenant_id: UUID


class MemberPath(BaseModel):
    tenant_id: UUID
    user_id: UUID


class InvitePath(BaseModel):
    tenant_id: UUID
    invite_id: UUID


class FeaturePath(BaseModel):
    tenant_id: UUID
    feature: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class ListQuery(_Input):
    cursor: UUID | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(50, ge=1, le=100)


class NewTenant(_Input):
    name: Name
    slug: Slug | None = Field(None, description="Unset: made from the name.")
    timezone: TimeZone = "UTC"
    locale: Locale = "en"


class TenantUpdate(_Input):
    name: Name | None = None
    slug: Slug | None = None
    timezone: TimeZone | None = None
    locale: Locale | None = None

    @model_validator(mode="after")
    def _something(self) -> TenantUpdate:
        if not self.model_dump(exclude_none=True):
            raise ValueError("expected at least one of name, slug, timezone, locale")
        return self


class TenantView(BaseModel):
    id: UUID
    name: str
    slug: str
    plan: str
    timezone: str
    locale: str
    created_at: datetime
    role: RoleName = Field(description="Your role in this tenant.")


class TenantList(BaseModel):
    items: list[TenantView]
    next_cursor: str | None


class TenantSettings(RootModel[dict[str, Any]]):
    """Free-form tenant settings: a JSON object of at most 16 KiB."""

    @model_validator(mode="after")
    def _small(self) -> TenantSettings:
        if len(orjson.dumps(self.root)) > SETTINGS_MAX_BYTES:
            raise ValueError(f"expected at most {SETTINGS_MAX_BYTES} bytes of settings")
        return self


class Deletion(BaseModel):
    deleted_at: datetime
    purge_after: datetime = Field(description="Until then an owner can restore the tenant.")


class MemberView(BaseModel):
    user_id: UUID
    email: str
    name: str
    role: RoleName
    joined_at: datetime


class MemberList(BaseModel):
    items: list[MemberView]
    next_cursor: str | None = Field(None, description="Always null: one page holds every member.")


class RoleChange(_Input):
    role: RoleName


class NewInvite(_Input):
    email: Email
    role: RoleName = "member"


class IssuedInvite(BaseModel):
    id: UUID
    email: str
    role: RoleName
    token: str = Field(description="Shown only in this answer; hubbub keeps its hash.")
    accept_url: str
    expires_at: datetime


class InviteView(BaseModel):
    id: UUID
    email: str
    role: RoleName
    status: Literal["pending", "expired", "accepted", "revoked"]
    invited_by: UUID
    created_at: datetime
    expires_at: datetime


class InviteList(BaseModel):
    items: list[InviteView]
    next_cursor: str | None = Field(None, description="Always null: one page holds every invite.")


class AcceptInvite(_Input):
    token: Annotated[str, Field(min_length=1, max_length=200)]
    name: Name | None = Field(None, description="With `password`: create the account.")
    password: Password | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> AcceptInvite:
        if (self.name is None) != (self.password is None):
            raise ValueError("expected both name and password (new account) or neither")
        return self


class PlanView(BaseModel):
    plan: str
    features: list[str]
    limits: dict[str, int | None]
    buckets: dict[str, str]
    usage: dict[str, int]


class FeatureUse(BaseModel):
    feature: str
    plan: str
    used: int = Field(description="Uses of this feature counted for the tenant so far.")
