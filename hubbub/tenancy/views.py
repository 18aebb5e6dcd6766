"""What tenant commands answer: the read-only queries, and the replies of
state-changing commands, as plain dicts (validated into wire models at the
HTTP edge). Pure, like :mod:`hubbub.tenancy.state`, whose authorisation
they share; both dispatch on the command's type.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hubbub.actors.command import CommandBody
from hubbub.tenancy.authority import acting_member
from hubbub.tenancy.commands import (
    AcceptInvite,
    Authorize,
    ChangeRole,
    CheckInvite,
    CreateApiKey,
    CreateInvite,
    DeleteTenant,
    GetSettings,
    GetTenant,
    ListInvites,
    ListMembers,
    PutSettings,
    RecordUsage,
    RemoveMember,
    ResendInvite,
    RevokeApiKey,
    RevokeInvite,
    SetPlan,
)
from hubbub.tenancy.events import Event, PlanChanged
from hubbub.tenancy.invites import invite_by_token
from hubbub.tenancy.records import Invite, Member, TenantState

__all__ = ["invite_view", "is_query", "member_view", "query", "reply_for", "tenant_view"]


def tenant_view(state: TenantState, role: str | None) -> dict[str, Any]:
    return {
        "id": state.id,
        "name": state.name,
        "slug": state.slug,
        "plan": state.plan,
        "timezone": state.timezone,
        "locale": state.locale,
        "created_at": state.created_at,
        "role": role,
    }


def member_view(member: Member) -> dict[str, Any]:
    return {"user_id": member.user_id, "role": member.role, "joined_at": member.joined_at}


def invite_view(invite: Invite, now: datetime) -> dict[str, Any]:
    return {
        "id": invite.id,
        "email": invite.email,
        "role": invite.role,
        "status": invite.status(now),
        "invited_by": invite.invited_by,
        "created_at": invite.created_at,
        "expires_at": invite.expires_at,
    }


# -- queries ----------------------------------------------------------------


def _get(state: TenantState | None, query: GetTenant, now: datetime) -> Any:
    role = acting_member(state, query.actor).role
    assert state is not None
    return tenant_view(state, role)


def _get_settings(state: TenantState | None, query: GetSettings, now: datetime) -> Any:
    acting_member(state, query.actor)
    assert state is not None
    return state.settings


def _authorize(state: TenantState | None, query: Authorize, now: datetime) -> Any:
    role = acting_member(state, query.actor, query.minimum).role
    assert state is not None
    return {"role": role, "plan": state.plan, "usage": dict(state.usage)}


def _members(state: TenantState | None, query: ListMembers, now: datetime) -> Any:
    acting_member(state, query.actor)
    assert state is not None
    return [member_view(m) for m in state.members.values()]


def _invites(state: TenantState | None, query: ListInvites, now: datetime) -> Any:
    acting_member(state, query.actor, "admin")
    assert state is not None
    return [invite_view(i, now) for i in state.invites.values()]


def _check_invite(state: TenantState | None, query: CheckInvite, now: datetime) -> Any:
    invite = invite_by_token(state, query.token_hash, now)
    assert state is not None
    return {"tenant_id": state.id, "tenant_name": state.name, **invite_view(invite, now)}


_QUERIES: dict[type, Callable[[TenantState | None, Any, datetime], Any]] = {
    GetTenant: _get,
    GetSettings: _get_settings,
    Authorize: _authorize,
    ListMembers: _members,
    ListInvites: _invites,
    CheckInvite: _check_invite,
}


def is_query(command: CommandBody) -> bool:
    """True for the read-only commands, answered by :func:`query`."""
    return type(command) in _QUERIES


def query(state: TenantState | None, command: CommandBody, now: datetime) -> Any:
    """The answer of read-only ``command``; raises AppError to refuse it."""
    return _QUERIES[type(command)](state, command, now)


# -- replies of state-changing commands -------------------------------------

_Replier = Callable[[TenantState, Any, list[Event], datetime], Any]


def _nothing(state: TenantState, command: Any, events: list[Event], now: datetime) -> Any:
    return None


def _invite(state: TenantState, command: Any, events: list[Event], now: datetime) -> Any:
    return invite_view(state.invites[command.invite_id], now)


def _plan(state: TenantState, command: SetPlan, events: list[Event], now: datetime) -> Any:
    changed = next((e for e in events if isinstance(e, PlanChanged)), None)
    previous = state.plan if changed is None else changed.previous
    return {"tenant_id": state.id, "plan": state.plan, "previous": previous}


def _usage(state: TenantState, command: RecordUsage, events: list[Event], now: datetime) -> Any:
    return {"metric": command.metric, "value": state.usage.get(command.metric, 0)}


def _accepted(state: TenantState, command: AcceptInvite, events: list[Event], now: datetime) -> Any:
    return tenant_view(state, state.members[command.user_id].role)


_REPLIES: dict[type, _Replier] = {
    RemoveMember: _nothing,
    RevokeInvite: _nothing,
    RevokeApiKey: _nothing,
    CreateApiKey: lambda s, c, e, n: s.service_accounts[c.key_id].to_view(),
    ChangeRole: lambda s, c, e, n: member_view(s.members[c.user_id]),
    CreateInvite: _invite,
    ResendInvite: _invite,
    SetPlan: _plan,
    DeleteTenant: lambda s, c, e, n: {"deleted_at": s.deleted_at, "purge_after": s.purge_after},
    PutSettings: lambda s, c, e, n: s.settings,
    RecordUsage: _usage,
    AcceptInvite: _accepted,
}


def reply_for(state: TenantState, command: Any, events: list[Event], now: datetime) -> Any:
    """What a state-changing command answers, from the state after it: by
    default the tenant as its actor sees it."""
    replier = _REPLIES.get(type(command))
    if replier is not None:
        return replier(state, command, events, now)
    member = state.members.get(command.actor)
    return tenant_view(state, member.role if member else None)
