"""The conversation entity: one conversation's seq, members, read marks and messages.

The rules live in :mod:`hubbub.chat.state` (pure); this module loads the
state from Postgres, turns decided events into SQL writes (the shard's group
commit) — every stream event also as a row of ``conversation_events``, the
source of replay by ``after_seq`` — and into publications on channel
``conversation:{id}``, sent after commit.

The entity key is the conversation id; every command runs in its tenant's
row-level-security scope (``Command.tenant_id``), so another tenant's
conversation with the same id cannot even be loaded.

Only the latest messages are loaded (:mod:`hubbub.chat.messages`); a command
about an older one reads it first (``missing`` / ``load_missing`` / ``merge``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, cast

import asyncpg

from hubbub.actors.command import Command
from hubbub.actors.entity import Decision, Entity, Publication, Write
from hubbub.actors.untyped import Untyped
from hubbub.chat import messages as window
from hubbub.chat import state as rules
from hubbub.chat.messages import (
    ClientRef,
    Message,
    MessageRef,
    MessageWindow,
    OlderClientIds,
    OlderIds,
    Ref,
)
from hubbub.chat.state import ConversationState, Member, message_view

__all__ = ["DEDUPED", "ConversationEntity", "channel"]

#: Commands a conversation answers the same when they arrive twice: it
#: dedupes them by author and ``client_msg_id``, so they are retry-safe.
DEDUPED = frozenset({"send", "post_assistant_message"})


def channel(conversation_id: str) -> str:
    """The bus topic of a conversation's events."""
    return f"conversation:{conversation_id}"


_LOAD = "SELECT * FROM conversations WHERE id = ANY($1::uuid[])"
_LOAD_MEMBERS = "SELECT * FROM conversation_members WHERE conversation_id = ANY($1::uuid[])"
_LOAD_LATEST = """SELECT m.* FROM unnest($1::uuid[]) AS c (id) CROSS JOIN LATERAL (
  SELECT * FROM conversation_messages WHERE conversation_id = c.id ORDER BY seq DESC LIMIT $2) m
ORDER BY m.conversation_id, m.seq"""
_LOAD_NAMED = """SELECT * FROM conversation_messages WHERE conversation_id = $1
  AND (id = ANY($2::uuid[])
    OR (author_id, client_msg_id) IN (SELECT * FROM unnest($3::uuid[], $4::text[])))"""
_LOAD_OLDER_CLIENT_IDS = """SELECT author_id, client_msg_id FROM conversation_messages
WHERE conversation_id = $1 AND seq < $2"""
_LOAD_REACTIONS = """SELECT message_id, user_id, emoji FROM conversation_reactions
WHERE message_id = ANY($1::uuid[]) ORDER BY created_at, user_id"""


class ConversationEntity(Entity):
    """A conversation, hosted by the ``conversation`` shards.

    Owns: the conversation's seq (gap-free), title, support status, snooze,
    assignee and labels, deletion, members with their roles, read marks and
    mute/star, and its messages (with the ``client_msg_id`` of each, for
    idempotent sends) and their reactions. Memory: the latest
    :data:`~hubbub.chat.messages.WINDOW` messages with their reactions, plus
    what the last read of older ones brought in; activation loads only the
    latest. A command about a message outside them — an edit, delete,
    reaction or reply, or a send whose ``client_msg_id`` is not among them in
    a conversation that outgrew the window — names it in ``missing``; the
    shard reads it from Postgres after the entity's pending commit and
    decides then, so old messages get the same answers as recent ones (a
    retried send of any earlier message returns that message). Concurrency:
    the shard runs its commands one at a time; ``handle`` never awaits.
    Durability: every change is a Write in the shard's group commit; replies
    and events follow the commit. Failure: a failed commit drops the entity
    and the next command reloads it.
    """

    kind = "conversation"
    commands = Untyped
    state: ConversationState | None

    @classmethod
    async def load(cls, conn: asyncpg.Connection, keys: list[str]) -> dict[str, Any]:
        found = {str(r["id"]): _conversation(r) for r in await conn.fetch(_LOAD, keys)}
        for row in await conn.fetch(_LOAD_MEMBERS, keys):
            member = Member(
                str(row["user_id"]),
                row["role"],
                row["joined_at"],
                row["last_read_seq"],
                row["muted"],
                row["starred"],
            )
            found[str(row["conversation_id"])].members[member.user_id] = member
        latest: dict[str, list[Message]] = {}
        for row in await conn.fetch(_LOAD_LATEST, keys, window.WINDOW):
            latest.setdefault(str(row["conversation_id"]), []).append(_message(row))
        await _load_reactions(conn, [m for messages in latest.values() for m in messages])
        for conversation_id, messages in latest.items():
            found[conversation_id].messages = MessageWindow.of(messages)
        return found

    @classmethod
    async def load_missing(
        cls, conn: asyncpg.Connection, key: str, refs: frozenset[Hashable]
    ) -> tuple[list[Message], OlderIds | None]:
        ids = [r.message_id for r in refs if isinstance(r, MessageRef)]
        sent = [r for r in refs if isinstance(r, ClientRef)]
        authors, client_ids = [r.author_id for r in sent], [r.client_msg_id for r in sent]
        rows = await conn.fetch(_LOAD_NAMED, key, ids, authors, client_ids)
        messages = [_message(row) for row in rows]
        await _load_reactions(conn, messages)
        older = [r.before for r in refs if isinstance(r, OlderClientIds)]
        if not older:
            return messages, None
        pairs = await conn.fetch(_LOAD_OLDER_CLIENT_IDS, key, older[0])
        return messages, OlderIds([(str(a), c) for a, c in pairs])

    def missing(self, command: Command) -> frozenset[Hashable]:
        return rules.missing(self.state, command.body.name, command.body.args)

    def merge(
        self, refs: frozenset[Hashable], loaded: tuple[list[Message], OlderIds | None]
    ) -> None:
        assert self.state is not None  # missing names nothing for no conversation
        self.state.messages.merge(cast("frozenset[Ref]", refs), *loaded)

    def handle(self, command: Command, now: datetime) -> Decision:
        events = rules.decide(self.state, command.body.name, command.body.args, now)
        state, writes, publications = self.state, [], []
        for event in events:
            state = rules.apply(state, event)
            writes.extend(_writes(state, event))
            if rules.in_stream(event):
                name, data = _published(state, event)
                writes.append(
                    Write(
                        _INSERT_EVENT, (state.tenant_id, state.id, state.seq, name, data, event.at)
                    )
                )
                publications.append(Publication(channel(state.id), name, data))
            elif isinstance(event, rules.ReadMarked):
                data = _read_payload(state, event)
                publications.append(Publication(channel(state.id), "read", data))
        if state is not None and any(rules.in_stream(e) for e in events):
            writes.append(
                Write(_SET_HEAD, (state.id, state.seq, state.last_message_seq, state.updated_at))
            )
        self.state = state
        return Decision(_reply(command, state, events), writes, publications)


def _conversation(row: asyncpg.Record) -> ConversationState:
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


async def _load_reactions(conn: asyncpg.Connection, messages: list[Message]) -> None:
    """Fill in the reactions of ``messages``, in the order they were made."""
    by_id = {m.id: m for m in messages}
    for row in await conn.fetch(_LOAD_REACTIONS, list(by_id)):
        reactions = by_id[str(row["message_id"])].reactions
        reactions.setdefault(row["emoji"], []).append(str(row["user_id"]))


def _message(row: asyncpg.Record) -> Message:
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


# -- replies --------------------------------------------------------------


def _reply(command: Command, state: ConversationState | None, events: list[rules.Event]) -> Any:
    assert state is not None  # a command on no conversation was refused by decide
    actor = str(command.body.args.get("actor"))
    name = command.body.name
    if name in DEDUPED:
        author = rules.ASSISTANT_ID if name == "post_assistant_message" else actor
        sent = state.messages.sent(author, str(command.body.args["client_msg_id"]))
        assert sent is not None  # decide sent it now or before
        return message_view(state.id, sent)
    if name in ("edit", "delete", "react"):
        return message_view(state.id, state.messages[str(command.body.args["message_id"])])
    if name == "membership":
        member = state.members[actor]
        return {
            "conversation_id": state.id,
            "user_id": actor,
            "muted": member.muted,
            "starred": member.starred,
        }
    if name == "read":
        member = state.members[actor]
        return {
            "conversation_id": state.id,
            "user_id": actor,
            "last_read_seq": member.last_read_seq,
        }
    member = state.members.get(actor)
    return {
        "conversation_id": state.id,
        "created": any(isinstance(e, rules.ConversationCreated) for e in events),
        "seq": state.seq,
        "role": None if member is None else member.role,
    }


# -- writes ---------------------------------------------------------------

_INSERT_EVENT = """INSERT INTO conversation_events (tenant_id, conversation_id, seq, event, data,
  created_at) VALUES ($1, $2, $3, $4, $5, $6)"""
_SET_HEAD = """UPDATE conversations SET last_seq = $2, last_message_seq = $3, updated_at = $4,
  last_activity_at = $4 WHERE id = $1"""
_INSERT_CONVERSATION = """INSERT INTO conversations (id, tenant_id, kind, visibility, title,
  subject_type, subject_id, created_by, last_seq, created_at, updated_at, last_activity_at, status)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9, $9, $10)"""
_INSERT_MEMBER = """INSERT INTO conversation_members (tenant_id, conversation_id, user_id, role,
  joined_at, last_read_seq) VALUES ($1, $2, $3, $4, $5, $6)"""
_DELETE_MEMBER = "DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2"
_SET_READ = """UPDATE conversation_members SET last_read_seq = $3
  WHERE conversation_id = $1 AND user_id = $2"""
_INSERT_MESSAGE = """INSERT INTO conversation_messages (id, tenant_id, conversation_id, seq,
  author_id, body, client_msg_id, reply_to, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"""
_EDIT_MESSAGE = "UPDATE conversation_messages SET body = $2, edited_at = $3 WHERE id = $1"
_DELETE_MESSAGE = "UPDATE conversation_messages SET body = '', deleted_at = $2 WHERE id = $1"
_SET_FIELDS = """UPDATE conversations SET title = $2, status = $3, snooze_until = $4,
  assignee_id = $5, labels = $6 WHERE id = $1"""
_DELETE_CONVERSATION = "UPDATE conversations SET deleted_at = $2 WHERE id = $1"
_ADD_REACTION = """INSERT INTO conversation_reactions (tenant_id, conversation_id, message_id,
  user_id, emoji, created_at) VALUES ($1, $2, $3, $4, $5, $6)"""
_REMOVE_REACTION = """DELETE FROM conversation_reactions
  WHERE message_id = $1 AND user_id = $2 AND emoji = $3"""
_SET_MEMBERSHIP = """UPDATE conversation_members SET muted = $3, starred = $4
  WHERE conversation_id = $1 AND user_id = $2"""


def _writes(state: ConversationState, event: rules.Event) -> list[Write]:
    return _WRITERS[type(event)](state, event)


def _created(s: ConversationState, e: rules.ConversationCreated) -> list[Write]:
    subject = s.subject or {}
    args = (
        s.id,
        s.tenant_id,
        s.kind,
        s.visibility,
        s.title,
        subject.get("type"),
        subject.get("id"),
        s.created_by,
        e.at,
        s.status,
    )
    members = [
        Write(_INSERT_MEMBER, (s.tenant_id, s.id, m.user_id, m.role, m.joined_at, 0))
        for m in s.members.values()
    ]
    return [Write(_INSERT_CONVERSATION, args), *members]


def _sent(s: ConversationState, e: rules.MessageSent) -> list[Write]:
    m = e.message
    args = (
        m.id,
        s.tenant_id,
        s.id,
        m.seq,
        m.author_id,
        m.body,
        m.client_msg_id,
        m.reply_to,
        m.created_at,
    )
    if m.author_id not in s.members:  # the assistant: no read mark
        return [Write(_INSERT_MESSAGE, args)]
    return [Write(_INSERT_MESSAGE, args), Write(_SET_READ, (s.id, m.author_id, m.seq))]


def _joined(s: ConversationState, e: rules.MemberJoined) -> list[Write]:
    return [Write(_INSERT_MEMBER, (s.tenant_id, s.id, e.user_id, e.role, e.at, 0))]


def _changed(s: ConversationState, e: rules.ConversationChanged) -> list[Write]:
    args = (s.id, s.title, s.status, s.snooze_until, s.assignee_id, list(s.labels))
    return [Write(_SET_FIELDS, args)]


def _reaction_added(s: ConversationState, e: rules.ReactionAdded) -> list[Write]:
    args = (s.tenant_id, s.id, e.message_id, e.user_id, e.emoji, e.at)
    return [Write(_ADD_REACTION, args)]


_WRITERS: dict[type, Callable[[Any, Any], list[Write]]] = {
    rules.ConversationCreated: _created,
    rules.MessageSent: _sent,
    rules.MessageEdited: lambda s, e: [Write(_EDIT_MESSAGE, (e.message_id, e.body, e.at))],
    rules.MessageDeleted: lambda s, e: [Write(_DELETE_MESSAGE, (e.message_id, e.at))],
    rules.MemberJoined: _joined,
    rules.MemberLeft: lambda s, e: [Write(_DELETE_MEMBER, (s.id, e.user_id))],
    rules.ConversationChanged: _changed,
    rules.ConversationDeleted: lambda s, e: [Write(_DELETE_CONVERSATION, (s.id, e.at))],
    rules.ReactionAdded: _reaction_added,
    rules.ReactionRemoved: lambda s, e: [
        Write(_REMOVE_REACTION, (e.message_id, e.user_id, e.emoji))
    ],
    rules.ReadMarked: lambda s, e: [Write(_SET_READ, (s.id, e.user_id, e.up_to_seq))],
    rules.MembershipSet: lambda s, e: [
        Write(_SET_MEMBERSHIP, (s.id, e.user_id, e.muted, e.starred))
    ],
}


# -- publications ---------------------------------------------------------


def _published(state: ConversationState, event: rules.Event) -> tuple[str, dict[str, Any]]:
    """The event's wire name and payload: ``{conversation_id, seq, ...}``."""
    head = {"conversation_id": state.id, "seq": state.seq}
    if isinstance(event, rules.ConversationCreated):
        conversation = {
            "id": state.id,
            "tenant_id": state.tenant_id,
            "kind": state.kind,
            "visibility": state.visibility,
            "title": state.title,
            "subject": state.subject,
            "created_by": state.created_by,
            "status": state.status,
        }
        return "conversation:created", head | {
            "conversation": conversation,
            "member_ids": list(event.member_ids),
        }
    if isinstance(event, rules.MessageSent):
        return "message:new", head | {"message": message_view(state.id, event.message)}
    if isinstance(event, rules.MessageEdited | rules.MessageDeleted):
        name = "message:updated" if isinstance(event, rules.MessageEdited) else "message:deleted"
        return name, head | {"message": message_view(state.id, state.messages[event.message_id])}
    if isinstance(event, rules.MemberJoined):
        member = {"user_id": event.user_id, "role": event.role, "by": event.by}
        return "member:joined", head | member | {"joined_at": event.at.isoformat()}
    if isinstance(event, rules.MemberLeft):
        return "member:left", head | {"user_id": event.user_id, "by": event.by}
    if isinstance(event, rules.ReactionAdded | rules.ReactionRemoved):
        action = "added" if isinstance(event, rules.ReactionAdded) else "removed"
        message = state.messages[event.message_id]
        return "reaction", head | {
            "message_id": event.message_id,
            "emoji": event.emoji,
            "user_id": event.user_id,
            "action": action,
            "reactions": rules.reactions_view(message.reactions),
        }
    if isinstance(event, rules.ConversationDeleted):
        return "conversation:deleted", head | {"by": event.by}
    assert isinstance(event, rules.ConversationChanged)
    return "conversation:updated", head | {"changes": _changes(event.changes), "by": event.by}


def _changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Changed fields as JSON: times in RFC 3339, labels as a list."""
    wire = dict(changes)
    if isinstance(wire.get("snooze_until"), datetime):
        wire["snooze_until"] = wire["snooze_until"].isoformat()
    if "labels" in wire:
        wire["labels"] = list(wire["labels"])
    return wire


def _read_payload(state: ConversationState, event: rules.ReadMarked) -> dict[str, Any]:
    return {"conversation_id": state.id, "user_id": event.user_id, "up_to_seq": event.up_to_seq}
