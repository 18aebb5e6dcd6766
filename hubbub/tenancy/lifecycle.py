"""The tenant itself: creation, profile, settings, deletion, restore, purge.

Pure rules (see :mod:`hubbub.tenancy.state`): each decider turns one
command into events or raises :class:`AppError`; each applier folds one
event into the state in place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from hubbub.errors import AppError
from hubbub.tenancy.authority import acting_member, owner_needed
from hubbub.tenancy.commands import (
    CreateTenant,
    DeleteTenant,
    PurgeTenant,
    PutSettings,
    RestoreTenant,
    UpdateTenant,
)
from hubbub.tenancy.events import (
    Event,
    MemberAdded,
    SettingsReplaced,
    TenantCreated,
    TenantDeleted,
    TenantPurged,
    TenantRestored,
    TenantUpdated,
)
from hubbub.tenancy.records import TenantState

__all__ = ["APPLIERS", "DECIDERS", "created"]


def _create(state: TenantState | None, command: CreateTenant, now: datetime) -> list[Event]:
    if state is not None:
        raise AppError("tenant_exists", "a tenant with this id already exists", status=409)
    c = command
    created = TenantCreated(
        c.tenant_id, c.name, c.slug, c.plan, c.timezone, c.locale, dict(c.settings), now
    )
    return [created, MemberAdded(c.actor, "owner", now)]


_UPDATABLE = ("name", "slug", "timezone", "locale")


def _update(state: TenantState | None, command: UpdateTenant, now: datetime) -> list[Event]:
    acting_member(state, command.actor, "admin")
    assert state is not None
    given = {k: v for k in _UPDATABLE if (v := getattr(command, k)) is not None}
    changes = {k: v for k, v in given.items() if v != getattr(state, k)}
    return [TenantUpdated(changes, state.slug, now)] if changes else []


def _put_settings(state: TenantState | None, command: PutSettings, now: datetime) -> list[Event]:
    acting_member(state, command.actor, "admin")
    return [SettingsReplaced(dict(command.settings), now)]


def _delete(state: TenantState | None, command: DeleteTenant, now: datetime) -> list[Event]:
    if acting_member(state, command.actor).role != "owner":
        raise owner_needed("delete the tenant")
    return [TenantDeleted(now, now + timedelta(days=command.grace_days))]


def _restore(state: TenantState | None, command: RestoreTenant, now: datetime) -> list[Event]:
    member = None if state is None else state.members.get(command.actor)
    if state is None or member is None:
        raise AppError.not_found("tenant")
    if state.deleted_at is None:
        raise AppError("tenant_not_deleted", "the tenant is not deleted", status=409)
    if member.role != "owner":
        raise owner_needed("restore the tenant")
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


def _purge(state: TenantState | None, command: PurgeTenant, now: datetime) -> list[Event]:
    """Purge a deleted tenant whose grace period is over (the gateways' sweep)."""
    if state is None:
        raise AppError.not_found("tenant")
    if state.deleted_at is None:
        raise AppError("tenant_not_deleted", "the tenant is not deleted", status=409)
    if not _purge_due(state, now):
        raise AppError("purge_not_due", "the tenant's grace period is not over", status=409)
    return [TenantPurged(state.id, now)]


DECIDERS: dict[type, Callable[[TenantState | None, Any, datetime], list[Event]]] = {
    CreateTenant: _create,
    UpdateTenant: _update,
    PutSettings: _put_settings,
    DeleteTenant: _delete,
    RestoreTenant: _restore,
    PurgeTenant: _purge,
}


def created(event: TenantCreated) -> TenantState:
    """The state of a tenant just created (no members yet: ``MemberAdded`` follows)."""
    e = event
    return TenantState(
        e.tenant_id, e.name, e.slug, e.plan, e.timezone, e.locale, e.at, e.at, settings=e.settings
    )


def _updated(state: TenantState, event: TenantUpdated) -> None:
    for name, value in event.changes.items():
        setattr(state, name, value)
    state.updated_at = event.at


def _settings_replaced(state: TenantState, event: SettingsReplaced) -> None:
    state.settings = event.settings
    state.updated_at = event.at


def _deleted(state: TenantState, event: TenantDeleted) -> None:
    state.deleted_at, state.purge_after = event.at, event.purge_after


def _restored(state: TenantState, event: TenantRestored) -> None:
    state.deleted_at = state.purge_after = None
    state.updated_at = event.at


APPLIERS: dict[type, Callable[[TenantState, Any], None]] = {
    TenantUpdated: _updated,
    SettingsReplaced: _settings_replaced,
    TenantDeleted: _deleted,
    TenantRestored: _restored,
}
