"""The tenant entity: one tenant's profile, plan, roster, invites, usage and API keys.

The rules live in :mod:`hubbub.tenancy.state` (pure); this module loads the
state from Postgres, turns decided events into SQL writes (committed by the
shard's group commit) and into tenant events for the bus, published after
commit on channel ``tenant:{id}`` — and, for a member removed or a tenant
deleted, on the global channel ``tenant-access`` that every gateway
listens to, so sockets leave the tenant at once (``hubbub.tenancy.eviction``).

The entity key is the tenant id; every command runs in that tenant's
row-level-security scope (``Command.tenant_id`` = the key).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from hubbub.actors.command import Command
from hubbub.actors.entity import Decision, Entity, Publication, Write
from hubbub.actors.untyped import Untyped
from hubbub.errors import AppError
from hubbub.identity.staff import AUDIT_INSERT, audit_row
from hubbub.tenancy import state as rules
from hubbub.tenancy import views
from hubbub.tenancy.service_accounts import ServiceAccount
from hubbub.tenancy.state import Invite, Member, TenantState

__all__ = ["ACCESS_CHANNEL", "TenantEntity", "channel"]

#: Global bus topic: ``tenant:access_revoked {tenant_id, user_id}`` (user_id
#: None: everyone, the tenant was deleted).
ACCESS_CHANNEL = "tenant-access"


def channel(tenant_id: str) -> str:
    """The bus topic of a tenant's events."""
    return f"tenant:{tenant_id}"


_LOAD_TENANTS = "SELECT * FROM tenants WHERE id = ANY($1::uuid[])"
_LOAD_MEMBERS = "SELECT * FROM tenant_members WHERE tenant_id = ANY($1::uuid[])"
_LOAD_INVITES = "SELECT * FROM tenant_invites WHERE tenant_id = ANY($1::uuid[])"
_LOAD_USAGE = "SELECT * FROM tenant_usage WHERE tenant_id = ANY($1::uuid[])"
_LOAD_API_KEYS = """SELECT id, tenant_id, name, scopes, prefix, created_by, created_at, expires_at,
  revoked_at FROM api_keys WHERE tenant_id = ANY($1::uuid[])"""


class TenantEntity(Entity):
    """A tenant, hosted by the ``tenant`` shards.

    Owns: the tenant's name, slug, plan, timezone, locale, settings, event
    seq, member roster, invites, usage counters and API keys (their service
    accounts; gateways only stamp ``last_used_at``). Concurrency: the shard
    runs its commands one at a time; ``handle`` never awaits. Durability:
    every change is a Write in the shard's group commit; replies and events
    follow the commit. Failure: a failed commit drops the entity and the
    next command reloads it from Postgres.
    """

    kind = "tenant"
    commands = Untyped
    state: TenantState | None

    @classmethod
    async def load(cls, conn: asyncpg.Connection, keys: list[str]) -> dict[str, Any]:
        tenants = {str(r["id"]): _tenant(r) for r in await conn.fetch(_LOAD_TENANTS, keys)}
        for row in await conn.fetch(_LOAD_MEMBERS, keys):
            member = Member(str(row["user_id"]), row["role"], row["joined_at"])
            tenants[str(row["tenant_id"])].members[member.user_id] = member
        for row in await conn.fetch(_LOAD_INVITES, keys):
            tenants[str(row["tenant_id"])].invites[str(row["id"])] = _invite(row)
        for row in await conn.fetch(_LOAD_USAGE, keys):
            tenants[str(row["tenant_id"])].usage[row["metric"]] = row["value"]
        for row in await conn.fetch(_LOAD_API_KEYS, keys):
            account = _service_account(row)
            tenants[str(row["tenant_id"])].service_accounts[account.id] = account
        return tenants

    def handle(self, command: Command, now: datetime) -> Decision:
        if views.is_query(command.body.name):
            return Decision(
                reply=views.query(self.state, command.body.name, command.body.args, now)
            )
        if command.body.name == "create" and command.body.args.get("tenant_id") != self.key:
            raise AppError("validation_failed", "tenant_id must be the entity key", status=422)
        events = rules.decide(self.state, command.body.name, command.body.args, now)
        state, writes, publications = self.state, [], []
        for event in events:
            previous, state = state, rules.apply(state, event)
            writes.extend(_writes(state, event, previous))
            publications.extend(_publications(state, event))
        if any(event.published for event in events):
            assert state is not None
            writes.append(Write(_SET_SEQ, (state.id, state.seq)))
        self.state = state
        if state is None:  # purged: every row is gone, the entity knows nothing more
            return Decision(reply=None, writes=writes)
        reply = views.reply_for(command.body.name, state, events, command.body.args, now)
        return Decision(reply=reply, writes=writes, publications=publications)


def _tenant(row: asyncpg.Record) -> TenantState:
    return TenantState(
        id=str(row["id"]),
        name=row["name"],
        slug=row["slug"],
        plan=row["plan"],
        timezone=row["timezone"],
        locale=row["locale"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        settings=dict(row["settings"]),
        seq=row["seq"],
        deleted_at=row["deleted_at"],
        purge_after=row["purge_after"],
    )


def _service_account(row: asyncpg.Record) -> ServiceAccount:
    return ServiceAccount(
        id=str(row["id"]),
        name=row["name"],
        scopes=tuple(row["scopes"]),
        prefix=row["prefix"],
        created_by=str(row["created_by"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def _invite(row: asyncpg.Record) -> Invite:
    return Invite(
        id=str(row["id"]),
        email=row["email"],
        role=row["role"],
        token_hash=bytes(row["token_hash"]).hex(),
        invited_by=str(row["invited_by"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        accepted_at=row["accepted_at"],
        accepted_by=None if row["accepted_by"] is None else str(row["accepted_by"]),
        revoked_at=row["revoked_at"],
    )


# -- writes ---------------------------------------------------------------

_SET_SEQ = "UPDATE tenants SET seq = $2 WHERE id = $1"
_INSERT_TENANT = """INSERT INTO tenants (id, tenant_id, name, slug, plan, timezone, locale,
  settings, created_at, updated_at) VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $8)"""
_UPDATE_PROFILE = """UPDATE tenants SET name = $2, slug = $3, timezone = $4, locale = $5,
  updated_at = $6 WHERE id = $1"""
_RELEASE_SLUG = "DELETE FROM tenant_slugs WHERE slug = $1 AND tenant_id = $2"
_UPDATE_SETTINGS = "UPDATE tenants SET settings = $2, updated_at = $3 WHERE id = $1"
_UPDATE_DELETED = "UPDATE tenants SET deleted_at = $2, purge_after = $3 WHERE id = $1"
#: Every tenant-scoped row of the tenant, in its own scope (migration 0007).
_PURGE_TENANT = "SELECT hubbub_purge_tenant($1)"
_UPDATE_PLAN = "UPDATE tenants SET plan = $2, updated_at = $3 WHERE id = $1"
_INSERT_MEMBER = """INSERT INTO tenant_members (tenant_id, user_id, role, joined_at)
  VALUES ($1, $2, $3, $4)"""
_UPDATE_ROLE = "UPDATE tenant_members SET role = $3 WHERE tenant_id = $1 AND user_id = $2"
_DELETE_MEMBER = "DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2"
_INSERT_INVITE = """INSERT INTO tenant_invites (id, tenant_id, email, role, token_hash,
  invited_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""
_REISSUE_INVITE = "UPDATE tenant_invites SET token_hash = $2, expires_at = $3 WHERE id = $1"
_REVOKE_INVITE = "UPDATE tenant_invites SET revoked_at = $2 WHERE id = $1"
_ACCEPT_INVITE = "UPDATE tenant_invites SET accepted_at = $2, accepted_by = $3 WHERE id = $1"
_INSERT_API_KEY = """INSERT INTO api_keys (id, tenant_id, name, scopes, prefix, key_hash,
  created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"""
_REVOKE_API_KEY = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1"
_UPSERT_USAGE = """INSERT INTO tenant_usage (tenant_id, metric, value, updated_at)
  VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, metric)
  DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at"""


def _writes(state: Any, event: rules.Event, previous: TenantState | None) -> list[Write]:
    return _WRITERS[type(event)](state, event, previous)


def _profile(s: TenantState, e: rules.TenantUpdated, p: Any) -> list[Write]:
    update = Write(_UPDATE_PROFILE, (s.id, s.name, s.slug, s.timezone, s.locale, e.at))
    if s.slug == e.previous_slug:
        return [update]
    return [update, Write(_RELEASE_SLUG, (e.previous_slug, s.id))]


def _created(s: TenantState, e: rules.TenantCreated, p: Any) -> list[Write]:
    args = (s.id, s.name, s.slug, s.plan, s.timezone, s.locale, s.settings, e.at)
    return [Write(_INSERT_TENANT, args)]


def _invited(s: TenantState, e: rules.InviteCreated, p: Any) -> list[Write]:
    i = e.invite
    args = (
        i.id,
        s.id,
        i.email,
        i.role,
        bytes.fromhex(i.token_hash),
        i.invited_by,
        i.created_at,
        i.expires_at,
    )
    return [Write(_INSERT_INVITE, args)]


def _api_key_created(s: TenantState, e: rules.ApiKeyCreated, p: Any) -> list[Write]:
    a = e.account
    args = (
        a.id,
        s.id,
        a.name,
        list(a.scopes),
        a.prefix,
        bytes.fromhex(e.key_hash),
        a.created_by,
        a.created_at,
        a.expires_at,
    )
    return [Write(_INSERT_API_KEY, args)]


def _plan_changed(s: TenantState, e: rules.PlanChanged, p: Any) -> list[Write]:
    """The plan, and the audit row of a staff change in the same commit."""
    writes = [Write(_UPDATE_PLAN, (s.id, e.plan, e.at))]
    if e.by is not None:
        row = audit_row(
            actor_id=e.by,
            action="set_plan",
            target_kind="tenant",
            target_id=s.id,
            before={"plan": e.previous},
            after={"plan": e.plan},
            reason=e.reason,
        )
        writes.append(Write(AUDIT_INSERT, row))
    return writes


_WRITERS: dict[type, Callable[[Any, Any, Any], list[Write]]] = {
    rules.TenantCreated: _created,
    rules.TenantUpdated: _profile,
    rules.SettingsReplaced: lambda s, e, p: [Write(_UPDATE_SETTINGS, (s.id, s.settings, e.at))],
    rules.TenantDeleted: lambda s, e, p: [Write(_UPDATE_DELETED, (s.id, e.at, e.purge_after))],
    rules.TenantRestored: lambda s, e, p: [Write(_UPDATE_DELETED, (s.id, None, None))],
    rules.TenantPurged: lambda s, e, p: [Write(_PURGE_TENANT, (e.tenant_id,))],
    rules.PlanChanged: _plan_changed,
    rules.MemberAdded: lambda s, e, p: [Write(_INSERT_MEMBER, (s.id, e.user_id, e.role, e.at))],
    rules.MemberRoleChanged: lambda s, e, p: [Write(_UPDATE_ROLE, (s.id, e.user_id, e.role))],
    rules.MemberRemoved: lambda s, e, p: [Write(_DELETE_MEMBER, (s.id, e.user_id))],
    rules.InviteCreated: _invited,
    rules.InviteReissued: lambda s, e, p: [
        Write(_REISSUE_INVITE, (e.invite_id, bytes.fromhex(e.token_hash), e.expires_at))
    ],
    rules.InviteRevoked: lambda s, e, p: [Write(_REVOKE_INVITE, (e.invite_id, e.at))],
    rules.InviteAccepted: lambda s, e, p: [Write(_ACCEPT_INVITE, (e.invite_id, e.at, e.user_id))],
    rules.UsageRecorded: lambda s, e, p: [Write(_UPSERT_USAGE, (s.id, e.metric, e.value, e.at))],
    rules.ApiKeyCreated: _api_key_created,
    rules.ApiKeyRevoked: lambda s, e, p: [Write(_REVOKE_API_KEY, (e.key_id, e.at))],
}


# -- publications ---------------------------------------------------------

_EVENT_NAMES: dict[type, str] = {
    rules.TenantUpdated: "tenant:updated",
    rules.SettingsReplaced: "tenant:settings_updated",
    rules.TenantDeleted: "tenant:deleted",
    rules.TenantRestored: "tenant:restored",
    rules.PlanChanged: "tenant:plan_changed",
    rules.MemberAdded: "tenant:member_added",
    rules.MemberRoleChanged: "tenant:member_role_changed",
    rules.MemberRemoved: "tenant:member_removed",
}


def _publications(state: TenantState, event: rules.Event) -> list[Publication]:
    if not event.published:
        return []
    data = {"tenant_id": state.id, "seq": state.seq, **_payload(state, event)}
    found = [Publication(channel(state.id), _EVENT_NAMES[type(event)], data)]
    if isinstance(event, rules.MemberRemoved | rules.TenantDeleted):
        user_id = event.user_id if isinstance(event, rules.MemberRemoved) else None
        access = {"tenant_id": state.id, "user_id": user_id}
        found.append(Publication(ACCESS_CHANNEL, "tenant:access_revoked", access))
    return found


def _payload(state: TenantState, event: rules.Event) -> dict[str, Any]:
    if isinstance(event, rules.TenantUpdated):
        return {"changes": event.changes}
    if isinstance(event, rules.TenantDeleted):
        return {"purge_after": event.purge_after.isoformat()}
    if isinstance(event, rules.PlanChanged):
        return {"plan": event.plan, "previous": event.previous}
    if isinstance(event, rules.MemberAdded):
        return {"user_id": event.user_id, "role": event.role}
    if isinstance(event, rules.MemberRoleChanged):
        return {"user_id": event.user_id, "role": event.role, "previous": event.previous}
    if isinstance(event, rules.MemberRemoved):
        return {"user_id": event.user_id, "left": event.left}
    return {}
