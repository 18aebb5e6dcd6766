"""HTTP routes of a tenant's members and invites, and invite acceptance.

Admins and owners manage members and invites; only owners grant, take or
remove the owner role; the last owner can neither leave nor be demoted.
``POST /api/v1/invites/accept`` is public: a bearer token joins an existing
account, ``name`` and ``password`` create one with the invited email.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from aiohttp import web

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.identity import passwords
from hubbub.identity.bearer import authenticate_request
from hubbub.identity.sign_in import open_session, token_answer
from hubbub.identity.users import User, create_user, get_user, mark_email_verified
from hubbub.identity.wire import AuthTokens
from hubbub.ids import new_id
from hubbub.services import DATABASE, SETTINGS
from hubbub.tenancy import commands
from hubbub.tenancy.access import PLANS, ask_tenant
from hubbub.tenancy.commands import (
    ChangeRole,
    CheckInvite,
    CreateInvite,
    ListInvites,
    ListMembers,
    RemoveMember,
    ResendInvite,
    RevokeInvite,
)
from hubbub.tenancy.directory import find_user_id, people
from hubbub.tenancy.invite_tokens import hash_token, new_token, tenant_of
from hubbub.tenancy.wire import (
    AcceptInvite,
    InviteList,
    InvitePath,
    InviteView,
    IssuedInvite,
    MemberList,
    MemberPath,
    MemberView,
    NewInvite,
    RoleChange,
    TenantPath,
)

__all__ = ["api"]

api = Api("members", "A tenant's members, roles and invites.")

ONE = "/api/v1/tenants/{tenant_id}"
#: Every route here but invite acceptance also accepts an X-API-Key.
BEARER = ("bearer", "api_key")
NOT_FOUND = {404: "No such tenant of yours, member or invite (`not_found`)"}
ROLE_ERRORS = {
    403: "Your role does not allow it (`insufficient_role`, `owner_required`)",
    409: "The last owner cannot leave or be demoted (`last_owner`)",
}


@api.get(f"{ONE}/members", params=TenantPath, response=MemberList, security=BEARER)
async def list_members(request: web.Request, *, path: TenantPath) -> MemberList:
    """The tenant's members with their roles (any member)."""
    claims = await authenticate_request(request)
    members = await ask_tenant(request, path.tenant_id, ListMembers(str(claims.user_id)))
    return MemberList(items=await _with_people(request, members))


async def _with_people(request: web.Request, members: list[dict[str, Any]]) -> list[MemberView]:
    found = await people(request.app[DATABASE], [UUID(m["user_id"]) for m in members])
    views = []
    for member in sorted(members, key=lambda m: (m["joined_at"], m["user_id"])):
        person = found[UUID(member["user_id"])]
        named = member | {"email": person.email, "name": person.name}
        views.append(MemberView.model_validate(named))
    return views


@api.patch(
    f"{ONE}/members/{{user_id}}",
    params=MemberPath,
    body=RoleChange,
    response=MemberView,
    security=BEARER,
    responses=NOT_FOUND | ROLE_ERRORS,
)
async def change_member_role(
    request: web.Request, *, path: MemberPath, body: RoleChange
) -> MemberView:
    """Change a member's role (admin or owner; owner role: owners only)."""
    claims = await authenticate_request(request)
    change = ChangeRole(str(claims.user_id), str(path.user_id), body.role)
    reply = await ask_tenant(request, path.tenant_id, change)
    return (await _with_people(request, [reply]))[0]


@api.delete(
    f"{ONE}/members/{{user_id}}",
    params=MemberPath,
    security=BEARER,
    responses=NOT_FOUND | ROLE_ERRORS,
)
async def remove_member(request: web.Request, *, path: MemberPath) -> None:
    """Remove a member (admin or owner), or leave (your own id). Their
    requests to the tenant fail from now on and their sockets leave it."""
    claims = await authenticate_request(request)
    removal = RemoveMember(str(claims.user_id), str(path.user_id))
    await ask_tenant(request, path.tenant_id, removal)


@api.post(
    f"{ONE}/invites",
    params=TenantPath,
    body=NewInvite,
    response=IssuedInvite,
    status=201,
    security=BEARER,
    responses=NOT_FOUND
    | {
        402: "The plan's member limit is reached (`plan_limit_reached`)",
        409: "`already_member` or `invite_pending`",
    },
)
async def create_invite(request: web.Request, *, path: TenantPath, body: NewInvite) -> IssuedInvite:
    """Invite an email address with a role (admin or owner); the token is shown only here."""
    claims = await authenticate_request(request)
    existing = await find_user_id(request.app[DATABASE], body.email)
    token = new_token(path.tenant_id)
    create = CreateInvite(
        actor=str(claims.user_id),
        invite_id=str(new_id()),
        email=body.email,
        role=body.role,
        token_hash=hash_token(token),
        invite_days=request.app[SETTINGS].invite_days,
        member_limits=request.app[PLANS].limits("max_members"),
        existing_user_id=None if existing is None else str(existing),
    )
    reply = await ask_tenant(request, path.tenant_id, create)
    return _issued(request, reply, token)


def _issued(request: web.Request, invite: dict[str, Any], token: str) -> IssuedInvite:
    base = request.app[SETTINGS].public_url.rstrip("/")
    return IssuedInvite.model_validate(
        invite | {"token": token, "accept_url": f"{base}/invites/accept?token={token}"}
    )


@api.get(f"{ONE}/invites", params=TenantPath, response=InviteList, security=BEARER)
async def list_invites(request: web.Request, *, path: TenantPath) -> InviteList:
    """Every invite of the tenant with its status, newest first (admin or owner)."""
    claims = await authenticate_request(request)
    invites = await ask_tenant(request, path.tenant_id, ListInvites(str(claims.user_id)))
    invites.sort(key=lambda i: i["id"], reverse=True)
    return InviteList(items=[InviteView.model_validate(i) for i in invites])


@api.post(
    f"{ONE}/invites/{{invite_id}}/resend",
    params=InvitePath,
    response=IssuedInvite,
    security=BEARER,
    responses=NOT_FOUND | {409: "`invite_already_used` or `invite_revoked`"},
)
async def resend_invite(request: web.Request, *, path: InvitePath) -> IssuedInvite:
    """A new token for an invite, valid for a new period; the old token dies."""
    claims = await authenticate_request(request)
    token = new_token(path.tenant_id)
    resend = ResendInvite(
        str(claims.user_id),
        str(path.invite_id),
        hash_token(token),
        request.app[SETTINGS].invite_days,
    )
    reply = await ask_tenant(request, path.tenant_id, resend)
    return _issued(request, reply, token)


@api.delete(
    f"{ONE}/invites/{{invite_id}}",
    params=InvitePath,
    security=BEARER,
    responses=NOT_FOUND | {409: "`invite_already_used`"},
)
async def revoke_invite(request: web.Request, *, path: InvitePath) -> None:
    """Revoke an invite: its token stops working (admin or owner)."""
    claims = await authenticate_request(request)
    revoke = RevokeInvite(str(claims.user_id), str(path.invite_id))
    await ask_tenant(request, path.tenant_id, revoke)


@api.post(
    "/api/v1/invites/accept",
    body=AcceptInvite,
    response=AuthTokens,
    responses={
        400: "Unknown token (`invalid_invite_token`)",
        403: "The invite is for another email (`invite_email_mismatch`)",
        409: "`already_member`, or `email_taken` (log in and accept with a bearer token)",
        410: "`invite_expired`, `invite_already_used` or `invite_revoked`",
        402: "The plan's member limit is reached (`plan_limit_reached`)",
    },
)
async def accept_invite(request: web.Request, *, body: AcceptInvite) -> AuthTokens:
    """Accept an invite: with a bearer token as that account, or with `name`
    and `password` as a new account; answers tokens of a new session."""
    tenant_id, token_hash = tenant_of(body.token), hash_token(body.token)
    if body.password is None:
        claims = await authenticate_request(request)
        async with request.app[DATABASE].pool.acquire() as conn:
            user = await get_user(conn, claims.user_id)
        assert user is not None, "a live session always belongs to an existing user"
    else:
        invite = await ask_tenant(request, tenant_id, CheckInvite(token_hash))
        user = await _new_account(request, invite["email"], body)
    accept = commands.AcceptInvite(
        token_hash, str(user.id), user.email, request.app[PLANS].limits("max_members")
    )
    await ask_tenant(request, tenant_id, accept)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        # The invite's token reached this mailbox: that proves the email.
        if await mark_email_verified(conn, user.id, user.email):
            user = replace(user, email_verified=True)
        session_id, refresh_token = await open_session(request, conn, user.id)
    return await token_answer(request, user, session_id, refresh_token)


async def _new_account(request: web.Request, email: str, body: AcceptInvite) -> User:
    assert body.name is not None and body.password is not None
    password_hash = await passwords.hash_password(body.password)
    async with request.app[DATABASE].pool.acquire() as conn:
        user = await create_user(conn, email=email, name=body.name, password_hash=password_hash)
    if user is None:
        raise AppError(
            "email_taken",
            "an account with the invited email exists; log in and accept with its token",
            status=409,
        )
    return user
