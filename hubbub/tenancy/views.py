"""What tenant commands answer: the read-only queries, and the replies of
state-changing commands, as plain dicts (validated into wire models at the
HTTP edge). Pure, like :mod:`hubbub.tenancy.state`, whose authorisation
they share.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hubbub.tenancy.events import Event, PlanChanged
from hubbub.tenancy.state import (
    Args,
    Invite,
    Member,
    TenantState,
    acting_member,
    invite_by_token,
)

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


def _actor_role(state: TenantState, args: Args) -> str | None:
    member = state.members.get(str(args.get("actor")))
    return member.role if member else None


def _get(state: TenantState | None, args: Args, now: datetime) -> Any:
    role = acting_member(state, args).role
    assert state is not None
    return tenant_view(state, role)


def _get_settings(state: TenantState | None, args: Args, now: datetime) -> Any:
    acting_member(state, args)
    assert state is not None
    return state.settings


def _authorize(state: TenantState | None, args: Args, now: datetime) -> Any:
    role = acting_member(state, args, str(args.get("minimum", "viewer"))).role
    assert state is not None
    return {"role": role, "plan": state.plan, "usage": dict(state.usage)}


def _members(state: TenantState | None, args: Args, now: datetime) -> Any:
    acting_member(state, args)
    assert state is not None
    return [member_view(m) for m in state.members.values()]


def _invites(state: TenantState | None, args: Args, now: datetime) -> Any:
    acting_member(state, args, "admin")
    assert state is not None
    return [invite_view(i, now) for i in state.invites.values()]


def _check_invite(state: TenantState | None, args: Args, now: datetime) -> Any:
    invite = invite_by_token(state, args, now)
    assert state is not None
    return {"tenant_id": state.id, "tenant_name": state.name, **invite_view(invite, now)}


_QUERIES: dict[str, Callable[[TenantState | None, Args, datetime], Any]] = {
    "get": _get,
    "get_settings": _get_settings,
    "authorize": _authorize,
    "members": _members,
    "invites": _invites,
    "check_invite": _check_invite,
}


def is_query(name: str) -> bool:
    """True for the read-only commands, answered by :func:`query`."""
    return name in _QUERIES


def query(state: TenantState | None, name: str, args: Args, now: datetime) -> Any:
    """The answer of read-only command ``name``; raises AppError to refuse it."""
    return _QUERIES[name](state, args, now)


def reply_for(name: str, state: TenantState, events: list[Event], args: Args, now: datetime) -> Any:
    """What a state-changing command answers, from the state after it."""
    if name in ("remove_member", "revoke_invite", "revoke_api_key"):
        return None
    if name == "create_api_key":
        return state.service_accounts[str(args["key_id"])].to_view()
    if name in ("change_role",):
        return member_view(state.members[str(args["user_id"])])
    if name in ("create_invite", "resend_invite"):
        invite_id = str(args.get("invite_id"))
        return invite_view(state.invites[invite_id], now)
    if name == "set_plan":
        changed = next((e for e in events if isinstance(e, PlanChanged)), None)
        previous = state.plan if changed is None else changed.previous
        return {"tenant_id": state.id, "plan": state.plan, "previous": previous}
    if name == "delete":
        return {"deleted_at": state.deleted_at, "purge_after": state.purge_after}
    if name == "put_settings":
        return state.settings
    if name == "record_usage":
        metric = str(args["metric"])
        return {"metric": metric, "value": state.usage.get(metric, 0)}
    if name == "accept_invite":
        role = state.members[str(args["user_id"])].role
        return tenant_view(state, role)
    return tenant_view(state, _actor_role(state, args))
