"""A tenant's invites: issued, reissued, revoked, accepted by their token.

An invite holds the SHA-256 of its token, never the token; its status
(pending, expired, accepted, revoked) is read against the entity's clock.
Pending invites count against the plan's ``max_members``. Pure rules, see
:mod:`hubbub.tenancy.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from hubbub.errors import AppError
from hubbub.tenancy.authority import acting_member, check_role, owner_needed
from hubbub.tenancy.commands import AcceptInvite, CreateInvite, ResendInvite, RevokeInvite
from hubbub.tenancy.events import (
    Event,
    InviteAccepted,
    InviteCreated,
    InviteReissued,
    InviteRevoked,
    MemberAdded,
)
from hubbub.tenancy.records import Invite, TenantState
from hubbub.tenancy.roster import check_room

__all__ = ["APPLIERS", "DECIDERS", "invite_by_token"]


def _pending_invites(state: TenantState, now: datetime) -> list[Invite]:
    return [i for i in state.invites.values() if i.status(now) == "pending"]


def _create_invite(state: TenantState | None, command: CreateInvite, now: datetime) -> list[Event]:
    actor = acting_member(state, command.actor, "admin")
    assert state is not None
    role, email = check_role(command.role), command.email
    if role == "owner" and actor.role != "owner":
        raise owner_needed("invite an owner")
    if command.existing_user_id in state.members:
        raise AppError("already_member", f"{email} is already a member", status=409)
    pending = _pending_invites(state, now)
    if any(i.email.lower() == email.lower() for i in pending):
        raise AppError(
            "invite_pending", f"{email} already has a pending invite; resend it", status=409
        )
    check_room(state, command.member_limits, len(pending))
    expires_at = now + timedelta(days=command.invite_days)
    invite = Invite(
        command.invite_id, email, role, command.token_hash, actor.user_id, now, expires_at
    )
    return [InviteCreated(invite)]


def _managed_invite(state: TenantState | None, actor: str, invite_id: str) -> Invite:
    acting_member(state, actor, "admin")
    assert state is not None
    invite = state.invites.get(invite_id)
    if invite is None:
        raise AppError.not_found("invite")
    if invite.accepted_at is not None:
        raise AppError("invite_already_used", "the invite was already accepted", status=409)
    return invite


def _resend_invite(state: TenantState | None, command: ResendInvite, now: datetime) -> list[Event]:
    invite = _managed_invite(state, command.actor, command.invite_id)
    if invite.revoked_at is not None:
        raise AppError("invite_revoked", "the invite was revoked; create a new one", status=409)
    expires_at = now + timedelta(days=command.invite_days)
    return [InviteReissued(invite.id, command.token_hash, expires_at)]


def _revoke_invite(state: TenantState | None, command: RevokeInvite, now: datetime) -> list[Event]:
    invite = _managed_invite(state, command.actor, command.invite_id)
    return [] if invite.revoked_at is not None else [InviteRevoked(invite.id, now)]


def invite_by_token(state: TenantState | None, token_hash: str, now: datetime) -> Invite:
    """The pending invite of ``token_hash``; 400 unknown, 410 expired/used/revoked."""
    found = None
    if state is not None and state.deleted_at is None:
        found = next((i for i in state.invites.values() if i.token_hash == token_hash), None)
    if found is None:
        raise AppError("invalid_invite_token", "the invite token is not known", status=400)
    status = found.status(now)
    if status != "pending":
        code = {"accepted": "invite_already_used"}.get(status, f"invite_{status}")
        raise AppError(code, f"the invite is {status}; ask for a new one", status=410)
    return found


def _accept_invite(state: TenantState | None, command: AcceptInvite, now: datetime) -> list[Event]:
    invite = invite_by_token(state, command.token_hash, now)
    assert state is not None
    user_id = command.user_id
    if command.email.lower() != invite.email.lower():
        raise AppError(
            "invite_email_mismatch",
            "the invite was sent to another email address; log in with that account",
            status=403,
        )
    if user_id in state.members:
        raise AppError("already_member", "you are already a member of this tenant", status=409)
    others = [i for i in _pending_invites(state, now) if i.id != invite.id]
    check_room(state, command.member_limits, len(others))
    return [InviteAccepted(invite.id, user_id, now), MemberAdded(user_id, invite.role, now)]


DECIDERS: dict[type, Callable[[TenantState | None, Any, datetime], list[Event]]] = {
    CreateInvite: _create_invite,
    ResendInvite: _resend_invite,
    RevokeInvite: _revoke_invite,
    AcceptInvite: _accept_invite,
}


def _created(state: TenantState, event: InviteCreated) -> None:
    state.invites[event.invite.id] = event.invite


def _reissued(state: TenantState, event: InviteReissued) -> None:
    invite = state.invites[event.invite_id]
    invite.token_hash, invite.expires_at = event.token_hash, event.expires_at


def _revoked(state: TenantState, event: InviteRevoked) -> None:
    state.invites[event.invite_id].revoked_at = event.at


def _accepted(state: TenantState, event: InviteAccepted) -> None:
    invite = state.invites[event.invite_id]
    invite.accepted_at, invite.accepted_by = event.at, event.user_id


APPLIERS: dict[type, Callable[[TenantState, Any], None]] = {
    InviteCreated: _created,
    InviteReissued: _reissued,
    InviteRevoked: _revoked,
    InviteAccepted: _accepted,
}
