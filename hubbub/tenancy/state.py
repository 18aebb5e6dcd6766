"""A tenant's state and the pure rules that change it.

No I/O, no clock (``now`` is passed in), no Ray: :func:`decide` turns a
command into events (or raises an :class:`AppError`, changing nothing),
:func:`apply` folds an event into the state. The events are in
:mod:`hubbub.tenancy.events`; the read-only commands and the replies are in
:mod:`hubbub.tenancy.views`. The tenant entity (``hubbub.actors.tenant``)
persists and publishes what these decide.

Every command but ``create``, ``set_plan``, ``check_invite`` and
``accept_invite`` names its ``actor`` (a user id) and is authorised here,
against the roster this state owns: a user who is not a member — or a
tenant that does not exist or was deleted — gets 404, so a foreign id
reveals nothing; a member below the needed role gets 403.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hubbub.errors import AppError
from hubbub.tenancy.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    Event,
    InviteAccepted,
    InviteCreated,
    InviteReissued,
    InviteRevoked,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    PlanChanged,
    SettingsReplaced,
    TenantCreated,
    TenantDeleted,
    TenantPurged,
    TenantRestored,
    TenantUpdated,
    UsageRecorded,
)
from hubbub.tenancy.roles import ROLES, at_least
from hubbub.tenancy.service_accounts import ServiceAccount, role_for_scopes

__all__ = [
    "Args",
    "Invite",
    "Member",
    "TenantState",
    "acting_member",
    "apply",
    "decide",
    "invite_by_token",
]

Args = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    role: str
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class Invite:
    id: str
    email: str
    role: str
    token_hash: str  # hex SHA-256 of the token
    invited_by: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
    accepted_by: str | None = None
    revoked_at: datetime | None = None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.accepted_at is not None:
            return "accepted"
        return "expired" if now >= self.expires_at else "pending"


@dataclass(frozen=True, slots=True)
class TenantState:
    id: str
    name: str
    slug: str
    plan: str
    timezone: str
    locale: str
    created_at: datetime
    updated_at: datetime
    settings: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    invites: dict[str, Invite] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)  # API keys
    deleted_at: datetime | None = None
    purge_after: datetime | None = None

    def owners(self) -> int:
        return sum(1 for m in self.members.values() if m.role == "owner")


# -- authorisation --------------------------------------------------------


def _live(state: TenantState | None) -> TenantState:
    if state is None or state.deleted_at is not None:
        raise AppError.not_found("tenant")
    return state


def acting_member(state: TenantState | None, args: Args, minimum: str = "viewer") -> Member:
    """The acting member with at least ``minimum``; 404 for a non-member."""
    live = _live(state)
    member = live.members.get(str(args.get("actor"))) or _service_account(live, args)
    if member is None:
        raise AppError.not_found("tenant")
    if not at_least(member.role, minimum):
        raise _forbidden(f"this needs the {minimum} role or higher; you are {member.role}")
    return member


def _service_account(state: TenantState, args: Args) -> Member | None:
    """The acting API key's service account as a member, unless revoked.

    Expiry is checked where the key is presented (``hubbub.identity.api_keys``).
    """
    account = state.service_accounts.get(str(args.get("actor")))
    if account is None or account.revoked_at is not None:
        return None
    return Member(account.id, account.role, account.created_at)


def _forbidden(message: str) -> AppError:
    return AppError("insufficient_role", message, status=403)


def _owner_needed(what: str) -> AppError:
    return AppError("owner_required", f"only an owner can {what}", status=403)


def _last_owner(what: str) -> AppError:
    return AppError(
        "last_owner",
        f"the last owner cannot {what}; make another member an owner first",
        status=409,
    )


def _role(args: Args) -> str:
    role = args.get("role")
    if role not in ROLES:
        raise AppError("validation_failed", f"expected a role in {ROLES}, got {role!r}", 422)
    return str(role)


# -- deciding -------------------------------------------------------------


def _create(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    if state is not None:
        raise AppError("tenant_exists", "a tenant with this id already exists", status=409)
    created = TenantCreated(
        args["tenant_id"],
        args["name"],
        args["slug"],
        args["plan"],
        args["timezone"],
        args["locale"],
        dict(args.get("settings") or {}),
        now,
    )
    return [created, MemberAdded(str(args["actor"]), "owner", now)]


_UPDATABLE = ("name", "slug", "timezone", "locale")


def _update(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    acting_member(state, args, "admin")
    assert state is not None
    given = args.get("changes") or {}
    changes = {k: str(given[k]) for k in _UPDATABLE if k in given and given[k] != getattr(state, k)}
    return [TenantUpdated(changes, state.slug, now)] if changes else []


def _put_settings(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    acting_member(state, args, "admin")
    return [SettingsReplaced(dict(args.get("settings") or {}), now)]


def _delete(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    if acting_member(state, args).role != "owner":
        raise _owner_needed("delete the tenant")
    return [TenantDeleted(now, now + timedelta(days=float(args["grace_days"])))]


def _restore(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    member = None if state is None else state.members.get(str(args.get("actor")))
    if state is None or member is None:
        raise AppError.not_found("tenant")
    if state.deleted_at is None:
        raise AppError("tenant_not_deleted", "the tenant is not deleted", status=409)
    if member.role != "owner":
        raise _owner_needed("restore the tenant")
    if _purge_due(state, now):
        raise AppError(
            "restore_period_ended",
            f"the tenant can no longer be restored: its grace period ended at "
            f"{state.purge_after:%Y-%m-%dT%H:%M:%SZ} and it is being purged",
            status=410,
        )
    return [TenantRestored(now)]


def _purge_due(state: TenantState, now: datetime) -> bool:
    return state.purge_after is not None and now >= state.purge_after


def _purge(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    """Purge a deleted tenant whose grace period is over (the gateways' sweep)."""
    if state is None:
        raise AppError.not_found("tenant")
    if state.deleted_at is None:
        raise AppError("tenant_not_deleted", "the tenant is not deleted", status=409)
    if not _purge_due(state, now):
        raise AppError("purge_not_due", "the tenant's grace period is not over", status=409)
    return [TenantPurged(state.id, now)]


def _set_plan(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    live = _live(state)
    plan = str(args["plan"])
    if plan == live.plan:
        return []
    by, reason = args.get("by"), args.get("reason")
    return [PlanChanged(plan, live.plan, now, None if by is None else str(by), reason)]


def _change_role(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    actor = acting_member(state, args, "admin")
    assert state is not None
    target = state.members.get(str(args.get("user_id")))
    if target is None:
        raise AppError.not_found("member")
    role = _role(args)
    if role == target.role:
        return []
    if "owner" in (role, target.role) and actor.role != "owner":
        raise _owner_needed("grant or take the owner role")
    if target.role == "owner" and state.owners() == 1:
        raise _last_owner("be demoted")
    return [MemberRoleChanged(target.user_id, role, target.role)]


def _remove_member(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    actor = acting_member(state, args)
    assert state is not None
    target = state.members.get(str(args.get("user_id")))
    if target is None:
        raise AppError.not_found("member")
    leaving = target.user_id == actor.user_id
    if not leaving and not at_least(actor.role, "admin"):
        raise _forbidden("removing another member needs the admin role or higher")
    if target.role == "owner" and not leaving and actor.role != "owner":
        raise _owner_needed("remove an owner")
    if target.role == "owner" and state.owners() == 1:
        raise _last_owner("leave the tenant")
    return [MemberRemoved(target.user_id, target.role, leaving)]


def _check_room(state: TenantState, limits: Mapping[str, Any], pending: int) -> None:
    """402 ``plan_limit_reached`` when members plus ``pending`` fill the plan."""
    maximum = (limits or {}).get(state.plan)
    if maximum is not None and len(state.members) + pending >= int(maximum):
        raise AppError(
            "plan_limit_reached",
            f"the {state.plan!r} plan allows {maximum} members (invites pending included)",
            status=402,
            extra={"limit": "max_members", "max": int(maximum), "plan": state.plan},
        )


def _pending_invites(state: TenantState, now: datetime) -> list[Invite]:
    return [i for i in state.invites.values() if i.status(now) == "pending"]


def _create_invite(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    actor = acting_member(state, args, "admin")
    assert state is not None
    role, email = _role(args), str(args["email"])
    if role == "owner" and actor.role != "owner":
        raise _owner_needed("invite an owner")
    if args.get("existing_user_id") in state.members:
        raise AppError("already_member", f"{email} is already a member", status=409)
    pending = _pending_invites(state, now)
    if any(i.email.lower() == email.lower() for i in pending):
        raise AppError(
            "invite_pending", f"{email} already has a pending invite; resend it", status=409
        )
    _check_room(state, args.get("member_limits") or {}, len(pending))
    expires_at = now + timedelta(days=float(args["invite_days"]))
    invite = Invite(
        str(args["invite_id"]),
        email,
        role,
        str(args["token_hash"]),
        actor.user_id,
        now,
        expires_at,
    )
    return [InviteCreated(invite)]


def _managed_invite(state: TenantState | None, args: Args) -> Invite:
    acting_member(state, args, "admin")
    assert state is not None
    invite = state.invites.get(str(args.get("invite_id")))
    if invite is None:
        raise AppError.not_found("invite")
    if invite.accepted_at is not None:
        raise AppError("invite_already_used", "the invite was already accepted", status=409)
    return invite


def _resend_invite(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    invite = _managed_invite(state, args)
    if invite.revoked_at is not None:
        raise AppError("invite_revoked", "the invite was revoked; create a new one", status=409)
    expires_at = now + timedelta(days=float(args["invite_days"]))
    return [InviteReissued(invite.id, str(args["token_hash"]), expires_at)]


def _revoke_invite(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    invite = _managed_invite(state, args)
    return [] if invite.revoked_at is not None else [InviteRevoked(invite.id, now)]


def invite_by_token(state: TenantState | None, args: Args, now: datetime) -> Invite:
    """The pending invite of ``token_hash``; 400 unknown, 410 expired/used/revoked."""
    token_hash = str(args.get("token_hash"))
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


def _accept_invite(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    invite = invite_by_token(state, args, now)
    assert state is not None
    user_id = str(args["user_id"])
    if str(args.get("email", "")).lower() != invite.email.lower():
        raise AppError(
            "invite_email_mismatch",
            "the invite was sent to another email address; log in with that account",
            status=403,
        )
    if user_id in state.members:
        raise AppError("already_member", "you are already a member of this tenant", status=409)
    others = [i for i in _pending_invites(state, now) if i.id != invite.id]
    _check_room(state, args.get("member_limits") or {}, len(others))
    return [InviteAccepted(invite.id, user_id, now), MemberAdded(user_id, invite.role, now)]


def _record_usage(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    acting_member(state, args)
    assert state is not None
    metric = str(args["metric"])
    return [UsageRecorded(metric, state.usage.get(metric, 0) + int(args.get("amount", 1)), now)]


def _create_api_key(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    actor = acting_member(state, args, "admin")
    scopes = tuple(str(scope) for scope in args["scopes"])
    try:
        role_for_scopes(scopes)
    except ValueError as exc:
        raise AppError("validation_failed", str(exc), status=422) from None
    account = ServiceAccount(
        str(args["key_id"]),
        str(args["name"]),
        scopes,
        str(args["prefix"]),
        actor.user_id,
        now,
        now + timedelta(days=float(args["expires_in_days"])),
    )
    return [ApiKeyCreated(account, str(args["key_hash"]))]


def _revoke_api_key(state: TenantState | None, args: Args, now: datetime) -> list[Event]:
    acting_member(state, args, "admin")
    assert state is not None
    account = state.service_accounts.get(str(args.get("key_id")))
    if account is None:
        raise AppError.not_found("API key")
    return [] if account.revoked_at is not None else [ApiKeyRevoked(account.id, now)]


_DECIDERS: dict[str, Callable[[TenantState | None, Args, datetime], list[Event]]] = {
    "create": _create,
    "update": _update,
    "put_settings": _put_settings,
    "delete": _delete,
    "restore": _restore,
    "purge": _purge,
    "set_plan": _set_plan,
    "change_role": _change_role,
    "remove_member": _remove_member,
    "create_invite": _create_invite,
    "resend_invite": _resend_invite,
    "revoke_invite": _revoke_invite,
    "accept_invite": _accept_invite,
    "record_usage": _record_usage,
    "create_api_key": _create_api_key,
    "revoke_api_key": _revoke_api_key,
}


def decide(state: TenantState | None, name: str, args: Args, now: datetime) -> list[Event]:
    """The events of command ``name``; raises AppError to refuse it."""
    decider = _DECIDERS.get(name)
    if decider is None:
        raise AppError("unknown_command", f"tenant has no command {name!r}")
    return decider(state, args, now)


# -- applying -------------------------------------------------------------


def apply(state: TenantState | None, event: Event) -> TenantState | None:
    """The state after ``event`` (None once purged); published events advance ``seq``."""
    if isinstance(event, TenantPurged):
        return None
    if isinstance(event, TenantCreated):
        new = TenantState(
            event.tenant_id,
            event.name,
            event.slug,
            event.plan,
            event.timezone,
            event.locale,
            event.at,
            event.at,
            settings=event.settings,
        )
    else:
        assert state is not None, f"{type(event).__name__} needs an existing tenant"
        new = _APPLIERS[type(event)](state, event)
    return replace(new, seq=new.seq + 1) if event.published else new


def _with_member(state: TenantState, member: Member) -> TenantState:
    return replace(state, members={**state.members, member.user_id: member})


def _with_service_account(state: TenantState, account: ServiceAccount) -> TenantState:
    return replace(state, service_accounts={**state.service_accounts, account.id: account})


def _with_invite(state: TenantState, invite: Invite) -> TenantState:
    return replace(state, invites={**state.invites, invite.id: invite})


def _without_member(state: TenantState, e: Any) -> TenantState:
    return replace(state, members={k: v for k, v in state.members.items() if k != e.user_id})


def _role_changed(state: TenantState, e: Any) -> TenantState:
    return _with_member(state, replace(state.members[e.user_id], role=e.role))


def _reissued(state: TenantState, e: Any) -> TenantState:
    invite = replace(state.invites[e.invite_id], token_hash=e.token_hash, expires_at=e.expires_at)
    return _with_invite(state, invite)


def _accepted(state: TenantState, e: Any) -> TenantState:
    invite = replace(state.invites[e.invite_id], accepted_at=e.at, accepted_by=e.user_id)
    return _with_invite(state, invite)


_APPLIERS: dict[type, Callable[[TenantState, Any], TenantState]] = {
    TenantUpdated: lambda s, e: replace(s, **e.changes, updated_at=e.at),
    SettingsReplaced: lambda s, e: replace(s, settings=e.settings, updated_at=e.at),
    TenantDeleted: lambda s, e: replace(s, deleted_at=e.at, purge_after=e.purge_after),
    TenantRestored: lambda s, e: replace(s, deleted_at=None, purge_after=None, updated_at=e.at),
    PlanChanged: lambda s, e: replace(s, plan=e.plan, updated_at=e.at),
    MemberAdded: lambda s, e: _with_member(s, Member(e.user_id, e.role, e.at)),
    MemberRoleChanged: _role_changed,
    MemberRemoved: _without_member,
    InviteCreated: lambda s, e: _with_invite(s, e.invite),
    InviteReissued: _reissued,
    InviteRevoked: lambda s, e: _with_invite(s, replace(s.invites[e.invite_id], revoked_at=e.at)),
    InviteAccepted: _accepted,
    UsageRecorded: lambda s, e: replace(s, usage={**s.usage, e.metric: e.value}),
    ApiKeyCreated: lambda s, e: _with_service_account(s, e.account),
    ApiKeyRevoked: lambda s, e: _with_service_account(
        s, replace(s.service_accounts[e.key_id], revoked_at=e.at)
    ),
}
