"""A conversation's events, pure: each one's wire view (written once, beside the
event) and the SQL writes it turns into (from the tables' column lists), with
a fixed NOW and no event loop."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hubbub.chat import rules
from hubbub.chat.commands import (
    AddMembers,
    ConversationCommand,
    Create,
    Delete,
    DeleteConversation,
    Edit,
    React,
    Read,
    RemoveMember,
    Send,
    SetMembership,
    Update,
)
from hubbub.chat.events import Event, MembershipSet, MessageSent, ReadMarked
from hubbub.chat.rows import writes_of
from hubbub.chat.state import ConversationState, apply
from hubbub.chat.wire import MessageView

NOW = datetime(2030, 1, 1, tzinfo=UTC)
A, B, C, CID, M1 = (f"00000000-0000-0000-0000-00000000000{n}" for n in (1, 2, 3, 4, 5))


def _run(
    state: ConversationState | None, command: ConversationCommand
) -> tuple[ConversationState, list[Event]]:
    events = rules.decide(state, command, NOW)
    for event in events:
        state = apply(state, event)
        for write in writes_of(state, event):
            placeholders = {int(n) for n in re.findall(r"\$(\d+)", write.statement)}
            assert placeholders == set(range(1, len(write.args) + 1)), write
    assert state is not None
    return state, events


def _story() -> list[tuple[ConversationState, Event, dict | None]]:
    """Every kind of event once, each with the wire payload it had when applied."""
    seen: list[tuple[ConversationState, Event, dict | None]] = []
    state = None
    commands: list[ConversationCommand] = [
        Create(A, CID, "t", "support", [B], "Help"),
        Send(A, "hello", "k1", M1),
        Edit(A, M1, "hello!"),
        React(B, M1, "👍", True),
        React(B, M1, "👍", False),
        AddMembers(A, [C]),
        Update(A, status="snoozed", snooze_until=NOW + timedelta(hours=1), labels=["vip"]),
        Read(B, 2),
        SetMembership(B, muted=True),
        Delete(A, M1),
        RemoveMember(A, C),
        DeleteConversation(A),
    ]
    for command in commands:
        state, events = _run(state, command)
        for event in events:
            seen.append((state, event, None if event.name is None else event.wire(state)))
    return seen


def test_stream_events_carry_the_conversation_and_their_seq() -> None:
    names = []
    for state, event, data in _story():
        if event.in_stream:
            assert data is not None and data["conversation_id"] == state.id
            names.append((event.name, data["seq"]))
    assert names == [
        ("conversation:created", 1),
        ("message:new", 2),
        ("message:updated", 3),
        ("reaction", 4),
        ("reaction", 5),
        ("member:joined", 6),
        ("conversation:updated", 7),
        ("message:deleted", 8),
        ("member:left", 9),
        ("conversation:deleted", 10),
    ]


def test_private_events_take_no_seq_and_membership_is_never_published() -> None:
    private = [(e, data) for _, e, data in _story() if not e.in_stream]
    [(read, read_data), (membership, membership_data)] = private
    assert isinstance(read, ReadMarked) and read.name == "read"
    assert read_data == {"conversation_id": CID, "user_id": B, "up_to_seq": 2}
    assert isinstance(membership, MembershipSet) and membership.name is None
    assert membership_data is None


def test_a_sent_messages_wire_view_is_the_http_message_shape() -> None:
    [(_, _, data)] = [s for s in _story() if isinstance(s[1], MessageSent)]
    assert data is not None
    message = data["message"]
    assert set(message) == set(MessageView.model_fields)
    view = MessageView.model_validate(message)
    assert (str(view.id), view.seq, view.client_msg_id, view.created_at) == (M1, 2, "k1", NOW)


def test_changed_fields_go_out_as_json() -> None:
    [changes] = [d["changes"] for _, e, d in _story() if e.name == "conversation:updated"]
    assert changes == {
        "status": "snoozed",
        "snooze_until": (NOW + timedelta(hours=1)).isoformat(),
        "labels": ["vip"],
    }
