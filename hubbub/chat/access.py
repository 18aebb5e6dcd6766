"""How the gateway talks to conversation entities, shared by HTTP and sockets.

Every conversation command runs in the tenant the caller acts in (the
``X-Tenant-Id`` header, the API key's tenant, or the socket's ``auth``
``tenant_id``), after the tenant entity confirmed the caller is a member
of it. The conversation entity then refuses a non-member with 404, so a
conversation of another tenant, or one you are not in, never shows.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from aiohttp import web

from hubbub.actors.command import Command
from hubbub.actors.conversation import DEDUPED
from hubbub.actors.router import Router
from hubbub.actors.untyped import Untyped
from hubbub.errors import AppError, FieldError
from hubbub.gateway import ROUTER
from hubbub.tenancy.access import roster

__all__ = [
    "ask_conversation",
    "check_body",
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


async def ask_conversation(
    router: Router,
    tenant_id: UUID | str,
    conversation_id: UUID | str,
    name: str,
    actor: str,
    /,
    *,
    idempotency_key: str | None = None,
    **args: Any,
) -> Any:
    """Send command ``name`` to the conversation, in the tenant's scope; its reply.
    A command the conversation dedupes itself is resent through a shard restart."""
    args["actor"] = actor
    command = Command(
        "conversation",
        str(conversation_id),
        Untyped(name, args, deduped=name in DEDUPED),
        str(tenant_id),
        idempotency_key,
    )
    return await router.send(command)


def check_body(body: str, max_bytes: int, field: str = "body") -> str:
    """``body`` if it is 1..``max_bytes`` UTF-8 bytes and not blank; 422 otherwise."""
    size = len(body.encode())
    if not body.strip():
        raise AppError(
            "body_empty",
            "expected a message body with some text, got an empty one",
            status=422,
            errors=(FieldError("body", field, "empty"),),
        )
    if size > max_bytes:
        raise AppError(
            "body_too_large",
            f"expected a message body of at most {max_bytes} bytes, got {size}",
            status=422,
            errors=(FieldError("body", field, f"longer than {max_bytes} bytes"),),
        )
    return body


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
