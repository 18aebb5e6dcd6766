"""The events of a tenant: what its commands decide, and its entity persists.

Pure data, decided by :func:`hubbub.tenancy.state.decide` and folded into
the state by :func:`hubbub.tenancy.state.apply`; the tenant entity
(``hubbub.actors.tenant``) turns each into SQL writes and, for the
``published`` ones, into ``tenant:*`` events on the tenant's channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from hubbub.tenancy.service_accounts import ServiceAccount

if TYPE_CHECKING:
    from hubbub.tenancy.state import Invite

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
    """Base of tenant events; ``published`` ones go to the tenant's channel."""

    published: ClassVar[bool] = True


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


@dataclass(frozen=True, slots=True)
class SettingsReplaced(Event):
    settings: dict[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class TenantDeleted(Event):
    at: datetime
    purge_after: datetime


@dataclass(frozen=True, slots=True)
class TenantRestored(Event):
    at: datetime


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


@dataclass(frozen=True, slots=True)
class MemberAdded(Event):
    user_id: str
    role: str
    at: datetime


@dataclass(frozen=True, slots=True)
class MemberRoleChanged(Event):
    user_id: str
    role: str
    previous: str


@dataclass(frozen=True, slots=True)
class MemberRemoved(Event):
    user_id: str
    role: str
    left: bool  # True when the member removed themselves


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
