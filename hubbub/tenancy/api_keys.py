"""A tenant's API keys: creating and revoking their service accounts.

How a key acts once it exists (its role from its scopes) is
:mod:`hubbub.tenancy.service_accounts`; where it is presented,
``hubbub.identity.api_keys``. Pure rules, see :mod:`hubbub.tenancy.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from hubbub.errors import AppError
from hubbub.tenancy.authority import acting_member
from hubbub.tenancy.commands import CreateApiKey, RevokeApiKey
from hubbub.tenancy.events import ApiKeyCreated, ApiKeyRevoked, Event
from hubbub.tenancy.records import TenantState
from hubbub.tenancy.service_accounts import ServiceAccount, role_for_scopes

__all__ = ["APPLIERS", "DECIDERS", "revoke_keys_made_by"]


def _create_api_key(state: TenantState | None, command: CreateApiKey, now: datetime) -> list[Event]:
    actor = acting_member(state, command.actor, "admin")
    scopes = tuple(command.scopes)
    try:
        role_for_scopes(scopes)
    except ValueError as exc:
        raise AppError("validation_failed", str(exc), status=422) from None
    expires_at = now + timedelta(days=command.expires_in_days)
    c = command
    account = ServiceAccount(c.key_id, c.name, scopes, c.prefix, actor.user_id, now, expires_at)
    return [ApiKeyCreated(account, command.key_hash)]


def _revoke_api_key(state: TenantState | None, command: RevokeApiKey, now: datetime) -> list[Event]:
    acting_member(state, command.actor, "admin")
    assert state is not None
    account = state.service_accounts.get(command.key_id)
    if account is None:
        raise AppError.not_found("API key")
    return [] if account.revoked_at is not None else [ApiKeyRevoked(account.id, now)]


def revoke_keys_made_by(state: TenantState, user_id: str, now: datetime) -> list[Event]:
    """Revoke the live keys ``user_id`` made: a key belongs to the tenant, but acts
    only while the admin who made it still could make it (docs/auth.md)."""
    return [
        ApiKeyRevoked(account.id, now)
        for account in state.service_accounts.values()
        if account.created_by == user_id and account.revoked_at is None
    ]


DECIDERS: dict[type, Callable[[TenantState | None, Any, datetime], list[Event]]] = {
    CreateApiKey: _create_api_key,
    RevokeApiKey: _revoke_api_key,
}


def _created(state: TenantState, event: ApiKeyCreated) -> None:
    state.service_accounts[event.account.id] = event.account


def _revoked(state: TenantState, event: ApiKeyRevoked) -> None:
    state.service_accounts[event.key_id].revoked_at = event.at


APPLIERS: dict[type, Callable[[TenantState, Any], None]] = {
    ApiKeyCreated: _created,
    ApiKeyRevoked: _revoked,
}
