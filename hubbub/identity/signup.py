"""The deployment's signup policy (``HUBBUB_SIGNUP_POLICY``), and the signup
requests of the ``approval`` policy.

* ``open`` — ``POST /api/v1/auth/register`` creates the account;
* ``invite_only`` — registering answers 403 ``signup_invite_only``; accounts
  are created only by accepting a tenant invite;
* ``approval`` — registering files a signup request (password already
  hashed) and answers 202; platform staff list, approve (the account is
  created then, and can log in) or reject requests.

Accepting an invite creates an account under every policy: the invite is
the approval.

Every registration attempt (``register`` and the async signup) first spends
one hit of its address's budget (``HUBBUB_REGISTER_LIMIT_PER_IP``) and one of
the deployment's (``HUBBUB_REGISTER_LIMIT_GLOBAL``), whatever the policy:
past either, 429 ``rate_limited`` with ``Retry-After``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg
import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.identity import passwords, staff
from hubbub.identity.staff_api import STAFF_ONLY, require_staff
from hubbub.identity.users import create_user, email_taken
from hubbub.identity.wire import NewAccount
from hubbub.ids import new_id
from hubbub.ratelimit import RATE_LIMITER, Limit
from hubbub.services import DATABASE, SETTINGS

__all__ = ["RATE_LIMITED", "SignupRequestView", "api", "signup_gate"]

api = Api("signup", "Signup requests of the approval policy (platform staff).")

BASE = "/api/v1/signup-requests"
_COLUMNS = "id, email, name, status, created_at, decided_at, user_id"

Status = Literal["pending", "approved", "rejected"]


class SignupRequestView(BaseModel):
    id: UUID
    email: str
    name: str
    status: Status
    created_at: datetime
    decided_at: datetime | None = None
    user_id: UUID | None = Field(None, description="The account, once approved.")


class SignupRequestList(BaseModel):
    items: list[SignupRequestView]
    next_cursor: str | None


class SignupRequestPath(BaseModel):
    request_id: UUID


class SignupRequestQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status = "pending"
    cursor: UUID | None = None
    limit: int = Field(50, ge=1, le=100)


#: The ``responses`` entry of a route that registers.
RATE_LIMITED = (
    "Too many registrations from this address or on the deployment (`rate_limited`, `Retry-After`)"
)


async def signup_gate(request: web.Request, body: NewAccount) -> web.Response | None:
    """None when the policy lets ``register`` create the account now; the 202
    answer of a filed request under ``approval``; AppError 403 under
    ``invite_only``; AppError 429 past a registration limit (checked first)."""
    await _spend_registration_budgets(request)
    policy = request.app[SETTINGS].signup_policy
    if policy == "open":
        return None
    if policy == "invite_only":
        raise AppError(
            "signup_invite_only",
            "this deployment creates accounts only through tenant invites",
            status=403,
        )
    filed = await _file_request(request, body)
    return web.Response(
        body=orjson.dumps(filed.model_dump(mode="json")),
        status=202,
        content_type="application/json",
    )


async def _spend_registration_budgets(request: web.Request) -> None:
    settings, limiter = request.app[SETTINGS], request.app[RATE_LIMITER]
    per_ip = Limit.parse(settings.register_limit_per_ip)
    await limiter.hit(f"register:ip:{request.remote or 'unknown'}", per_ip)
    await limiter.hit("register:global", Limit.parse(settings.register_limit_global))


async def _file_request(request: web.Request, body: NewAccount) -> SignupRequestView:
    password_hash = await passwords.hash_password(body.password)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM users WHERE lower(email) = lower($1)", body.email):
            raise email_taken()
        row = await conn.fetchrow(
            f"""INSERT INTO signup_requests (id, email, name, password_hash)
                VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING {_COLUMNS}""",
            new_id(),
            body.email,
            body.name,
            password_hash,
        )
    if row is None:
        raise AppError("signup_request_pending", "a signup request for this email is pending", 409)
    return SignupRequestView(**row)


async def _staff(request: web.Request) -> UUID:
    return (await require_staff(request)).user_id


@api.get(
    BASE,
    query=SignupRequestQuery,
    response=SignupRequestList,
    security=("bearer",),
    responses=STAFF_ONLY,
)
async def list_signup_requests(
    request: web.Request, *, query: SignupRequestQuery
) -> SignupRequestList:
    """Signup requests with a status (pending by default), oldest first (staff)."""
    await _staff(request)
    rows = await request.app[DATABASE].pool.fetch(
        f"""SELECT {_COLUMNS} FROM signup_requests WHERE status = $1
            AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3""",
        query.status,
        query.cursor,
        query.limit + 1,
    )
    items = [SignupRequestView(**row) for row in rows[: query.limit]]
    next_cursor = str(items[-1].id) if len(rows) > query.limit else None
    return SignupRequestList(items=items, next_cursor=next_cursor)


@api.post(
    f"{BASE}/{{request_id}}/approve",
    params=SignupRequestPath,
    response=SignupRequestView,
    security=("bearer",),
    responses=STAFF_ONLY
    | {404: "No pending request has this id", 409: "The email got an account (`email_taken`)"},
)
async def approve_signup_request(
    request: web.Request, *, path: SignupRequestPath
) -> SignupRequestView:
    """Approve a pending request: its account is created and can log in (staff)."""
    staff_id = await _staff(request)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """SELECT email, name, password_hash FROM signup_requests
               WHERE id = $1 AND status = 'pending' FOR UPDATE""",
            path.request_id,
        )
        if row is None:
            raise AppError.not_found("pending signup request")
        user = await create_user(conn, **row)
        if user is None:
            raise email_taken()
        decided = await conn.fetchrow(
            f"""UPDATE signup_requests SET status = 'approved', decided_at = now(),
                decided_by = $2, user_id = $3 WHERE id = $1 RETURNING {_COLUMNS}""",
            path.request_id,
            staff_id,
            user.id,
        )
        await _audit(conn, staff_id, "signup_approve", decided)
    return SignupRequestView(**decided)


@api.post(
    f"{BASE}/{{request_id}}/reject",
    params=SignupRequestPath,
    response=SignupRequestView,
    security=("bearer",),
    responses=STAFF_ONLY | {404: "No pending request has this id"},
)
async def reject_signup_request(
    request: web.Request, *, path: SignupRequestPath
) -> SignupRequestView:
    """Reject a pending request: no account is created (staff)."""
    staff_id = await _staff(request)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE signup_requests SET status = 'rejected', decided_at = now(),
                decided_by = $2 WHERE id = $1 AND status = 'pending' RETURNING {_COLUMNS}""",
            path.request_id,
            staff_id,
        )
        if row is None:
            raise AppError.not_found("pending signup request")
        await _audit(conn, staff_id, "signup_reject", row)
    return SignupRequestView(**row)


async def _audit(
    conn: asyncpg.Connection, staff_id: UUID, action: str, decided: asyncpg.Record
) -> None:
    """The audit row of a decision, in the decision's transaction."""
    after = {"status": decided["status"], "email": decided["email"]}
    if decided["user_id"] is not None:
        after["user_id"] = str(decided["user_id"])
    await staff.record_audit(
        conn,
        actor_id=staff_id,
        action=action,
        target_kind="signup_request",
        target_id=decided["id"],
        before={"status": "pending", "email": decided["email"]},
        after=after,
    )
