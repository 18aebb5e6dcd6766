"""The events of a tenant: what its commands decide, and its entity persists.

Pure data, decided by :func:`hubbub.tenancy.state.decide` and folded into
the state by :func:`hubbub.tenancy.state.apply`; the tenant entity
(:mod:`hubbub.tenancy.entity`) turns each into SQL writes and, for the
``published`` ones, into ``tenant:*`` events on the tenant's channel. The
wire view of a published event is written here, once, beside it: its
``wire_name`` and :meth:`Event.payload` (docs/events.md lists them); the
entity adds ``tenant_id`` and ``seq``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from hubbub.tenancy.records import Invite
from hubbub.tenancy.roles import rank
from hubbub.tenancy.service_accounts import ServiceAccount

__all__ = [
    "ApiKeyCreated",
    "ApiKeyRevoked",
    "Event",
    "InviteAccepted",
    "InviteCreated",
    "InviteReissued",
    "InviteRevoked",
    "MemberAdded",
    "MemberRemoved",
    "MemberRoleChanged",
    "PlanChanged",
    "SettingsReplaced",
    "TenantCreated",
    "TenantDeleted",
    "TenantPurged",
    "TenantRestored",
    "TenantUpdated",
    "UsageRecorded",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of tenant events; ``published`` ones go to the tenant's channel
    as ``wire_name`` with :meth:`payload`, and advance the tenant's ``seq``."""

    published: ClassVar[bool] = True
    wire_name: ClassVar[str] = ""

    def payload(self) -> dict[str, Any]:
        """The event's own fields on the wire (besides ``tenant_id`` and ``seq``)."""
        return {}

    def access_revoked(self) -> dict[str, Any] | None:
        """The payload of ``tenant:access_revoked`` (besides ``tenant_id``) when
        the event takes someone out of the tenant, so every gateway drops
        their sockets at once; None when it takes no one out."""
        return None

    def role_lowered(self) -> dict[str, Any] | None:
        """The payload of ``tenant:role_lowered`` (besides ``tenant_id``) when the
        event lowers someone's role, so every gateway ends what they may no
        longer follow; None otherwise."""
        return None

    def revoked_key(self) -> str | None:
        """The id of the API key the event revokes, whose sockets every gateway drops."""
        return None


@dataclass(frozen=True, slots=True)
class TenantCreated(Event):
    tenant_id: str
    name: str
    slug: str
    plan: str
    timezone: str
    locale: str
    settings: dict[str, Any]
    at: datetime
    published: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class TenantUpdated(Event):
    changes: dict[str, str]
    previous_slug: str
    at: datetime
    wire_name: ClassVar[str] = "tenant:updated"

    def payload(self) -> dict[str, Any]:
        return {"changes": self.changes}


@dataclass(frozen=True, slots=True)
class SettingsReplaced(Event):
    settings: dict[str, Any]
    at: datetime
    wire_name: ClassVar[str] = "tenant:settings_updated"


@dataclass(frozen=True, slots=True)
class TenantDeleted(Event):
    at: datetime
    purge_after: datetime
    wire_name: ClassVar[str] = "tenant:deleted"

    def payload(self) -> dict[str, Any]:
        return {"purge_after": self.purge_after.isoformat()}

    def access_revoked(self) -> dict[str, Any] | None:
        return {"user_id": None}  # everyone


@dataclass(frozen=True, slots=True)
class TenantRestored(Event):
    at: datetime
    wire_name: ClassVar[str] = "tenant:restored"


@dataclass(frozen=True, slots=True)
class TenantPurged(Event):
    """The grace period is over: every row of the tenant goes, the state too."""

    tenant_id: str
    at: datetime
    published: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class PlanChanged(Event):
    plan: str
    previous: str
    at: datetime
    by: str | None = None  # the staff account that changed it (audited); None: server code
    reason: str | None = None
    wire_name: ClassVar[str] = "tenant:plan_changed"

    def payload(self) -> dict[str, Any]:
        return {"plan": self.plan, "previous": self.previous}


@dataclass(frozen=True, slots=True)
class MemberAdded(Event):
    user_id: str
    role: str
    at: datetime
    wire_name: ClassVar[str] = "tenant:member_added"

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "role": self.role}


@dataclass(frozen=True, slots=True)
class MemberRoleChanged(Event):
    user_id: str
    role: str
    previous: str
    wire_name: ClassVar[str] = "tenant:member_role_changed"

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "role": self.role, "previous": self.previous}

    def role_lowered(self) -> dict[str, Any] | None:
        if rank(self.role) >= rank(self.previous):
            return None
        return {"user_id": self.user_id, "role": self.role}


@dataclass(frozen=True, slots=True)
class MemberRemoved(Event):
    user_id: str
    role: str
    left: bool  # True when the member removed themselves
    wire_name: ClassVar[str] = "tenant:member_removed"

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "left": self.left}

    def access_revoked(self) -> dict[str, Any] | None:
        return {"user_id": self.user_id}


@dataclass(frozen=True, slots=True)
class InviteCreated(Event):
    invite: Invite
    published: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class InviteReissued(Event):
    invite_id: str
    token_hash: str
    expires_at: datetime
    published: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class InviteRevoked(Event):
    invite_id: str
    at: datetime
    published: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class InviteAccepted(Event):
    invite_id: str
    user_id: str
    at: datetime
    published: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class UsageRecorded(Event):
    metric: str
    value: int
    at: datetime
    published: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class ApiKeyCreated(Event):
    account: ServiceAccount
    key_hash: str  # hex SHA-256 of the key
    published: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class ApiKeyRevoked(Event):
    key_id: str
    at: datetime
    published: ClassVar[bool] = False

    def revoked_key(self) -> str | None:
        return self.key_id
