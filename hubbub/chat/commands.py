"""The conversation's commands, and the calls both edges and other capabilities make.

One frozen :class:`~hubbub.actors.command.CommandBody` per command (a tagged
union, :data:`ConversationCommand`): the HTTP routes, the socket handlers,
jobs (broadcasts, assistant replies, provisioning) and the snooze sweep build
these and send them with :func:`ask`; the conversation entity decodes each
against the union, so a field of the wrong type answers 422
``validation_failed`` naming it. ``actor`` is the acting user's id.

:func:`send_message` and :func:`mark_read` are what the HTTP route and the
socket event of the same name both call (no edge imports another edge).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from hubbub.actors.command import Command, CommandBody
from hubbub.errors import AppError, FieldError
from hubbub.ids import new_id

if TYPE_CHECKING:
    from hubbub.actors.router import Router
    from hubbub.chat.send_limits import SendLimits
    from hubbub.chat.wire import NewMessage

__all__ = [
    "AddMembers",
    "Authorize",
    "ConversationCommand",
    "Create",
    "Delete",
    "DeleteConversation",
    "Edit",
    "Leave",
    "PostAssistantMessage",
    "React",
    "Read",
    "RemoveMember",
    "Send",
    "SetMembership",
    "Update",
    "Wake",
    "ask",
    "check_body",
    "mark_read",
    "send_message",
]


class Create(CommandBody, frozen=True):
    """Create the conversation, or (it exists) check that ``actor`` is in it."""

    actor: str
    conversation_id: str
    tenant_id: str
    kind: str
    member_ids: list[str] = msgspec.field(default_factory=list)
    title: str | None = None
    subject: dict[str, str] | None = None
    visibility: str = "private"


class Send(CommandBody, frozen=True):
    """``actor``'s message; the same ``client_msg_id`` again returns the first one."""

    retry_safe: ClassVar[bool] = True
    actor: str
    body: str
    client_msg_id: str
    message_id: str
    reply_to: str | None = None


class PostAssistantMessage(CommandBody, frozen=True):
    """The assistant's message in an agent conversation; deduped like :class:`Send`."""

    retry_safe: ClassVar[bool] = True
    body: str
    client_msg_id: str
    message_id: str
    reply_to: str | None = None


class Edit(CommandBody, frozen=True):
    actor: str
    message_id: str
    body: str


class Delete(CommandBody, frozen=True):
    """Delete one message (it stays as a tombstone)."""

    actor: str
    message_id: str


class AddMembers(CommandBody, frozen=True):
    actor: str
    user_ids: list[str]


class RemoveMember(CommandBody, frozen=True):
    actor: str
    user_id: str


class Leave(CommandBody, frozen=True):
    actor: str


class Update(CommandBody, frozen=True):
    """Change the fields given (``UNSET``: unchanged); ``assignee_id=None`` unassigns."""

    actor: str
    title: str | UnsetType | None = UNSET
    status: str | UnsetType = UNSET
    snooze_until: datetime | UnsetType | None = UNSET
    assignee_id: str | UnsetType | None = UNSET
    labels: list[str] | UnsetType = UNSET

    def changes(self) -> dict[str, Any]:
        """The fields given, by name."""
        return {f: v for f in _UPDATABLE if (v := getattr(self, f)) is not UNSET}


_UPDATABLE = ("title", "status", "snooze_until", "assignee_id", "labels")


class Read(CommandBody, frozen=True):
    actor: str
    up_to_seq: int


class Authorize(CommandBody, frozen=True):
    """Nothing but the check that ``actor`` is a member (404 otherwise)."""

    actor: str


class Wake(CommandBody, frozen=True):
    """The snooze sweep's nudge: a due snoozed conversation wakes."""


class DeleteConversation(CommandBody, frozen=True):
    actor: str


class React(CommandBody, frozen=True):
    """Add (``add``) or take back ``actor``'s ``emoji`` on a message."""

    actor: str
    message_id: str
    emoji: str
    add: bool


class SetMembership(CommandBody, frozen=True):
    """``actor``'s own mute/star (None: unchanged)."""

    actor: str
    muted: bool | None = None
    starred: bool | None = None


ConversationCommand = (
    Create
    | Send
    | PostAssistantMessage
    | Edit
    | Delete
    | AddMembers
    | RemoveMember
    | Leave
    | Update
    | Read
    | Authorize
    | Wake
    | DeleteConversation
    | React
    | SetMembership
)


async def ask(
    router: Router,
    tenant_id: UUID | str,
    conversation_id: UUID | str,
    body: ConversationCommand,
    idempotency_key: str | None = None,
) -> Any:
    """Send ``body`` to the conversation, in the tenant's scope; its reply.

    A retry-safe body (a send) is resent through a shard restart."""
    key = str(conversation_id)
    command = Command("conversation", key, body, str(tenant_id), idempotency_key)
    return await router.send(command)


async def send_message(
    router: Router,
    tenant_id: UUID | str,
    conversation_id: UUID | str,
    user: str,
    message: NewMessage,
    max_bytes: int,
    limits: SendLimits,
    socket: str | None = None,
) -> dict[str, Any]:
    """Send ``message`` as ``user`` (on socket ``socket``, if it came on one);
    the committed message (``message_view``).

    422 ``body_empty`` / ``body_too_large`` past ``max_bytes``; then 429
    ``rate_limited`` past the socket's or the user's send limit (``limits``),
    before the conversation sees it. The conversation itself answers a
    repeated ``client_msg_id`` with the message it made the first time,
    however old: no idempotency receipt (a retry counts against the limits)."""
    check_body(message.body, max_bytes)
    await limits.check(user, socket)
    reply_to = None if message.reply_to is None else str(message.reply_to)
    body = Send(user, message.body, message.client_msg_id, str(new_id()), reply_to)
    return await ask(router, tenant_id, conversation_id, body)


async def mark_read(
    router: Router, tenant_id: UUID | str, conversation_id: UUID | str, user: str, up_to_seq: int
) -> dict[str, Any]:
    """Move ``user``'s read mark up to ``up_to_seq``; ``{conversation_id, user_id,
    last_read_seq}`` (a mark never moves backwards)."""
    return await ask(router, tenant_id, conversation_id, Read(user, up_to_seq))


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
