"""Who may be in a conversation, and which conversations have a fixed id.

Every conversation command runs in the tenant the caller acts in (the
``X-Tenant-Id`` header, the API key's tenant, or the socket's ``auth``
``tenant_id``), after the tenant entity confirmed the caller is a member
of it. The conversation entity then refuses a non-member with 404, so a
conversation of another tenant, or one you are not in, never shows.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from aiohttp import web

from hubbub.errors import AppError, FieldError
from hubbub.services import ROUTER
from hubbub.tenancy.access import roster

__all__ = [
    "check_tenant_members",
    "keyed_conversation_id",
]

_KEYED = uuid.UUID("0b9c6a3e-4f0e-5d2c-9a51-6c1f2b7d8e40")  # namespace of keyed ids


async def check_tenant_members(
    request: web.Request,
    tenant_id: UUID,
    actor: UUID,
    user_ids: list[UUID],
    field: str = "member_ids",
) -> None:
    """422 ``not_a_tenant_member`` naming each of ``user_ids`` outside the tenant."""
    if not user_ids:
        return
    members = set(await roster(request.app[ROUTER], tenant_id, actor))
    strangers = [u for u in user_ids if str(u) not in members]
    if strangers:
        raise AppError(
            "not_a_tenant_member",
            f"expected members of the tenant, got {', '.join(map(str, strangers))}",
            status=422,
            errors=tuple(FieldError("body", field, f"{u} is not a member") for u in strangers),
        )


def keyed_conversation_id(
    tenant_id: UUID, kind: str, participants: list[str], subject: dict[str, str] | None
) -> UUID | None:
    """The fixed id of a get-or-create conversation, or None for a fresh one.

    A direct conversation is keyed by its two members; any conversation with a
    subject by (kind, subject, participants). The same key always names the
    same entity, whose single writer makes get-or-create race-free.
    """
    if kind != "direct" and subject is None:
        return None
    people = ",".join(sorted(set(participants)))
    about = "" if subject is None else f"{subject['type']}\x1f{subject['id']}"
    return uuid.uuid5(_KEYED, f"{tenant_id}\x1f{kind}\x1f{about}\x1f{people}")
