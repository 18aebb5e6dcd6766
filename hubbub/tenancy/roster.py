"""A tenant's roster: members joining, changing role, leaving or removed.

Only owners grant, take or remove the owner role; the last owner can
neither leave nor be demoted. Joining happens by creating the tenant
(:mod:`hubbub.tenancy.lifecycle`) or accepting an invite
(:mod:`hubbub.tenancy.invites`), whose room :func:`check_room` checks
against the plan's ``max_members``. Pure rules, see :mod:`hubbub.tenancy.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hubbub.errors import AppError
from hubbub.tenancy.api_keys import revoke_keys_made_by
from hubbub.tenancy.authority import (
    acting_member,
    check_role,
    forbidden,
    last_owner,
    owner_needed,
)
from hubbub.tenancy.commands import ChangeRole, MemberLimits, RemoveMember
from hubbub.tenancy.events import Event, MemberAdded, MemberRemoved, MemberRoleChanged
from hubbub.tenancy.records import Member, TenantState
from hubbub.tenancy.roles import at_least

__all__ = ["APPLIERS", "DECIDERS", "check_room"]


def _change_role(state: TenantState | None, command: ChangeRole, now: datetime) -> list[Event]:
    actor = acting_member(state, command.actor, "admin")
    assert state is not None
    target = state.members.get(command.user_id)
    if target is None:
        raise AppError.not_found("member")
    role = check_role(command.role)
    if role == target.role:
        return []
    if "owner" in (role, target.role) and actor.role != "owner":
        raise owner_needed("grant or take the owner role")
    if target.role == "owner" and state.owners() == 1:
        raise last_owner("be demoted")
    changed: list[Event] = [MemberRoleChanged(target.user_id, role, target.role)]
    if not at_least(role, "admin"):
        changed += revoke_keys_made_by(state, target.user_id, now)
    return changed


def _remove_member(state: TenantState | None, command: RemoveMember, now: datetime) -> list[Event]:
    actor = acting_member(state, command.actor)
    assert state is not None
    target = state.members.get(command.user_id)
    if target is None:
        raise AppError.not_found("member")
    leaving = target.user_id == actor.user_id
    if not leaving and not at_least(actor.role, "admin"):
        raise forbidden("removing another member needs the admin role or higher")
    if target.role == "owner" and not leaving and actor.role != "owner":
        raise owner_needed("remove an owner")
    if target.role == "owner" and state.owners() == 1:
        raise last_owner("leave the tenant")
    removed = MemberRemoved(target.user_id, target.role, leaving)
    return [removed, *revoke_keys_made_by(state, target.user_id, now)]


def check_room(state: TenantState, limits: MemberLimits, pending: int) -> None:
    """402 ``plan_limit_reached`` when members plus ``pending`` fill the plan."""
    maximum = limits.get(state.plan)
    if maximum is not None and len(state.members) + pending >= int(maximum):
        raise AppError(
            "plan_limit_reached",
            f"the {state.plan!r} plan allows {maximum} members (invites pending included)",
            status=402,
            extra={"limit": "max_members", "max": int(maximum), "plan": state.plan},
        )


DECIDERS: dict[type, Callable[[TenantState | None, Any, datetime], list[Event]]] = {
    ChangeRole: _change_role,
    RemoveMember: _remove_member,
}


def _added(state: TenantState, event: MemberAdded) -> None:
    state.members[event.user_id] = Member(event.user_id, event.role, event.at)


def _role_changed(state: TenantState, event: MemberRoleChanged) -> None:
    state.members[event.user_id].role = event.role


def _removed(state: TenantState, event: MemberRemoved) -> None:
    del state.members[event.user_id]


APPLIERS: dict[type, Callable[[TenantState, Any], None]] = {
    MemberAdded: _added,
    MemberRoleChanged: _role_changed,
    MemberRemoved: _removed,
}
