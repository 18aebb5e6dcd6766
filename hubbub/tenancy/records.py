"""What a tenant entity holds in memory: the tenant, its members and invites.

Plain mutable records (``@dataclass(slots=True)``), changed in place and
only by :func:`hubbub.tenancy.state.apply` inside the tenant's entity, the
one writer. Their API keys are :class:`~hubbub.tenancy.service_accounts.ServiceAccount`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hubbub.tenancy.service_accounts import ServiceAccount

__all__ = ["Invite", "Member", "TenantState"]


@dataclass(slots=True)
class Member:
    user_id: str
    role: str
    joined_at: datetime


@dataclass(slots=True)
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


@dataclass(slots=True)
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
