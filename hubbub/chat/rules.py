"""The rules of one conversation, pure: :func:`decide` and :func:`missing`.

No I/O, no clock (``now`` is passed in), no Ray. :func:`decide` checks a
typed command (:mod:`hubbub.chat.commands`) against the state and returns
the events it causes (:mod:`hubbub.chat.events`), or raises an AppError and
changes nothing; it dispatches on the command's type through one table of
deciders. :func:`~hubbub.chat.state.apply` folds the events in.

A snoozed support conversation wakes (back to open) once ``snooze_until``
has passed: any command that reaches the conversation after that time ends
with the wake event, and the gateways' sweep sends :class:`Wake` to those
nobody touched (``hubbub.chat.snooze``). A deleted conversation answers 404
to everything, like one that never existed. ``PostAssistantMessage`` is a
command for the jobs that produce replies, never for a client.

The state holds only a window of the messages (:mod:`hubbub.chat.messages`).
:func:`missing` names the messages a command is about that the window cannot
answer for; the entity reads them into the window before :func:`decide`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hubbub.chat.commands import (
    AddMembers,
    Authorize,
    ConversationCommand,
    Create,
    Delete,
    DeleteConversation,
    Edit,
    Leave,
    PostAssistantMessage,
    React,
    Read,
    RemoveMember,
    Send,
    SetMembership,
    Update,
    Wake,
)
from hubbub.chat.events import (
    ConversationChanged,
    ConversationCreated,
    ConversationDeleted,
    Event,
    MemberJoined,
    MemberLeft,
    MembershipSet,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    ReactionAdded,
    ReactionRemoved,
    ReadMarked,
)
from hubbub.chat.messages import Message, MessageRef, Ref
from hubbub.chat.state import (
    ASSISTANT_ID,
    KINDS,
    MANAGERS,
    STATUSES,
    SUPPORT_FIELDS,
    ConversationState,
    Member,
    is_due,
)
from hubbub.errors import AppError, FieldError

__all__ = ["decide", "missing"]


def decide(
    state: ConversationState | None, command: ConversationCommand, now: datetime
) -> list[Event]:
    """The events of ``command``; AppError when it is refused."""
    if state is not None and state.deleted:
        raise AppError.not_found("conversation")
    if isinstance(command, Create):
        return _create(state, command, now)
    if state is None:
        raise AppError.not_found("conversation")
    if missing(state, command):
        name = type(command).__name__
        raise LookupError(f"{name} is about messages outside the window: read them first")
    events = _DECIDERS[type(command)](state, command, now)
    if is_due(state, now) and not any(_sets_status(e) for e in events):
        events.append(ConversationChanged(now, {"status": "open", "snooze_until": None}, None))
    return events


def missing(state: ConversationState | None, command: ConversationCommand) -> frozenset[Ref]:
    """The messages ``command`` is about that only Postgres can tell of."""
    if state is None or state.deleted:
        return frozenset()
    if isinstance(command, Send):
        refs = _about_send(state, command, command.actor)
    elif isinstance(command, PostAssistantMessage):
        refs = _about_send(state, command, ASSISTANT_ID)
    elif isinstance(command, Edit | Delete | React):
        refs = [MessageRef(command.message_id)]
    else:
        return frozenset()
    return frozenset(ref for ref in refs if state.messages.unknown(ref))


def _about_send(
    state: ConversationState, command: Send | PostAssistantMessage, author: str
) -> list[Ref]:
    if state.messages.sent(author, command.client_msg_id) is not None:
        return []  # a retry: it needs nothing more
    refs = state.messages.about_client(author, command.client_msg_id)
    return refs if command.reply_to is None else [*refs, MessageRef(command.reply_to)]


def _sets_status(event: Event) -> bool:
    return isinstance(event, ConversationChanged) and "status" in event.changes


def _create(state: ConversationState | None, command: Create, now: datetime) -> list[Event]:
    if state is not None:
        _member(state, command.actor)  # an existing conversation: get, if you are in it
        return []
    kind = command.kind
    if kind not in KINDS:
        raise AppError("validation_failed", f"expected kind in {KINDS}, got {kind!r}", status=422)
    member_ids = tuple(dict.fromkeys([command.actor, *command.member_ids]))
    if kind == "direct" and len(member_ids) != 2:
        raise AppError(
            "validation_failed",
            f"a direct conversation has exactly two members, got {len(member_ids)}",
            status=422,
        )
    if kind == "agent" and len(member_ids) != 1:
        raise AppError(
            "validation_failed",
            f"an agent conversation is you and the assistant: expected no member_ids, "
            f"got {len(member_ids) - 1}",
            status=422,
        )
    conversation = ConversationState(
        id=command.conversation_id,
        tenant_id=command.tenant_id,
        kind=kind,
        visibility=command.visibility or "private",
        title=command.title,
        subject=command.subject,
        created_by=command.actor,
        created_at=now,
        updated_at=now,
        status="open" if kind == "support" else None,
    )
    return [ConversationCreated(now, conversation, member_ids)]


def _send(state: ConversationState, command: Send, now: datetime) -> list[Event]:
    return _new_message(state, _member(state, command.actor).user_id, command, now)


def _new_message(
    state: ConversationState, actor: str, command: Send | PostAssistantMessage, now: datetime
) -> list[Event]:
    """``actor``'s message (none if its ``client_msg_id`` was sent already)."""
    if state.messages.sent(actor, command.client_msg_id) is not None:
        return []  # a retry: the reply is the message already sent
    reply_to = command.reply_to
    if reply_to is not None and reply_to not in state.messages:
        raise AppError(
            "reply_to_not_found",
            f"reply_to names no message of this conversation: {reply_to}",
            status=422,
        )
    message = Message(
        id=command.message_id,
        seq=state.seq + 1,
        author_id=actor,
        body=command.body,
        client_msg_id=command.client_msg_id,
        reply_to=reply_to,
        created_at=now,
    )
    return [MessageSent(now, message)]


def _post_assistant_message(
    state: ConversationState, command: PostAssistantMessage, now: datetime
) -> list[Event]:
    """A message by the assistant (:data:`ASSISTANT_ID`), idempotent by ``client_msg_id``."""
    if state.kind != "agent":
        raise AppError(
            "not_agent_conversation",
            f"expected an agent conversation for an assistant message, got kind {state.kind!r}",
            status=409,
        )
    return _new_message(state, ASSISTANT_ID, command, now)


def _edit(state: ConversationState, command: Edit, now: datetime) -> list[Event]:
    actor = _member(state, command.actor).user_id
    message = _message(state, command.message_id)
    if message.author_id != actor:
        raise AppError("not_author", "only the author may edit a message", status=403)
    if message.deleted:
        raise AppError("message_deleted", "a deleted message cannot be edited", status=409)
    return [MessageEdited(now, message.id, command.body)]


def _delete(state: ConversationState, command: Delete, now: datetime) -> list[Event]:
    member = _member(state, command.actor)
    message = _message(state, command.message_id)
    if message.author_id != member.user_id and member.role not in MANAGERS:
        raise AppError("not_author", "only the author, an owner or an admin may delete", status=403)
    if message.deleted:
        return []  # already a tombstone
    return [MessageDeleted(now, message.id, member.user_id)]


def _add_members(state: ConversationState, command: AddMembers, now: datetime) -> list[Event]:
    actor = command.actor
    user_ids = list(dict.fromkeys(command.user_ids))
    self_join = actor not in state.members and user_ids == [actor]
    if self_join and state.kind == "channel" and state.visibility == "public":
        return [MemberJoined(now, actor, "member", actor)]
    member = _member(state, actor)
    _members_fixed(state)
    if member.role not in MANAGERS and not (
        state.kind == "channel" and state.visibility == "public"
    ):
        raise AppError("insufficient_role", "adding members needs owner or admin", status=403)
    return [MemberJoined(now, u, "member", actor) for u in user_ids if u not in state.members]


def _remove_member(state: ConversationState, command: RemoveMember, now: datetime) -> list[Event]:
    member = _member(state, command.actor)
    _members_fixed(state)
    target = state.members.get(command.user_id)
    if target is None:
        raise AppError.not_found("member")
    if target.user_id == member.user_id:
        return [MemberLeft(now, target.user_id, member.user_id)]
    if member.role not in MANAGERS or (target.role == "owner" and member.role != "owner"):
        raise AppError("insufficient_role", "removing this member needs a higher role", status=403)
    return [MemberLeft(now, target.user_id, member.user_id)]


def _leave(state: ConversationState, command: Leave, now: datetime) -> list[Event]:
    member = _member(state, command.actor)
    _members_fixed(state)
    return [MemberLeft(now, member.user_id, member.user_id)]


def _update(state: ConversationState, command: Update, now: datetime) -> list[Event]:
    """Change any of title, status, snooze_until, assignee_id, labels (those given).

    The title needs owner or admin (and no direct conversation); the support
    fields need a support conversation and any member (an agent of the
    inbox). A new assignee who is not a member yet joins first.
    """
    member = _member(state, command.actor)
    given = command.changes()
    if "title" in given:
        _not_direct(state)
        if member.role not in MANAGERS:
            raise AppError(
                "insufficient_role", "changing the title needs owner or admin", status=403
            )
    _check_support_fields(state, given)
    if given.get("snooze_until") is not None:
        given["snooze_until"] = _future(given["snooze_until"], now)
        given.setdefault("status", "snoozed")
    status = given.get("status", state.status)
    if status == "snoozed":
        given.setdefault("snooze_until", state.snooze_until if state.status == "snoozed" else None)
        if given["snooze_until"] is None:
            raise _invalid("snooze_until", "expected a time to wake when status is snoozed")
    elif given.get("snooze_until") is not None:
        raise _invalid("snooze_until", f"expected no snooze_until with status {status!r}")
    elif state.snooze_until is not None:
        given["snooze_until"] = None  # leaving snoozed forgets the wake-up time
    if "labels" in given:
        given["labels"] = tuple(given["labels"])
    changes = {k: v for k, v in given.items() if getattr(state, k) != v}
    events: list[Event] = []
    assignee = changes.get("assignee_id")
    if assignee is not None and assignee not in state.members:
        events.append(MemberJoined(now, assignee, "member", member.user_id))
    if changes:
        events.append(ConversationChanged(now, changes, member.user_id))
    return events


def _check_support_fields(state: ConversationState, given: dict[str, Any]) -> None:
    named = [f for f in SUPPORT_FIELDS if f in given]
    if named and state.kind != "support":
        message = f"only support conversations have {', '.join(named)}; this is a {state.kind}"
        raise AppError(
            "validation_failed",
            message,
            status=422,
            errors=tuple(FieldError("body", f, "support conversations only") for f in named),
        )
    status = given.get("status", "open")
    if status not in STATUSES:
        raise _invalid("status", f"expected status in {STATUSES}, got {status!r}")


def _future(at: datetime, now: datetime) -> datetime:
    if at.tzinfo is None:
        raise _invalid("snooze_until", f"expected a time with a UTC offset, got {at.isoformat()}")
    if at <= now:
        raise _invalid(
            "snooze_until", f"expected a time after {now.isoformat()}, got {at.isoformat()}"
        )
    return at


def _invalid(field_name: str, message: str) -> AppError:
    return AppError(
        "validation_failed",
        message,
        status=422,
        errors=(FieldError("body", field_name, message),),
    )


def _wake(state: ConversationState, command: Wake, now: datetime) -> list[Event]:
    """Nothing by itself: :func:`decide` appends the wake event when it is due."""
    return []


def _delete_conversation(
    state: ConversationState, command: DeleteConversation, now: datetime
) -> list[Event]:
    member = _member(state, command.actor)
    if member.role not in MANAGERS:
        raise AppError(
            "insufficient_role", "deleting a conversation needs owner or admin", status=403
        )
    return [ConversationDeleted(now, member.user_id)]


def _react(state: ConversationState, command: React, now: datetime) -> list[Event]:
    """Add (``add``) or remove the actor's ``emoji`` on a message; idempotent."""
    actor = _member(state, command.actor).user_id
    message = _message(state, command.message_id)
    if message.deleted:
        raise AppError("message_deleted", "a deleted message takes no reactions", status=409)
    present = actor in message.reactions.get(command.emoji, ())
    if command.add == present:
        return []  # one reaction per user per emoji; removing one not there changes nothing
    event = ReactionAdded if command.add else ReactionRemoved
    return [event(now, message.id, command.emoji, actor)]


def _set_membership(state: ConversationState, command: SetMembership, now: datetime) -> list[Event]:
    member = _member(state, command.actor)
    muted = member.muted if command.muted is None else command.muted
    starred = member.starred if command.starred is None else command.starred
    if (muted, starred) == (member.muted, member.starred):
        return []
    return [MembershipSet(now, member.user_id, muted, starred)]


def _read(state: ConversationState, command: Read, now: datetime) -> list[Event]:
    member = _member(state, command.actor)
    up_to = command.up_to_seq
    if up_to < 0 or up_to > state.seq:
        raise AppError(
            "seq_out_of_range",
            f"expected up_to_seq between 0 and {state.seq} (the last seq), got {up_to}",
            status=422,
        )
    if up_to <= member.last_read_seq:
        return []  # a read mark never moves backwards
    return [ReadMarked(now, member.user_id, up_to)]


def _authorize(state: ConversationState, command: Authorize, now: datetime) -> list[Event]:
    _member(state, command.actor)
    return []


def _member(state: ConversationState, actor: str) -> Member:
    """The acting member; 404 for anyone else, so a conversation never leaks."""
    member = state.members.get(actor)
    if member is None:
        raise AppError.not_found("conversation")
    return member


def _message(state: ConversationState, message_id: str) -> Message:
    message = state.messages.get(message_id)
    if message is None:
        raise AppError.not_found("message")
    return message


def _not_direct(state: ConversationState) -> None:
    if state.kind == "direct":
        raise AppError(
            "direct_conversation_fixed",
            "a direct conversation's members and title cannot change",
            status=409,
        )


def _members_fixed(state: ConversationState) -> None:
    """Direct and agent conversations keep the members they were created with."""
    _not_direct(state)
    if state.kind == "agent":
        raise AppError(
            "agent_conversation_fixed",
            "an agent conversation is its user and the assistant: its members cannot change",
            status=409,
        )


#: The decider of each command but :class:`Create` (the one that needs no state).
_DECIDERS: dict[type, Callable[[ConversationState, Any, datetime], list[Event]]] = {
    Send: _send,
    PostAssistantMessage: _post_assistant_message,
    Edit: _edit,
    Delete: _delete,
    AddMembers: _add_members,
    RemoveMember: _remove_member,
    Leave: _leave,
    Update: _update,
    Read: _read,
    Authorize: _authorize,
    Wake: _wake,
    DeleteConversation: _delete_conversation,
    React: _react,
    SetMembership: _set_membership,
}
