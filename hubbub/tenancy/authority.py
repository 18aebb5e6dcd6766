"""Who may do what in a tenant: the acting member, and the refusals.

Pure, shared by every rule module: a user who is not a member — or a
tenant that does not exist or was deleted — gets 404, so a foreign id
reveals nothing; a member below the needed role gets 403.
"""

from __future__ import annotations

from hubbub.errors import AppError
from hubbub.tenancy.records import Member, TenantState
from hubbub.tenancy.roles import ROLES, at_least

__all__ = [
    "acting_member",
    "check_role",
    "forbidden",
    "last_owner",
    "live",
    "owner_needed",
]


def live(state: TenantState | None) -> TenantState:
    """The tenant, unless it does not exist or was deleted (404)."""
    if state is None or state.deleted_at is not None:
        raise AppError.not_found("tenant")
    return state


def acting_member(state: TenantState | None, actor: str, minimum: str = "viewer") -> Member:
    """The acting member with at least ``minimum``; 404 for a non-member."""
    tenant = live(state)
    member = tenant.members.get(actor) or _service_account(tenant, actor)
    if member is None:
        raise AppError.not_found("tenant")
    if not at_least(member.role, minimum):
        raise forbidden(f"this needs the {minimum} role or higher; you are {member.role}")
    return member


def _service_account(state: TenantState, actor: str) -> Member | None:
    """The acting API key's service account as a member, unless revoked.

    Expiry is checked where the key is presented (``hubbub.identity.api_keys``).
    """
    account = state.service_accounts.get(actor)
    if account is None or account.revoked_at is not None:
        return None
    return Member(account.id, account.role, account.created_at)


def forbidden(message: str) -> AppError:
    return AppError("insufficient_role", message, status=403)


def owner_needed(what: str) -> AppError:
    return AppError("owner_required", f"only an owner can {what}", status=403)


def last_owner(what: str) -> AppError:
    return AppError(
        "last_owner",
        f"the last owner cannot {what}; make another member an owner first",
        status=409,
    )


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`~hubbub.tenancy.roles.ROLES`; 422 otherwise."""
    if role not in ROLES:
        raise AppError("validation_failed", f"expected a role in {ROLES}, got {role!r}", 422)
    return role
