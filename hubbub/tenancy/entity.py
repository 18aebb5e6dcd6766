"""The tenant entity: one tenant's profile, plan, roster, invites, usage and API keys.

The rules live in :mod:`hubbub.tenancy.state` (pure); this module loads the
state from Postgres, turns decided events into SQL writes (committed by the
shard's group commit) and into tenant events for the bus, published after
commit on channel ``tenant:{id}`` — and, for a member removed or a tenant
deleted, on the global channel ``tenant-access`` that every gateway
listens to, so sockets leave the tenant at once (``hubbub.tenancy.eviction``).
Each table the entity writes is one :class:`~hubbub.storage.table.Table`,
and each record has one mapping to its row and one from it.

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
from hubbub.errors import AppError
from hubbub.identity import AUDIT_INSERT, audit_row, key_revoked_message
from hubbub.storage.table import Table
from hubbub.tenancy import events as ev
from hubbub.tenancy import state as rules
from hubbub.tenancy import views
from hubbub.tenancy.commands import CreateTenant, TenantCommand
from hubbub.tenancy.records import Invite, Member, TenantState
from hubbub.tenancy.service_accounts import ServiceAccount

__all__ = ["ACCESS_CHANNEL", "TenantEntity", "channel"]

#: Global bus topic: ``tenant:access_revoked {tenant_id, user_id}`` (user_id
#: None: everyone, the tenant was deleted) and ``tenant:role_lowered
#: {tenant_id, user_id, role}``.
ACCESS_CHANNEL = "tenant-access"


def channel(tenant_id: str) -> str:
    """The bus topic of a tenant's events."""
    return f"tenant:{tenant_id}"


TENANTS = Table(
    "tenants",
    (
        "id",
        "tenant_id",
        "name",
        "slug",
        "plan",
        "timezone",
        "locale",
        "settings",
        "seq",
        "created_at",
        "updated_at",
        "deleted_at",
        "purge_after",
    ),
)
MEMBERS = Table(
    "tenant_members", ("tenant_id", "user_id", "role", "joined_at"), ("tenant_id", "user_id")
)
INVITES = Table(
    "tenant_invites",
    (
        "id",
        "tenant_id",
        "email",
        "role",
        "token_hash",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ),
)
USAGE = Table(
    "tenant_usage", ("tenant_id", "metric", "value", "updated_at"), ("tenant_id", "metric")
)
#: Without ``last_used_at``: the gateways stamp it, the entity never writes it.
API_KEYS = Table(
    "api_keys",
    (
        "id",
        "tenant_id",
        "name",
        "scopes",
        "prefix",
        "key_hash",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
    ),
)

_LOAD_TENANTS = "SELECT * FROM tenants WHERE id = ANY($1::uuid[])"
_LOAD_MEMBERS = "SELECT * FROM tenant_members WHERE tenant_id = ANY($1::uuid[])"
_LOAD_INVITES = "SELECT * FROM tenant_invites WHERE tenant_id = ANY($1::uuid[])"
_LOAD_USAGE = "SELECT * FROM tenant_usage WHERE tenant_id = ANY($1::uuid[])"
_API_KEY_FIELDS = ", ".join(c for c in API_KEYS.columns if c != "key_hash")
_LOAD_API_KEYS = f"SELECT {_API_KEY_FIELDS} FROM api_keys WHERE tenant_id = ANY($1::uuid[])"


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
    commands = TenantCommand
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
        body = command.body
        if views.is_query(body):
            return Decision(reply=views.query(self.state, body, now))
        if isinstance(body, CreateTenant) and body.tenant_id != self.key:
            raise AppError("validation_failed", "tenant_id must be the entity key", status=422)
        events = rules.decide(self.state, body, now)
        writes: list[Write] = []
        publications: list[Publication] = []
        for event in events:
            self.state = rules.apply(self.state, event)
            writes.extend(_WRITERS[type(event)](self.state, event))
            publications.extend(_publications(self.state, event))
        state = self.state
        if state is None:  # purged: every row is gone, the entity knows nothing more
            return Decision(reply=None, writes=writes)
        if any(event.published for event in events):
            writes.append(_update(TENANTS, _tenant_row(state), ("seq",)))
        reply = views.reply_for(state, body, events, now)
        return Decision(reply=reply, writes=writes, publications=publications)


# -- rows <-> records -------------------------------------------------------


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


def _tenant_row(s: TenantState) -> dict[str, Any]:
    return {
        "id": s.id,
        "tenant_id": s.id,
        "name": s.name,
        "slug": s.slug,
        "plan": s.plan,
        "timezone": s.timezone,
        "locale": s.locale,
        "settings": s.settings,
        "seq": s.seq,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "deleted_at": s.deleted_at,
        "purge_after": s.purge_after,
    }


def _member_row(tenant_id: str, m: Member) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "user_id": m.user_id, "role": m.role, "joined_at": m.joined_at}


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


def _invite_row(tenant_id: str, i: Invite) -> dict[str, Any]:
    return {
        "id": i.id,
        "tenant_id": tenant_id,
        "email": i.email,
        "role": i.role,
        "token_hash": bytes.fromhex(i.token_hash),
        "invited_by": i.invited_by,
        "created_at": i.created_at,
        "expires_at": i.expires_at,
        "accepted_at": i.accepted_at,
        "accepted_by": i.accepted_by,
        "revoked_at": i.revoked_at,
    }


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


def _api_key_row(tenant_id: str, a: ServiceAccount, key_hash: str | None) -> dict[str, Any]:
    """``key_hash`` (hex): only when the key is created; the state never holds it."""
    return {
        "id": a.id,
        "tenant_id": tenant_id,
        "name": a.name,
        "scopes": list(a.scopes),
        "prefix": a.prefix,
        "key_hash": None if key_hash is None else bytes.fromhex(key_hash),
        "created_by": a.created_by,
        "created_at": a.created_at,
        "expires_at": a.expires_at,
        "revoked_at": a.revoked_at,
    }


# -- writes -----------------------------------------------------------------

_RELEASE_SLUG = "DELETE FROM tenant_slugs WHERE slug = $1 AND tenant_id = $2"
#: Every tenant-scoped row of the tenant, in its own scope (migration 0007).
_PURGE_TENANT = "SELECT hubbub_purge_tenant($1)"
_DELETE_MEMBER = "DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2"
_UPSERT_USAGE = f"""{USAGE.insert()} ON CONFLICT (tenant_id, metric)
  DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at"""


def _insert(table: Table, row: dict[str, Any]) -> Write:
    return Write(table.insert(), table.row(row))


def _update(table: Table, row: dict[str, Any], columns: tuple[str, ...]) -> Write:
    return Write(table.update(columns), table.update_row(row, columns))


def _tenant_update(*columns: str) -> Callable[[TenantState, Any], list[Write]]:
    """The writer of an event that changes only ``columns`` of the tenant's row."""
    return lambda s, e: [_update(TENANTS, _tenant_row(s), columns)]


def _profile(s: TenantState, e: ev.TenantUpdated) -> list[Write]:
    columns = ("name", "slug", "timezone", "locale", "updated_at")
    update = _update(TENANTS, _tenant_row(s), columns)
    if s.slug == e.previous_slug:
        return [update]
    return [update, Write(_RELEASE_SLUG, (e.previous_slug, s.id))]


def _plan_changed(s: TenantState, e: ev.PlanChanged) -> list[Write]:
    """The plan, and the audit row of a staff change in the same commit."""
    writes = [_update(TENANTS, _tenant_row(s), ("plan", "updated_at"))]
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


def _member(s: TenantState, user_id: str) -> dict[str, Any]:
    return _member_row(s.id, s.members[user_id])


def _invite_of(s: TenantState, invite_id: str) -> dict[str, Any]:
    return _invite_row(s.id, s.invites[invite_id])


def _usage(s: TenantState, e: ev.UsageRecorded) -> list[Write]:
    row = {"tenant_id": s.id, "metric": e.metric, "value": e.value, "updated_at": e.at}
    return [Write(_UPSERT_USAGE, USAGE.row(row))]


def _api_key_revoked(s: TenantState, e: ev.ApiKeyRevoked) -> list[Write]:
    row = _api_key_row(s.id, s.service_accounts[e.key_id], None)
    return [_update(API_KEYS, row, ("revoked_at",))]


_WRITERS: dict[type, Callable[[Any, Any], list[Write]]] = {
    ev.TenantCreated: lambda s, e: [_insert(TENANTS, _tenant_row(s))],
    ev.TenantUpdated: _profile,
    ev.SettingsReplaced: _tenant_update("settings", "updated_at"),
    ev.TenantDeleted: _tenant_update("deleted_at", "purge_after"),
    ev.TenantRestored: _tenant_update("deleted_at", "purge_after"),
    ev.TenantPurged: lambda s, e: [Write(_PURGE_TENANT, (e.tenant_id,))],
    ev.PlanChanged: _plan_changed,
    ev.MemberAdded: lambda s, e: [_insert(MEMBERS, _member(s, e.user_id))],
    ev.MemberRoleChanged: lambda s, e: [_update(MEMBERS, _member(s, e.user_id), ("role",))],
    ev.MemberRemoved: lambda s, e: [Write(_DELETE_MEMBER, (s.id, e.user_id))],
    ev.InviteCreated: lambda s, e: [_insert(INVITES, _invite_of(s, e.invite.id))],
    ev.InviteReissued: lambda s, e: [
        _update(INVITES, _invite_of(s, e.invite_id), ("token_hash", "expires_at"))
    ],
    ev.InviteRevoked: lambda s, e: [_update(INVITES, _invite_of(s, e.invite_id), ("revoked_at",))],
    ev.InviteAccepted: lambda s, e: [
        _update(INVITES, _invite_of(s, e.invite_id), ("accepted_at", "accepted_by"))
    ],
    ev.UsageRecorded: _usage,
    ev.ApiKeyCreated: lambda s, e: [_insert(API_KEYS, _api_key_row(s.id, e.account, e.key_hash))],
    ev.ApiKeyRevoked: _api_key_revoked,
}


# -- publications -----------------------------------------------------------


def _publications(state: TenantState | None, event: ev.Event) -> list[Publication]:
    """The event on the tenant's channel, and on ``tenant-access`` if it takes
    someone out; the wire view is the event's own (:mod:`hubbub.tenancy.events`)."""
    key_id = event.revoked_key()
    if key_id is not None:
        return [Publication(*key_revoked_message(key_id))]
    if not event.published:
        return []
    assert state is not None
    data = {"tenant_id": state.id, "seq": state.seq, **event.payload()}
    found = [Publication(channel(state.id), event.wire_name, data)]
    revoked = event.access_revoked()
    if revoked is not None:
        access = {"tenant_id": state.id, **revoked}
        found.append(Publication(ACCESS_CHANNEL, "tenant:access_revoked", access))
    lowered = event.role_lowered()
    if lowered is not None:
        access = {"tenant_id": state.id, **lowered}
        found.append(Publication(ACCESS_CHANNEL, "tenant:role_lowered", access))
    return found
