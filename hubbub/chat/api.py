"""HTTP routes of conversations and messages, under ``/api/v1/conversations``.

Every route needs a bearer token and a tenant (``X-Tenant-Id``) the caller
is a member of. Changes go to the conversation entity; reads come from
Postgres, joined to the caller's membership. A conversation you are not in,
or of another tenant, answers 404 whatever the route.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from hubbub.chat import commands as do
from hubbub.chat import reads
from hubbub.chat.access import check_tenant_members, keyed_conversation_id
from hubbub.chat.reads import Filters
from hubbub.chat.send_limits import SEND_LIMITS
from hubbub.chat.wire import (
    ConversationList,
    ConversationListQuery,
    ConversationMemberPath,
    ConversationPath,
    ConversationUpdate,
    ConversationView,
    EventList,
    EventsQuery,
    MembershipUpdate,
    MembershipView,
    MessageEdit,
    MessageList,
    MessagePath,
    MessagesQuery,
    MessageView,
    NewConversation,
    NewMembers,
    NewMessage,
    ReactionInput,
    ReadMark,
    ReadView,
    UnreadList,
)
from hubbub.errors import AppError, FieldError
from hubbub.http.routing import Api
from hubbub.identity.bearer import authenticate_request
from hubbub.ids import new_id
from hubbub.services import DATABASE, ROUTER, SETTINGS
from hubbub.tenancy.access import authorize, tenant_of

__all__ = ["api"]

api = Api("conversations", "Conversations, members, messages and read state.", tenant_header=True)

BASE = "/api/v1/conversations"
ONE = f"{BASE}/{{conversation_id}}"
BEARER = ("bearer",)
NOT_FOUND = {404: "No such conversation of which you are a member in this tenant (`not_found`)"}
MEMBERS_FIXED = {
    409: "A direct or agent conversation keeps its members "
    "(`direct_conversation_fixed`, `agent_conversation_fixed`)"
}
BAD_SEQ = {422: "A seq outside the conversation's range (`seq_out_of_range`)"}


async def _caller(request: web.Request) -> tuple[UUID, str]:
    """``(tenant_id, user_id)``: authenticated, and a member of the tenant."""
    claims = await authenticate_request(request)
    tenant_id = tenant_of(request, claims.tenant_id)
    await authorize(request.app[ROUTER], tenant_id, claims.user_id)
    return tenant_id, str(claims.user_id)


async def _view(
    request: web.Request, tenant_id: UUID, conversation_id: UUID | str, user: str
) -> ConversationView:
    """The conversation as ``user`` sees it now (after the command's commit)."""
    async with request.app[DATABASE].tenant(tenant_id) as conn:
        found = await reads.conversation(conn, str(conversation_id), user)
    return ConversationView.model_validate(found)


@api.post(
    BASE,
    body=NewConversation,
    response=ConversationView,
    status=201,
    security=BEARER,
    alternatives={200: ("It existed already (direct, or with a subject)", ConversationView)},
    responses={422: "A member is not in the tenant (`not_a_tenant_member`)"},
)
async def create_conversation(request: web.Request, *, body: NewConversation) -> Any:
    """Create a conversation, or get the one that exists (direct pairs, subjects)."""
    tenant_id, user = await _caller(request)
    others = [u for u in dict.fromkeys(body.member_ids) if str(u) != user]
    await check_tenant_members(request, tenant_id, UUID(user), others)
    subject = None if body.subject is None else body.subject.model_dump()
    participants = [user, *map(str, others)]
    conversation_id = keyed_conversation_id(tenant_id, body.kind, participants, subject)
    create = do.Create(
        actor=user,
        conversation_id=str(conversation_id or new_id()),
        tenant_id=str(tenant_id),
        kind=body.kind,
        member_ids=participants[1:],
        title=body.title,
        subject=subject,
        visibility=body.visibility,
    )
    reply = await do.ask(request.app[ROUTER], tenant_id, create.conversation_id, create)
    view = await _view(request, tenant_id, create.conversation_id, user)
    if reply["created"]:
        return view
    body_bytes = orjson.dumps(view.model_dump(mode="json"))
    return web.Response(body=body_bytes, status=200, content_type="application/json")


@api.get(BASE, query=ConversationListQuery, response=ConversationList, security=BEARER)
async def list_conversations(
    request: web.Request, *, query: ConversationListQuery
) -> ConversationList:
    """Your conversations, latest activity first, with last message and unread count;
    filter by kind, status, label and assignee."""
    tenant_id, user = await _caller(request)
    async with request.app[DATABASE].tenant(tenant_id) as conn:
        filters = Filters(query.kind, query.status, query.label, query.assignee)
        items, cursor = await reads.conversations(conn, user, filters, query.cursor, query.limit)
    return ConversationList.model_validate({"items": items, "next_cursor": cursor})


@api.get(f"{BASE}/unread", response=UnreadList, security=BEARER)
async def unread_counts(request: web.Request) -> UnreadList:
    """Exact unread counts of all your conversations: others' live messages after your mark."""
    tenant_id, user = await _caller(request)
    async with request.app[DATABASE].tenant(tenant_id) as conn:
        items = await reads.unread_counts(conn, user)
    total = sum(item["unread_count"] for item in items)
    return UnreadList.model_validate({"items": items, "total": total})


@api.get(
    ONE, params=ConversationPath, response=ConversationView, security=BEARER, responses=NOT_FOUND
)
async def get_conversation(request: web.Request, *, path: ConversationPath) -> ConversationView:
    """One conversation you are a member of."""
    tenant_id, user = await _caller(request)
    return await _view(request, tenant_id, path.conversation_id, user)


@api.patch(
    ONE,
    params=ConversationPath,
    body=ConversationUpdate,
    response=ConversationView,
    security=BEARER,
    responses=NOT_FOUND
    | {
        403: "The title needs owner or admin (`insufficient_role`)",
        409: "Direct conversations have no title (`direct_conversation_fixed`)",
        422: "A bad field, a support field on another kind, a snooze_until in the past "
        "(`validation_failed`), an assignee outside the tenant (`not_a_tenant_member`)",
    },
)
async def update_conversation(
    request: web.Request, *, path: ConversationPath, body: ConversationUpdate
) -> ConversationView:
    """Change the title (owner or admin) or, on a support conversation (any member), its
    status, snooze_until, assignee and labels; a new assignee joins it."""
    tenant_id, user = await _caller(request)
    conversation_id = str(path.conversation_id)
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        raise AppError(
            "validation_failed",
            f"expected at least one of {', '.join(ConversationUpdate.model_fields)}",
            status=422,
            errors=(FieldError("body", "", "no field to change"),),
        )
    if body.assignee_id is not None:
        await check_tenant_members(
            request, tenant_id, UUID(user), [body.assignee_id], field="assignee_id"
        )
    if "assignee_id" in changes:
        changes["assignee_id"] = None if body.assignee_id is None else str(body.assignee_id)
    update = do.Update(user, **changes)
    await do.ask(request.app[ROUTER], tenant_id, conversation_id, update)
    return await _view(request, tenant_id, conversation_id, user)


@api.delete(
    ONE,
    params=ConversationPath,
    status=204,
    security=BEARER,
    responses=NOT_FOUND | {403: "Needs owner or admin (`insufficient_role`)"},
)
async def delete_conversation(request: web.Request, *, path: ConversationPath) -> None:
    """Delete a conversation (owner or admin): from then on it is 404 for everyone."""
    tenant_id, user = await _caller(request)
    await do.ask(request.app[ROUTER], tenant_id, path.conversation_id, do.DeleteConversation(user))


@api.patch(
    f"{ONE}/membership",
    params=ConversationPath,
    body=MembershipUpdate,
    response=MembershipView,
    security=BEARER,
    responses=NOT_FOUND,
)
async def update_membership(
    request: web.Request, *, path: ConversationPath, body: MembershipUpdate
) -> MembershipView:
    """Mute or star the conversation, for you alone (no event to others)."""
    tenant_id, user = await _caller(request)
    settings = do.SetMembership(user, muted=body.muted, starred=body.starred)
    reply = await do.ask(request.app[ROUTER], tenant_id, path.conversation_id, settings)
    return MembershipView.model_validate(reply)


@api.post(
    f"{ONE}/join",
    params=ConversationPath,
    response=ConversationView,
    security=BEARER,
    responses=NOT_FOUND | MEMBERS_FIXED,
)
async def join_conversation(request: web.Request, *, path: ConversationPath) -> ConversationView:
    """Join a public channel of your tenant (others are by invitation: 404)."""
    tenant_id, user = await _caller(request)
    conversation_id = str(path.conversation_id)
    await do.ask(request.app[ROUTER], tenant_id, conversation_id, do.AddMembers(user, [user]))
    return await _view(request, tenant_id, conversation_id, user)


@api.post(
    f"{ONE}/members",
    params=ConversationPath,
    body=NewMembers,
    response=ConversationView,
    security=BEARER,
    responses=NOT_FOUND
    | MEMBERS_FIXED
    | {403: "`insufficient_role`", 422: "`not_a_tenant_member`"},
)
async def add_members(
    request: web.Request, *, path: ConversationPath, body: NewMembers
) -> ConversationView:
    """Add members (owner or admin; anyone may join a public channel themselves)."""
    tenant_id, user = await _caller(request)
    conversation_id = str(path.conversation_id)
    await check_tenant_members(request, tenant_id, UUID(user), body.user_ids)
    add = do.AddMembers(user, [str(u) for u in body.user_ids])
    await do.ask(request.app[ROUTER], tenant_id, conversation_id, add)
    return await _view(request, tenant_id, conversation_id, user)


@api.delete(
    f"{ONE}/members/{{user_id}}",
    params=ConversationMemberPath,
    status=204,
    security=BEARER,
    responses=NOT_FOUND | MEMBERS_FIXED | {403: "`insufficient_role`"},
)
async def remove_conversation_member(request: web.Request, *, path: ConversationMemberPath) -> None:
    """Remove a member (owner or admin; only an owner removes an owner)."""
    tenant_id, user = await _caller(request)
    remove = do.RemoveMember(user, str(path.user_id))
    await do.ask(request.app[ROUTER], tenant_id, path.conversation_id, remove)


@api.post(
    f"{ONE}/leave",
    params=ConversationPath,
    status=204,
    security=BEARER,
    responses=NOT_FOUND | MEMBERS_FIXED,
)
async def leave_conversation(request: web.Request, *, path: ConversationPath) -> None:
    """Leave a group or channel."""
    tenant_id, user = await _caller(request)
    await do.ask(request.app[ROUTER], tenant_id, path.conversation_id, do.Leave(user))


@api.get(
    f"{ONE}/messages",
    params=ConversationPath,
    query=MessagesQuery,
    response=MessageList,
    security=BEARER,
    responses=NOT_FOUND | BAD_SEQ,
)
async def list_messages(
    request: web.Request, *, path: ConversationPath, query: MessagesQuery
) -> MessageList:
    """Messages by seq: the latest, or `before` / `after` / `around` a seq."""
    tenant_id, user = await _caller(request)
    async with request.app[DATABASE].tenant(tenant_id) as conn:
        items, cursor = await reads.messages(
            conn,
            str(path.conversation_id),
            user,
            before=query.before,
            after=query.after,
            around=query.around,
            limit=query.limit,
        )
    return MessageList.model_validate({"items": items, "next_cursor": cursor})


@api.post(
    f"{ONE}/messages",
    params=ConversationPath,
    body=NewMessage,
    response=MessageView,
    status=201,
    security=BEARER,
    responses=NOT_FOUND
    | {
        422: "`body_empty`, `body_too_large`, `reply_to_not_found`",
        429: "Past your send limit (`rate_limited`, `Retry-After`)",
    },
)
async def send_message(
    request: web.Request, *, path: ConversationPath, body: NewMessage
) -> MessageView:
    """Send a message; the same `client_msg_id` again returns the same message."""
    tenant_id, user = await _caller(request)
    app = request.app
    reply = await do.send_message(
        app[ROUTER],
        tenant_id,
        path.conversation_id,
        user,
        body,
        app[SETTINGS].message_max_bytes,
        app[SEND_LIMITS],
    )
    return MessageView.model_validate(reply)


@api.patch(
    f"{ONE}/messages/{{message_id}}",
    params=MessagePath,
    body=MessageEdit,
    response=MessageView,
    security=BEARER,
    responses=NOT_FOUND | {403: "Not the author (`not_author`)", 409: "`message_deleted`"},
)
async def edit_message(
    request: web.Request, *, path: MessagePath, body: MessageEdit
) -> MessageView:
    """Edit your message."""
    tenant_id, user = await _caller(request)
    do.check_body(body.body, request.app[SETTINGS].message_max_bytes)
    edit = do.Edit(user, str(path.message_id), body.body)
    reply = await do.ask(request.app[ROUTER], tenant_id, path.conversation_id, edit)
    return MessageView.model_validate(reply)


@api.delete(
    f"{ONE}/messages/{{message_id}}",
    params=MessagePath,
    response=MessageView,
    security=BEARER,
    responses=NOT_FOUND | {403: "`not_author`"},
)
async def delete_message(request: web.Request, *, path: MessagePath) -> MessageView:
    """Delete a message (its author, an owner or an admin): it stays as a tombstone."""
    tenant_id, user = await _caller(request)
    delete = do.Delete(user, str(path.message_id))
    reply = await do.ask(request.app[ROUTER], tenant_id, path.conversation_id, delete)
    return MessageView.model_validate(reply)


@api.post(
    f"{ONE}/read",
    params=ConversationPath,
    body=ReadMark,
    response=ReadView,
    security=BEARER,
    responses=NOT_FOUND | BAD_SEQ,
)
async def mark_read(request: web.Request, *, path: ConversationPath, body: ReadMark) -> ReadView:
    """Move your read mark up to a seq; it never moves backwards."""
    tenant_id, user = await _caller(request)
    reply = await do.mark_read(
        request.app[ROUTER], tenant_id, path.conversation_id, user, body.up_to_seq
    )
    return ReadView.model_validate(reply)


@api.get(
    f"{ONE}/events",
    params=ConversationPath,
    query=EventsQuery,
    response=EventList,
    security=BEARER,
    responses=NOT_FOUND | BAD_SEQ,
)
async def list_events(
    request: web.Request, *, path: ConversationPath, query: EventsQuery
) -> EventList:
    """Everything that happened after `after_seq`, in order (for clients that poll)."""
    tenant_id, user = await _caller(request)
    async with request.app[DATABASE].tenant(tenant_id) as conn:
        items, last_seq = await reads.events_after(
            conn, str(path.conversation_id), user, query.after_seq, query.limit
        )
    more = bool(items) and items[-1]["seq"] < last_seq
    cursor = str(items[-1]["seq"]) if more else None
    return EventList.model_validate({"items": items, "last_seq": last_seq, "next_cursor": cursor})


REACTION_ERRORS = {
    404: "No such conversation or message for you (`not_found`)",
    409: "The message is deleted (`message_deleted`)",
    422: "Not an emoji (`validation_failed`)",
}


@api.post(
    f"{ONE}/messages/{{message_id}}/reactions",
    params=MessagePath,
    body=ReactionInput,
    response=MessageView,
    security=BEARER,
    responses=REACTION_ERRORS,
)
async def add_reaction(
    request: web.Request, *, path: MessagePath, body: ReactionInput
) -> MessageView:
    """React to a message; one reaction per user per emoji (again: no change)."""
    return await _react(request, path, body.emoji, add=True)


@api.delete(
    f"{ONE}/messages/{{message_id}}/reactions",
    params=MessagePath,
    body=ReactionInput,
    response=MessageView,
    security=BEARER,
    responses=REACTION_ERRORS,
)
async def remove_reaction(
    request: web.Request, *, path: MessagePath, body: ReactionInput
) -> MessageView:
    """Take your reaction back (one you do not have: no change)."""
    return await _react(request, path, body.emoji, add=False)


async def _react(request: web.Request, path: MessagePath, emoji: str, *, add: bool) -> MessageView:
    tenant_id, user = await _caller(request)
    react = do.React(user, str(path.message_id), emoji, add)
    reply = await do.ask(request.app[ROUTER], tenant_id, path.conversation_id, react)
    return MessageView.model_validate(reply)
