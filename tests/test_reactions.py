"""Reactions through a real gateway and real shards: one per user per emoji,
stream events with seq (live and replayed), views that carry them, and bad
input, deleted messages, non-members and other tenants refused; reactions
on messages an active conversation no longer keeps in memory."""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp.test_utils import TestServer

from hubbub.actors.command import Command
from hubbub.chat.commands import React
from tests.support.chat import CONVERSATIONS, LocalConversations, new_team
from tests.support.tenants import Account
from tests.test_chat_sockets import ChatClient, _url


async def test_reactions_are_added_once_removed_and_shown(gateway: TestServer) -> None:
    team = await new_team(gateway, 3)
    owner, ann, bob = team.people
    found = await team.conversation(owner, "group", ann, bob)
    message = await team.send(owner, found["id"], "ship it")
    assert message["reactions"] == []
    path = f"{CONVERSATIONS}/{found['id']}/messages/{message['id']}/reactions"
    status, view = await team.call("POST", path, ann, {"emoji": "👍"})
    assert status == 200, view
    assert view["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [ann.user_id]}]
    status, again = await team.call("POST", path, ann, {"emoji": "👍"})  # one per user and emoji
    assert again["reactions"] == view["reactions"]
    await team.call("POST", path, bob, {"emoji": "👍"})
    status, view = await team.call("POST", path, bob, {"emoji": "🎉"})
    assert [(r["emoji"], r["count"]) for r in view["reactions"]] == [("👍", 2), ("🎉", 1)]
    status, view = await team.call("DELETE", path, ann, {"emoji": "👍"})
    assert status == 200 and view["reactions"][0]["user_ids"] == [bob.user_id]
    status, same = await team.call("DELETE", path, ann, {"emoji": "👍"})  # not there: no change
    assert same["reactions"] == view["reactions"]

    status, page = await team.call("GET", f"{CONVERSATIONS}/{found['id']}/messages", owner)
    assert [(r["emoji"], r["count"]) for r in page["items"][-1]["reactions"]] == [
        ("👍", 1),
        ("🎉", 1),
    ]
    status, mine = await team.call("GET", f"{CONVERSATIONS}/{found['id']}", owner)
    assert len(mine["last_message"]["reactions"]) == 2
    status, events = await team.call(
        "GET", f"{CONVERSATIONS}/{found['id']}/events?after_seq=2", owner
    )
    got = [(e["seq"], e["data"]["emoji"], e["data"]["action"]) for e in events["items"]]
    assert got == [(3, "👍", "added"), (4, "👍", "added"), (5, "🎉", "added"), (6, "👍", "removed")]
    assert {e["event"] for e in events["items"]} == {"reaction"}


async def test_reactions_reach_joined_sockets_and_replay(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "group", ann)
    message = await team.send(owner, found["id"], "hello")
    path = f"{CONVERSATIONS}/{found['id']}/messages/{message['id']}/reactions"
    listener = await ChatClient().connect(_url(gateway), ann.token, team.tenant_id)
    try:
        await listener.call("conversation:join", {"conversation_id": found["id"], "since_seq": 2})
        await team.call("POST", path, owner, {"emoji": ":wave:"})
        event, data = await listener.next()
        assert (event, data["seq"], data["message_id"], data["user_id"]) == (
            "reaction",
            3,
            message["id"],
            owner.user_id,
        )
        assert data["reactions"] == [{"emoji": ":wave:", "count": 1, "user_ids": [owner.user_id]}]
        ack = await listener.call(
            "conversation:join", {"conversation_id": found["id"], "since_seq": 2}
        )
        assert [e["event"] for e in ack["data"]["events"]] == ["reaction"]
    finally:
        await listener.client.disconnect()


async def test_bad_emoji_deleted_messages_and_strangers_are_refused(gateway: TestServer) -> None:
    team = await new_team(gateway, 3)
    owner, ann, outsider = team.people
    found = await team.conversation(owner, "group", ann)
    message = await team.send(owner, found["id"], "x")
    base = f"{CONVERSATIONS}/{found['id']}/messages"
    path = f"{base}/{message['id']}/reactions"
    for body in ({"emoji": ""}, {"emoji": "x" * 33}, {"emoji": "thumbs up"}, {"emoji": "\x07"}, {}):
        status, problem = await team.call("POST", path, ann, body)
        assert (status, problem["code"]) == (422, "validation_failed"), body
        assert problem["errors"][0]["field"] == "emoji", problem
    status, problem = await team.call("POST", path, ann, {"emoji": "👍", "extra": 1})
    assert (status, problem["errors"][0]["field"]) == (422, "extra")
    status, problem = await team.call("POST", path, outsider, {"emoji": "👍"})
    assert (status, problem["code"]) == (404, "not_found")
    status, problem = await team.call(
        "POST", f"{base}/{uuid.uuid4()}/reactions", ann, {"emoji": "👍"}
    )
    assert (status, problem["code"]) == (404, "not_found")
    other = await new_team(gateway, 1)
    status, _ = await other.call("POST", path, other.people[0], {"emoji": "👍"})
    assert status == 404
    await team.call("DELETE", f"{base}/{message['id']}", owner)
    status, problem = await team.call("POST", path, ann, {"emoji": "👍"})
    assert (status, problem["code"]) == (409, "message_deleted")
    status, events = await team.call("GET", f"{CONVERSATIONS}/{found['id']}/events", owner)
    assert "reaction" not in [e["event"] for e in events["items"]]


async def test_reactions_on_a_message_outside_the_window(
    small_window: LocalConversations, owner_conn: asyncpg.Connection
) -> None:
    """With only the latest 3 messages in memory, an old message takes
    reactions once per user and emoji, as a recent one does."""
    chat = small_window
    owner, ann, _ = chat.team.people
    cid = await chat.create(owner, ann)
    sent = [o.unwrap() for o in await chat.run(*(chat.send(cid, owner, f"c{n}") for n in range(5)))]
    old, other = sent[0]["id"], sent[1]["id"]

    def react(who: Account, message_id: str, emoji: str, add: bool = True) -> Command:
        return chat.command(cid, React(who.user_id, message_id, emoji, add))

    view = await chat.ask(react(ann, old, "👍"))
    assert view["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [ann.user_id]}]
    await chat.ask(react(owner, other, "🎉"))  # reads another old message in its place
    again, mine = await chat.run(react(ann, old, "👍"), react(owner, old, "👍"))
    assert again.unwrap()["reactions"] == view["reactions"]  # one per user and emoji
    assert mine.unwrap()["reactions"][0]["count"] == 2
    removed = await chat.ask(react(ann, old, "👍", add=False))
    assert removed["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [owner.user_id]}]
    rows = await owner_conn.fetch(
        "SELECT user_id::text, emoji FROM conversation_reactions WHERE message_id = $1",
        uuid.UUID(old),
    )
    assert [tuple(r) for r in rows] == [(owner.user_id, "👍")]
