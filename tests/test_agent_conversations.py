"""Agent conversations: a user with the AI assistant. Created with no other
members, listed and used like any conversation; the assistant's messages come
through the ``post_assistant_message`` command (the jobs' way in), authored by
``ASSISTANT_ID`` — pure rules first, then through the router on a real gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestServer

from hubbub.actors.command import Command
from hubbub.chat import rules
from hubbub.chat.commands import (
    AddMembers,
    ConversationCommand,
    Create,
    Leave,
    PostAssistantMessage,
)
from hubbub.chat.events import Event, MessageSent
from hubbub.chat.state import ASSISTANT_ID, ConversationState, apply
from hubbub.errors import AppError
from hubbub.services import ROUTER
from tests.support.chat import CONVERSATIONS, new_team
from tests.test_chat_sockets import ChatClient

NOW = datetime(2026, 1, 1, tzinfo=UTC)
USER = str(uuid.uuid4())


def _created(kind: str = "agent", member_ids: tuple[str, ...] = ()) -> ConversationState:
    create = Create(USER, str(uuid.uuid4()), str(uuid.uuid4()), kind, list(member_ids))
    (event,) = rules.decide(None, create, NOW)
    return apply(None, event)


def _assistant_says(state: ConversationState, body: str, key: str) -> list[Event]:
    return rules.decide(state, PostAssistantMessage(body, key, str(uuid.uuid4())), NOW)


def test_an_agent_conversation_is_its_creator_alone_among_members() -> None:
    state = _created()
    assert state.kind == "agent" and list(state.members) == [USER]
    assert state.members[USER].role == "owner"
    with pytest.raises(AppError) as refused:
        _created(member_ids=(str(uuid.uuid4()),))
    assert refused.value.code == "validation_failed"


def test_the_assistant_posts_idempotently_and_is_never_a_member() -> None:
    state = _created()
    (event,) = _assistant_says(state, "Hello!", "job-1:reply")
    assert isinstance(event, MessageSent)
    assert (event.message.author_id, event.message.seq) == (ASSISTANT_ID, 2)
    state = apply(state, event)
    assert state.seq == 2 and state.members[USER].last_read_seq == 0  # unread for the user
    assert ASSISTANT_ID not in state.members
    assert _assistant_says(state, "Hello again?", "job-1:reply") == []  # a retry


def test_only_agent_conversations_take_assistant_messages() -> None:
    with pytest.raises(AppError) as refused:
        _assistant_says(_created("group"), "Hi", "k")
    assert refused.value.code == "not_agent_conversation"


@pytest.mark.parametrize("command", [AddMembers(USER, [str(uuid.uuid4())]), Leave(USER)])
def test_an_agent_conversations_members_are_fixed(command: ConversationCommand) -> None:
    with pytest.raises(AppError) as refused:
        rules.decide(_created(), command, NOW)
    assert refused.value.code == "agent_conversation_fixed"


async def test_agent_conversations_over_http_sockets_and_the_router(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    user, other = team.people
    status, created = await team.call("POST", CONVERSATIONS, user, {"kind": "agent"})
    assert status == 201, created
    assert (created["kind"], created["role"], created["last_seq"]) == ("agent", "owner", 1)
    status, problem = await team.call(
        "POST", CONVERSATIONS, user, {"kind": "agent", "member_ids": [other.user_id]}
    )
    assert (status, problem["code"]) == (422, "validation_failed")
    status, listed = await team.call("GET", f"{CONVERSATIONS}?kind=agent", user)
    assert status == 200 and [c["id"] for c in listed["items"]] == [created["id"]]
    status, problem = await team.call(
        "POST", f"{CONVERSATIONS}/{created['id']}/members", user, {"user_ids": [other.user_id]}
    )
    assert (status, problem["code"]) == (409, "agent_conversation_fixed")

    asked = await team.send(user, created["id"], "What is hubbub?")
    listener = await ChatClient().connect(
        str(gateway.make_url("")).rstrip("/"), user.token, team.tenant_id
    )
    try:
        joined = await listener.call(
            "conversation:join", {"conversation_id": created["id"], "since_seq": 2}
        )
        assert joined["data"]["last_seq"] == 2
        post = PostAssistantMessage(
            "A realtime backend.", "job-7:reply", str(uuid.uuid4()), asked["id"]
        )
        command = Command(
            "conversation", created["id"], post, team.tenant_id, "assistant:job-7:reply"
        )
        reply = await gateway.app[ROUTER].send(command)
        assert (reply["author_id"], reply["seq"], reply["reply_to"]) == (
            ASSISTANT_ID,
            3,
            asked["id"],
        )
        event, data = await listener.next()  # the reply before the side effects: live event
        assert (event, data["seq"], data["message"]) == ("message:new", 3, reply)
        again = Command(
            "conversation",
            created["id"],
            PostAssistantMessage(post.body, post.client_msg_id, str(uuid.uuid4()), post.reply_to),
            team.tenant_id,
        )
        assert await gateway.app[ROUTER].send(again) == reply  # same client_msg_id: same one
    finally:
        await listener.client.disconnect()

    status, unread = await team.call("GET", f"{CONVERSATIONS}/unread", user)
    assert status == 200 and unread["total"] == 1, unread
    status, page = await team.call("GET", f"{CONVERSATIONS}/{created['id']}/messages", user)
    assert status == 200
    assert [(m["author_id"], m["body"]) for m in page["items"]] == [
        (user.user_id, "What is hubbub?"),
        (ASSISTANT_ID, "A realtime backend."),
    ]
    group = await team.conversation(user, "group", other)
    with pytest.raises(AppError) as refused:
        await gateway.app[ROUTER].send(Command("conversation", group["id"], post, team.tenant_id))
    assert refused.value.code == "not_agent_conversation"
