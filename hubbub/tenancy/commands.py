"""The commands of a tenant entity: one frozen typed body per command.

These are tenancy's public vocabulary: the HTTP routes, the socket
handlers, the provisioning job and other capabilities build them and send
them through :mod:`hubbub.tenancy.access` (or a router of their own); the
tenant entity (:mod:`hubbub.tenancy.entity`) decodes each against
:data:`TenantCommand` and dispatches on its type. A field of the wrong type
is answered ``422 validation_failed`` naming it, before any rule runs.

Every command but :class:`SetPlan`, :class:`PurgeTenant`,
:class:`CheckInvite` and :class:`AcceptInvite` is :class:`Acted`: it names
the user (or API key) acting, and the entity authorises that actor against
its roster. Ids are strings (UUIDs as text),
as the entity keys its roster by them. Pure data: no I/O.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hubbub.actors.command import CommandBody

__all__ = [
    "AcceptInvite",
    "Acted",
    "Authorize",
    "ChangeRole",
    "CheckInvite",
    "CreateApiKey",
    "CreateInvite",
    "CreateTenant",
    "DeleteTenant",
    "GetSettings",
    "GetTenant",
    "ListInvites",
    "ListMembers",
    "MemberLimits",
    "PurgeTenant",
    "PutSettings",
    "RecordUsage",
    "RemoveMember",
    "ResendInvite",
    "RestoreTenant",
    "RevokeApiKey",
    "RevokeInvite",
    "SetPlan",
    "TenantCommand",
    "TenantQuery",
    "UpdateTenant",
]

#: ``{plan: max_members}`` of the plan catalog (None: no limit), decided against.
MemberLimits = dict[str, int | None]


class Acted(CommandBody, frozen=True):
    """A command on behalf of ``actor``: a member's user id or an API key's id."""

    actor: str


# -- the tenant itself ------------------------------------------------------


class CreateTenant(Acted, frozen=True):
    """Create the tenant ``tenant_id`` (the entity key); ``actor`` becomes its owner."""

    tenant_id: str
    name: str
    slug: str
    plan: str
    timezone: str
    locale: str
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class UpdateTenant(Acted, frozen=True):
    """Change the profile fields given (admin); None leaves a field as it is."""

    name: str | None = None
    slug: str | None = None
    timezone: str | None = None
    locale: str | None = None


class PutSettings(Acted, frozen=True):
    """Replace the tenant's settings (admin)."""

    settings: dict[str, Any]


class DeleteTenant(Acted, frozen=True):
    """Delete the tenant (owner), restorable for ``grace_days``."""

    grace_days: float


class RestoreTenant(Acted, frozen=True):
    """Undo a deletion within its grace period (owner)."""


class PurgeTenant(CommandBody, frozen=True):
    """Drop every row of a deleted tenant whose grace period is over (the sweep)."""


class SetPlan(CommandBody, frozen=True):
    """Move the tenant to ``plan``; ``by``: the staff account doing it (audited)."""

    plan: str
    by: str | None = None
    reason: str | None = None


class RecordUsage(Acted, frozen=True):
    """Count ``amount`` uses of metered feature ``metric``."""

    metric: str
    amount: int = 1


# -- the roster -------------------------------------------------------------


class ChangeRole(Acted, frozen=True):
    """Give member ``user_id`` the role ``role`` (admin; owner role: owners)."""

    user_id: str
    role: str


class RemoveMember(Acted, frozen=True):
    """Remove member ``user_id`` (admin), or leave (the actor's own id)."""

    user_id: str


# -- invites ----------------------------------------------------------------


class CreateInvite(Acted, frozen=True):
    """Invite ``email`` as ``role``, valid for ``invite_days`` (admin).

    ``existing_user_id``: the account that already has this email, if any.
    """

    invite_id: str
    email: str
    role: str
    token_hash: str  # hex SHA-256 of the token
    invite_days: float
    member_limits: MemberLimits = msgspec.field(default_factory=dict)
    existing_user_id: str | None = None


class ResendInvite(Acted, frozen=True):
    """A new token (its hash) and lifetime for invite ``invite_id`` (admin)."""

    invite_id: str
    token_hash: str
    invite_days: float


class RevokeInvite(Acted, frozen=True):
    """Revoke invite ``invite_id`` (admin)."""

    invite_id: str


class AcceptInvite(CommandBody, frozen=True):
    """Account ``user_id`` (with ``email``) joins through the invite of ``token_hash``."""

    token_hash: str
    user_id: str
    email: str
    member_limits: MemberLimits = msgspec.field(default_factory=dict)


# -- API keys ---------------------------------------------------------------


class CreateApiKey(Acted, frozen=True):
    """Create the service account of API key ``key_id`` (admin)."""

    key_id: str
    name: str
    scopes: list[str]
    prefix: str
    key_hash: str  # hex SHA-256 of the key
    expires_in_days: float


class RevokeApiKey(Acted, frozen=True):
    """Revoke API key ``key_id`` (admin)."""

    key_id: str


# -- read-only queries ------------------------------------------------------


class GetTenant(Acted, frozen=True):
    """The tenant as the actor (any member) sees it."""


class GetSettings(Acted, frozen=True):
    """The tenant's settings (any member)."""


class Authorize(Acted, frozen=True):
    """The actor's ``{role, plan, usage}`` if a member with at least ``minimum``."""

    minimum: str = "viewer"


class ListMembers(Acted, frozen=True):
    """The roster (any member)."""


class ListInvites(Acted, frozen=True):
    """Every invite with its status (admin)."""


class CheckInvite(CommandBody, frozen=True):
    """The pending invite of ``token_hash`` and its tenant's name (anyone with the token)."""

    token_hash: str


#: The commands that change nothing, answered from the state as it is.
TenantQuery = GetTenant | GetSettings | Authorize | ListMembers | ListInvites | CheckInvite

#: Every command of the tenant kind (the entity's ``commands``).
TenantCommand = (
    CreateTenant
    | UpdateTenant
    | PutSettings
    | DeleteTenant
    | RestoreTenant
    | PurgeTenant
    | SetPlan
    | RecordUsage
    | ChangeRole
    | RemoveMember
    | CreateInvite
    | ResendInvite
    | RevokeInvite
    | AcceptInvite
    | CreateApiKey
    | RevokeApiKey
    | TenantQuery
)
