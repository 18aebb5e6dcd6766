"""The conversation entity: one conversation's seq, members, read marks and messages.

The rules live in :mod:`hubbub.chat.rules` and :mod:`hubbub.chat.state`
(pure); this module loads the state from Postgres (:mod:`hubbub.chat.rows`),
turns decided events into SQL writes (the shard's group commit) — every
stream event also as a row of ``conversation_events``, the source of replay
by ``after_seq`` — and into publications on channel ``conversation:{id}``
(each event's wire view, :mod:`hubbub.chat.events`), sent after commit.

The entity key is the conversation id; every command (one of
:data:`~hubbub.chat.commands.ConversationCommand`) runs in its tenant's
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
from hubbub.actors.entity import Decision, Entity, Publication
from hubbub.chat import messages as window
from hubbub.chat import rules
from hubbub.chat.commands import (
    ConversationCommand,
    Delete,
    Edit,
    PostAssistantMessage,
    React,
    Read,
    Send,
    SetMembership,
)
from hubbub.chat.events import ConversationCreated, Event, channel
from hubbub.chat.messages import (
    ClientRef,
    Message,
    MessageRef,
    MessageWindow,
    OlderClientIds,
    OlderIds,
    Ref,
    message_view,
)
from hubbub.chat.rows import (
    conversation_from_row,
    event_row,
    head_write,
    member_from_row,
    message_from_row,
    writes_of,
)
from hubbub.chat.state import ASSISTANT_ID, ConversationState, apply

__all__ = ["ConversationEntity"]

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
    commands = ConversationCommand
    state: ConversationState | None

    @classmethod
    async def load(cls, conn: asyncpg.Connection, keys: list[str]) -> dict[str, Any]:
        rows = await conn.fetch(_LOAD, keys)
        found = {str(r["id"]): conversation_from_row(r) for r in rows}
        for row in await conn.fetch(_LOAD_MEMBERS, keys):
            member = member_from_row(row)
            found[str(row["conversation_id"])].members[member.user_id] = member
        latest: dict[str, list[Message]] = {}
        for row in await conn.fetch(_LOAD_LATEST, keys, window.WINDOW):
            latest.setdefault(str(row["conversation_id"]), []).append(message_from_row(row))
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
        messages = [message_from_row(row) for row in rows]
        await _load_reactions(conn, messages)
        older = [r.before for r in refs if isinstance(r, OlderClientIds)]
        if not older:
            return messages, None
        pairs = await conn.fetch(_LOAD_OLDER_CLIENT_IDS, key, older[0])
        return messages, OlderIds([(str(a), c) for a, c in pairs])

    def missing(self, command: Command) -> frozenset[Hashable]:
        return rules.missing(self.state, cast("ConversationCommand", command.body))

    def merge(
        self, refs: frozenset[Hashable], loaded: tuple[list[Message], OlderIds | None]
    ) -> None:
        assert self.state is not None  # missing names nothing for no conversation
        self.state.messages.merge(cast("frozenset[Ref]", refs), *loaded)

    def handle(self, command: Command, now: datetime) -> Decision:
        body = cast("ConversationCommand", command.body)
        events = rules.decide(self.state, body, now)
        state, writes, publications = self.state, [], []
        for event in events:
            state = apply(state, event)
            writes.extend(writes_of(state, event))
            if event.name is None:
                continue
            data = event.wire(state)
            if event.in_stream:
                writes.append(event_row(state, event.name, data, event.at))
            publications.append(Publication(channel(state.id), event.name, data))
        if state is not None and any(e.in_stream for e in events):
            writes.append(head_write(state))
        self.state = state
        return Decision(_reply(body, state, events), writes, publications)


async def _load_reactions(conn: asyncpg.Connection, messages: list[Message]) -> None:
    """Fill in the reactions of ``messages``, in the order they were made."""
    by_id = {m.id: m for m in messages}
    for row in await conn.fetch(_LOAD_REACTIONS, list(by_id)):
        reactions = by_id[str(row["message_id"])].reactions
        reactions.setdefault(row["emoji"], []).append(str(row["user_id"]))


# -- replies --------------------------------------------------------------


def _reply(
    body: ConversationCommand, state: ConversationState | None, events: list[Event]
) -> dict[str, Any]:
    """What the command answers: the message it is about, the member's settings,
    or the conversation's ``{conversation_id, created, seq, role}``."""
    assert state is not None  # a command on no conversation was refused by decide
    reply = _REPLIES.get(type(body))
    if reply is not None:
        return reply(state, body)
    member = state.members.get(getattr(body, "actor", ""))  # Wake has no actor
    return {
        "conversation_id": state.id,
        "created": any(isinstance(e, ConversationCreated) for e in events),
        "seq": state.seq,
        "role": None if member is None else member.role,
    }


def _sent(state: ConversationState, body: Send | PostAssistantMessage) -> dict[str, Any]:
    author = body.actor if isinstance(body, Send) else ASSISTANT_ID
    sent = state.messages.sent(author, body.client_msg_id)
    assert sent is not None  # decide sent it now or before
    return message_view(state.id, sent)


def _about(state: ConversationState, body: Edit | Delete | React) -> dict[str, Any]:
    return message_view(state.id, state.messages[body.message_id])


def _membership(state: ConversationState, body: SetMembership) -> dict[str, Any]:
    member = state.members[body.actor]
    return {
        "conversation_id": state.id,
        "user_id": body.actor,
        "muted": member.muted,
        "starred": member.starred,
    }


def _read(state: ConversationState, body: Read) -> dict[str, Any]:
    member = state.members[body.actor]
    return {
        "conversation_id": state.id,
        "user_id": body.actor,
        "last_read_seq": member.last_read_seq,
    }


_REPLIES: dict[type, Callable[[ConversationState, Any], dict[str, Any]]] = {
    Send: _sent,
    PostAssistantMessage: _sent,
    Edit: _about,
    Delete: _about,
    React: _about,
    SetMembership: _membership,
    Read: _read,
}
