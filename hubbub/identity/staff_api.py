"""HTTP routes for platform staff, under ``/api/v1/staff``, and their JSON shapes.

Every route needs a bearer token of a staff account (403 ``staff_only``
otherwise). Lists page newest first with an opaque ``cursor``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.identity import staff
from hubbub.identity.bearer import authenticate_request
from hubbub.identity.revocation import announce_revoked
from hubbub.identity.staff import StaffAction
from hubbub.identity.tokens import AccessClaims
from hubbub.services import DATABASE, REDIS

__all__ = ["STAFF_ONLY", "require_staff", "staff_api"]

staff_api = Api("staff", "Platform staff: accounts, bans, locks and the audit log.")

BASE = "/api/v1/staff"
BEARER = ("bearer",)
STAFF_ONLY = {403: "The token's account is not staff (`staff_only`)"}
Limit = Annotated[int, Field(ge=1, le=200)]


class UserQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, StringConstraints(min_length=1, max_length=254)] | None = Field(
        None, description="Only accounts whose email contains this (any case)."
    )
    cursor: UUID | None = Field(None, description="`next_cursor` of the previous page.")
    limit: Limit = 50


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_id: UUID | None = Field(None, description="Only actions on this account.")
    cursor: UUID | None = Field(None, description="`next_cursor` of the previous page.")
    limit: Limit = 50


class UserPath(BaseModel):
    user_id: UUID


class StaffReason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class StaffUserView(BaseModel):
    id: UUID
    email: str
    name: str
    email_verified: bool
    created_at: datetime
    is_staff: bool
    banned_at: datetime | None
    locked_at: datetime | None = Field(description="When staff locked the account, if locked.")

    @classmethod
    def of(cls, user: staff.StaffUser) -> StaffUserView:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            email_verified=user.email_verified,
            created_at=user.created_at,
            is_staff=user.is_staff,
            banned_at=user.banned_at,
            locked_at=user.staff_locked_at,
        )


class StaffUserList(BaseModel):
    items: list[StaffUserView]
    next_cursor: str | None


class AuditEntryView(BaseModel):
    id: UUID
    actor_id: UUID | None = Field(description="The staff member; null: an operator (CLI).")
    action: str = Field(
        description="ban, unban, lock, unlock, staff_grant, staff_revoke (an account), "
        "set_plan (a tenant), signup_approve or signup_reject (a signup request)."
    )
    target_kind: str = Field(description="user, tenant or signup_request.")
    target_id: UUID
    before: dict[str, Any] = Field(
        description="The target before: {is_staff, banned, locked}, {plan} or {status}."
    )
    after: dict[str, Any] = Field(description="The target after, in the same shape.")
    reason: str | None
    at: datetime


class AuditLog(BaseModel):
    items: list[AuditEntryView]
    next_cursor: str | None


@staff_api.get(
    f"{BASE}/users", query=UserQuery, response=StaffUserList, security=BEARER, responses=STAFF_ONLY
)
async def list_users(request: web.Request, *, query: UserQuery) -> StaffUserList:
    """Accounts, newest first, optionally filtered by part of their email."""
    await require_staff(request)
    db = request.app[DATABASE]
    users = await staff.list_users(
        db, email_contains=query.email, before=query.cursor, limit=query.limit + 1
    )
    page = users[: query.limit]
    more = len(users) > query.limit
    return StaffUserList(
        items=[StaffUserView.of(user) for user in page],
        next_cursor=str(page[-1].id) if more else None,
    )


def _standing_route(action: StaffAction, summary: str) -> None:
    @staff_api.post(
        f"{BASE}/users/{{user_id}}/{action}",
        params=UserPath,
        body=StaffReason,
        response=StaffUserView,
        security=BEARER,
        summary=summary,
        responses=STAFF_ONLY
        | {404: "No account has this id", 409: "Staff cannot act on themselves"},
    )
    async def change(request: web.Request, *, path: UserPath, body: StaffReason) -> StaffUserView:
        claims = await require_staff(request)
        user, changed = await staff.change_standing(
            request.app[DATABASE],
            actor_id=claims.user_id,
            target_id=path.user_id,
            action=action,
            reason=body.reason,
        )
        if changed and action.sets:
            await announce_revoked(request.app[REDIS], user_id=user.id, code=action.revocation_code)
        return StaffUserView.of(user)

    change.__name__ = f"{action}_user"


_standing_route(StaffAction.BAN, "Ban an account: its sessions end at once, login is refused")
_standing_route(StaffAction.UNBAN, "Lift a ban")
_standing_route(StaffAction.LOCK, "Lock an account (a hold): its sessions end, login is refused")
_standing_route(StaffAction.UNLOCK, "Lift a lock")


@staff_api.get(
    f"{BASE}/audit-log", query=AuditQuery, response=AuditLog, security=BEARER, responses=STAFF_ONLY
)
async def audit_log(request: web.Request, *, query: AuditQuery) -> AuditLog:
    """Every staff and operator action, newest first."""
    await require_staff(request)
    entries = await staff.list_audit_log(
        request.app[DATABASE], target_id=query.target_id, before=query.cursor, limit=query.limit + 1
    )
    page = entries[: query.limit]
    return AuditLog(
        items=[AuditEntryView.model_validate(entry, from_attributes=True) for entry in page],
        next_cursor=str(page[-1].id) if len(entries) > query.limit else None,
    )


async def require_staff(request: web.Request) -> AccessClaims:
    """The claims of the request's bearer, a staff account; 401, or 403 ``staff_only``."""
    claims = await authenticate_request(request)
    if not await staff.is_staff(request.app[DATABASE], claims.user_id):
        raise AppError("staff_only", "this needs a platform staff account", status=403)
    return claims
