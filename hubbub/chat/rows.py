"""A conversation's rows: its tables, rows to state, and the writes of each event.

Each table's columns are named once (:class:`~hubbub.storage.table.Table`);
every statement and argument tuple comes from them. Reading a row into the
state (``*_from_row``) and writing the state back (``*_row``) sit side by
side, so a column added to one is seen missing from the other. The writes
of an event (:func:`writes_of`) run in the shard's group commit, after the
event was applied: they read the state it left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import asyncpg

from hubbub.actors.entity import Write
from hubbub.chat import events as ev
from hubbub.chat.messages import Message
from hubbub.chat.state import ConversationState, Member
from hubbub.storage.table import Table

__all__ = [
    "CONVERSATIONS",
    "EVENTS",
    "MEMBERS",
    "MESSAGES",
    "REACTIONS",
    "conversation_from_row",
    "event_row",
    "head_write",
    "member_from_row",
    "message_from_row",
    "writes_of",
]

CONVERSATIONS = Table(
    "conversations",
    (
        "id",
        "tenant_id",
        "kind",
        "visibility",
        "title",
        "subject_type",
        "subject_id",
        "created_by",
        "last_seq",
        "last_message_seq",
        "created_at",
        "updated_at",
        "last_activity_at",
        "status",
        "snooze_until",
        "assignee_id",
        "labels",
        "deleted_at",
    ),
)
MEMBERS = Table(
    "conversation_members",
    (
        "tenant_id",
        "conversation_id",
        "user_id",
        "role",
        "joined_at",
        "last_read_seq",
        "muted",
        "starred",
    ),
    key=("conversation_id", "user_id"),
)
MESSAGES = Table(
    "conversation_messages",
    (
        "id",
        "tenant_id",
        "conversation_id",
        "seq",
        "author_id",
        "body",
        "client_msg_id",
        "reply_to",
        "created_at",
        "edited_at",
        "deleted_at",
    ),
)
REACTIONS = Table(
    "conversation_reactions",
    ("tenant_id", "conversation_id", "message_id", "user_id", "emoji", "created_at"),
    key=("message_id", "user_id", "emoji"),
)
EVENTS = Table(
    "conversation_events",
    ("tenant_id", "conversation_id", "seq", "event", "data", "created_at"),
    key=("conversation_id", "seq"),
)

_FIELDS = ("title", "status", "snooze_until", "assignee_id", "labels")
_HEAD = ("last_seq", "last_message_seq", "updated_at", "last_activity_at")
_INSERT_CONVERSATION = CONVERSATIONS.insert()
_SET_FIELDS = CONVERSATIONS.update(_FIELDS)
_SET_HEAD = CONVERSATIONS.update(_HEAD)
_DELETE_CONVERSATION = CONVERSATIONS.update(("deleted_at",))
_INSERT_MEMBER = MEMBERS.insert()
_SET_READ = MEMBERS.update(("last_read_seq",))
_SET_MEMBERSHIP = MEMBERS.update(("muted", "starred"))
_DELETE_MEMBER = "DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2"
_INSERT_MESSAGE = MESSAGES.insert()
_EDIT_MESSAGE = MESSAGES.update(("body", "edited_at"))
_DELETE_MESSAGE = MESSAGES.update(("body", "deleted_at"))
_ADD_REACTION = REACTIONS.insert()
_REMOVE_REACTION = """DELETE FROM conversation_reactions
  WHERE message_id = $1 AND user_id = $2 AND emoji = $3"""
_INSERT_EVENT = EVENTS.insert()


# -- rows to state ----------------------------------------------------------


def conversation_from_row(row: asyncpg.Record) -> ConversationState:
    subject = None
    if row["subject_type"] is not None:
        subject = {"type": row["subject_type"], "id": row["subject_id"]}
    return ConversationState(
        id=str(row["id"]),
        tenant_id=str(row["tenant_id"]),
        kind=row["kind"],
        visibility=row["visibility"],
        title=row["title"],
        subject=subject,
        created_by=str(row["created_by"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        seq=row["last_seq"],
        last_message_seq=row["last_message_seq"],
        status=row["status"],
        snooze_until=row["snooze_until"],
        assignee_id=None if row["assignee_id"] is None else str(row["assignee_id"]),
        labels=tuple(row["labels"]),
        deleted=row["deleted_at"] is not None,
    )


def member_from_row(row: asyncpg.Record) -> Member:
    return Member(
        str(row["user_id"]),
        row["role"],
        row["joined_at"],
        row["last_read_seq"],
        row["muted"],
        row["starred"],
    )


def message_from_row(row: Mapping[str, Any]) -> Message:
    return Message(
        id=str(row["id"]),
        seq=row["seq"],
        author_id=str(row["author_id"]),
        body=row["body"],
        client_msg_id=row["client_msg_id"],
        reply_to=None if row["reply_to"] is None else str(row["reply_to"]),
        created_at=row["created_at"],
        edited_at=row["edited_at"],
        deleted=row["deleted_at"] is not None,
    )


# -- state to rows ----------------------------------------------------------


def _conversation_row(s: ConversationState) -> dict[str, Any]:
    subject = s.subject or {}
    return {
        "id": s.id,
        "tenant_id": s.tenant_id,
        "kind": s.kind,
        "visibility": s.visibility,
        "title": s.title,
        "subject_type": subject.get("type"),
        "subject_id": subject.get("id"),
        "created_by": s.created_by,
        "last_seq": s.seq,
        "last_message_seq": s.last_message_seq,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "last_activity_at": s.updated_at,
        "status": s.status,
        "snooze_until": s.snooze_until,
        "assignee_id": s.assignee_id,
        "labels": list(s.labels),
        "deleted_at": None,
    }


def _member_row(s: ConversationState, m: Member) -> dict[str, Any]:
    return {
        "tenant_id": s.tenant_id,
        "conversation_id": s.id,
        "user_id": m.user_id,
        "role": m.role,
        "joined_at": m.joined_at,
        "last_read_seq": m.last_read_seq,
        "muted": m.muted,
        "starred": m.starred,
    }


def _message_row(s: ConversationState, m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "tenant_id": s.tenant_id,
        "conversation_id": s.id,
        "seq": m.seq,
        "author_id": m.author_id,
        "body": m.body,
        "client_msg_id": m.client_msg_id,
        "reply_to": m.reply_to,
        "created_at": m.created_at,
        "edited_at": m.edited_at,
        "deleted_at": None,  # inserted when sent: never deleted yet
    }


def event_row(s: ConversationState, name: str, data: dict[str, Any], at: datetime) -> Write:
    """The ``conversation_events`` row of a stream event, at the state's seq."""
    row = {
        "tenant_id": s.tenant_id,
        "conversation_id": s.id,
        "seq": s.seq,
        "event": name,
        "data": data,
        "created_at": at,
    }
    return Write(_INSERT_EVENT, EVENTS.row(row))


def head_write(s: ConversationState) -> Write:
    """The conversation's head (last seq, last message, activity) as the state has it."""
    head = {
        "id": s.id,
        "last_seq": s.seq,
        "last_message_seq": s.last_message_seq,
        "updated_at": s.updated_at,
        "last_activity_at": s.updated_at,
    }
    return Write(_SET_HEAD, CONVERSATIONS.update_row(head, _HEAD))


# -- the writes of each event -----------------------------------------------


def writes_of(state: ConversationState, event: ev.Event) -> list[Write]:
    """The SQL writes of ``event``, applied to ``state`` already."""
    return _WRITERS[type(event)](state, event)


def _created(s: ConversationState, e: ev.ConversationCreated) -> list[Write]:
    members = [Write(_INSERT_MEMBER, MEMBERS.row(_member_row(s, m))) for m in s.members.values()]
    return [Write(_INSERT_CONVERSATION, CONVERSATIONS.row(_conversation_row(s))), *members]


def _sent(s: ConversationState, e: ev.MessageSent) -> list[Write]:
    m = e.message
    insert = Write(_INSERT_MESSAGE, MESSAGES.row(_message_row(s, m)))
    if m.author_id not in s.members:  # the assistant: no read mark
        return [insert]
    return [insert, _read_mark(s, m.author_id, m.seq)]


def _read_mark(s: ConversationState, user_id: str, seq: int) -> Write:
    mark = {"conversation_id": s.id, "user_id": user_id, "last_read_seq": seq}
    return Write(_SET_READ, MEMBERS.update_row(mark, ("last_read_seq",)))


def _joined(s: ConversationState, e: ev.MemberJoined) -> list[Write]:
    return [Write(_INSERT_MEMBER, MEMBERS.row(_member_row(s, s.members[e.user_id])))]


def _left(s: ConversationState, e: ev.MemberLeft) -> list[Write]:
    return [Write(_DELETE_MEMBER, (s.id, e.user_id))]


def _membership_set(s: ConversationState, e: ev.MembershipSet) -> list[Write]:
    row = _member_row(s, s.members[e.user_id])
    return [Write(_SET_MEMBERSHIP, MEMBERS.update_row(row, ("muted", "starred")))]


def _edited(s: ConversationState, e: ev.MessageEdited) -> list[Write]:
    edit = {"id": e.message_id, "body": e.body, "edited_at": e.at}
    return [Write(_EDIT_MESSAGE, MESSAGES.update_row(edit, ("body", "edited_at")))]


def _message_deleted(s: ConversationState, e: ev.MessageDeleted) -> list[Write]:
    tombstone = {"id": e.message_id, "body": "", "deleted_at": e.at}
    return [Write(_DELETE_MESSAGE, MESSAGES.update_row(tombstone, ("body", "deleted_at")))]


def _changed(s: ConversationState, e: ev.ConversationChanged) -> list[Write]:
    return [Write(_SET_FIELDS, CONVERSATIONS.update_row(_conversation_row(s), _FIELDS))]


def _conversation_deleted(s: ConversationState, e: ev.ConversationDeleted) -> list[Write]:
    deleted = {"id": s.id, "deleted_at": e.at}
    return [Write(_DELETE_CONVERSATION, CONVERSATIONS.update_row(deleted, ("deleted_at",)))]


def _reaction_added(s: ConversationState, e: ev.ReactionAdded) -> list[Write]:
    row = {
        "tenant_id": s.tenant_id,
        "conversation_id": s.id,
        "message_id": e.message_id,
        "user_id": e.user_id,
        "emoji": e.emoji,
        "created_at": e.at,
    }
    return [Write(_ADD_REACTION, REACTIONS.row(row))]


def _reaction_removed(s: ConversationState, e: ev.ReactionRemoved) -> list[Write]:
    return [Write(_REMOVE_REACTION, (e.message_id, e.user_id, e.emoji))]


_WRITERS: dict[type, Callable[[Any, Any], list[Write]]] = {
    ev.ConversationCreated: _created,
    ev.MessageSent: _sent,
    ev.MessageEdited: _edited,
    ev.MessageDeleted: _message_deleted,
    ev.MemberJoined: _joined,
    ev.MemberLeft: _left,
    ev.ConversationChanged: _changed,
    ev.ConversationDeleted: _conversation_deleted,
    ev.ReactionAdded: _reaction_added,
    ev.ReactionRemoved: _reaction_removed,
    ev.ReadMarked: lambda s, e: [_read_mark(s, e.user_id, e.up_to_seq)],
    ev.MembershipSet: _membership_set,
}
