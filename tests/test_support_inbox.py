"""Support conversations (status, snooze waking, assignee, labels), soft deletion,
per-member mute/star and the public channel directory: the pure rules first,
then through a real gateway, real shards and real sockets."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hubbub.chat import rules
from hubbub.chat.commands import (
    Authorize,
    ConversationCommand,
    Create,
    DeleteConversation,
    Send,
    Update,
    Wake,
)
from hubbub.chat.events import MessageSent
from hubbub.chat.snooze import SNOOZE
from hubbub.chat.state import ConversationState, apply, is_due
from hubbub.errors import AppError
from tests.support.chat import CONVERSATIONS, Team, new_team
from tests.test_chat_sockets import ChatClient, _url

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _support(**fields: object) -> ConversationState:
    state = None
    for event in rules.decide(None, Create("a", "c", "t", "support", ["b"]), NOW):
        state = apply(state, event)
    assert state is not None
    for name, value in fields.items():
        setattr(state, name, value)
    return state


def _refused(state: ConversationState, command: ConversationCommand) -> AppError:
    with pytest.raises(AppError) as caught:
        rules.decide(state, command, NOW)
    return caught.value


def test_support_fields_are_refused_on_other_kinds_naming_each() -> None:
    state = _support(kind="group")
    error = _refused(state, Update("a", status="pending", labels=["x"]))
    assert (error.code, error.status) == ("validation_failed", 422)
    assert [e.field for e in error.errors] == ["status", "labels"]


def test_snooze_needs_a_future_time_and_leaving_snoozed_clears_it() -> None:
    state = _support()
    error = _refused(state, Update("a", status="snoozed"))
    assert [e.field for e in error.errors] == ["snooze_until"]
    past = NOW - timedelta(seconds=1)
    assert _refused(state, Update("a", snooze_until=past)).errors[0].field == "snooze_until"
    later = NOW + timedelta(hours=1)
    [event] = rules.decide(state, Update("b", snooze_until=later), NOW)
    assert event.changes == {"status": "snoozed", "snooze_until": later}
    apply(state, event)
    [event] = rules.decide(state, Update("b", status="open"), NOW)
    assert event.changes == {"status": "open", "snooze_until": None}
    error = _refused(state, Update("a", status="open", snooze_until=later))
    assert error.errors[0].field == "snooze_until"


def test_any_command_after_the_snooze_ends_with_the_wake() -> None:
    state = _support(status="snoozed", snooze_until=NOW)
    assert is_due(state, NOW) and not is_due(state, NOW - timedelta(seconds=1))
    assert rules.decide(state, Wake(), NOW - timedelta(seconds=1)) == []
    sent, woke = rules.decide(state, Send("b", "hi", "m", "m1"), NOW)
    assert isinstance(sent, MessageSent) and sent.message.seq == state.seq + 1
    assert woke.changes == {"status": "open", "snooze_until": None} and woke.by is None
    # A refused command wakes nothing; the sweep's `wake` does.
    _refused(state, Send("stranger", "x", "x", "x1"))
    [woke] = rules.decide(state, Wake(), NOW)
    assert woke.changes["status"] == "open"


def test_a_deleted_conversation_refuses_everything_as_absent() -> None:
    state = _support()
    for event in rules.decide(state, DeleteConversation("a"), NOW):
        apply(state, event)
    for command in (Authorize("a"), Create("a", "c", "t", "support"), Wake()):
        assert _refused(state, command).code == "not_found"


async def _events(team: Team, conversation_id: str, after: int = 0) -> list[tuple[int, str, dict]]:
    path = f"{CONVERSATIONS}/{conversation_id}/events?after_seq={after}"
    status, page = await team.call("GET", path, team.people[0])
    assert status == 200, page
    return [(e["seq"], e["event"], e["data"]) for e in page["items"]]


async def test_support_status_assignee_and_labels_are_events(gateway: TestServer) -> None:
    team = await new_team(gateway, 3)
    owner, agent, other = team.people
    found = await team.conversation(owner, "support", agent, title="Order 42")
    assert (found["status"], found["labels"], found["assignee_id"]) == ("open", [], None)
    one = f"{CONVERSATIONS}/{found['id']}"
    change = {
        "status": "pending",
        "labels": ["vip", "billing", "vip"],
        "assignee_id": other.user_id,
    }
    status, updated = await team.call("PATCH", one, agent, change)
    assert status == 200, updated
    assert (updated["status"], updated["labels"]) == ("pending", ["vip", "billing"])
    assert updated["assignee_id"] == other.user_id and updated["last_seq"] == 3
    assert (await team.call("GET", one, other))[0] == 200  # the assignee joined
    events = await _events(team, found["id"], 1)
    assert [(s, e) for s, e, _ in events] == [(2, "member:joined"), (3, "conversation:updated")]
    assert events[1][2]["changes"] == {
        "status": "pending",
        "labels": ["vip", "billing"],
        "assignee_id": other.user_id,
    }
    assert events[1][2]["by"] == agent.user_id
    # The same values again change nothing; unassigning does.
    status, same = await team.call("PATCH", one, agent, {"status": "pending"})
    assert (status, same["last_seq"]) == (200, 3)
    status, none = await team.call("PATCH", one, agent, {"assignee_id": None})
    assert (status, none["assignee_id"], none["last_seq"]) == (200, None, 4)


async def test_bad_updates_name_their_fields_and_change_nothing(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, agent = team.people
    found = await team.conversation(owner, "support", agent)
    group = await team.conversation(owner, "group", agent)
    one = f"{CONVERSATIONS}/{found['id']}"
    stranger = str(uuid.uuid4())
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases = [
        (one, {"status": "closed"}, "validation_failed", "status"),
        (one, {"status": None}, "validation_failed", "status"),
        (one, {"labels": [""]}, "validation_failed", "labels.0"),
        (one, {"labels": ["x"] * 21}, "validation_failed", "labels"),
        (one, {"snooze_until": past}, "validation_failed", "snooze_until"),
        (one, {"snooze_until": "2099-01-01T00:00:00"}, "validation_failed", "snooze_until"),
        (one, {"status": "snoozed"}, "validation_failed", "snooze_until"),
        (one, {"assignee_id": stranger}, "not_a_tenant_member", "assignee_id"),
        (one, {"colour": "red"}, "validation_failed", "colour"),
        (one, {}, "validation_failed", ""),
        (f"{CONVERSATIONS}/{group['id']}", {"status": "open"}, "validation_failed", "status"),
    ]
    for path, body, code, field in cases:
        status, problem = await team.call("PATCH", path, agent, body)
        assert (status, problem["code"]) == (422, code), (body, problem)
        assert field in [e["field"] for e in problem["errors"]], (body, problem)
    assert (await team.call("GET", one, owner))[1]["last_seq"] == 1


async def test_lists_filter_by_kind_status_label_and_assignee(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, agent = team.people
    first = await team.conversation(owner, "support", title="first")
    second = await team.conversation(owner, "support", title="second")
    await team.conversation(owner, "group", agent)
    await team.call("PATCH", f"{CONVERSATIONS}/{first['id']}", owner, {"labels": ["vip"]})
    await team.call(
        "PATCH",
        f"{CONVERSATIONS}/{second['id']}",
        owner,
        {"status": "resolved", "assignee_id": agent.user_id},
    )

    async def ids(query: str) -> set[str]:
        status, page = await team.call("GET", f"{CONVERSATIONS}?{query}", owner)
        assert status == 200, page
        return {c["id"] for c in page["items"]}

    assert await ids("kind=support") == {first["id"], second["id"]}
    assert await ids("status=open") == {first["id"]}
    assert await ids("kind=support&status=resolved") == {second["id"]}
    assert await ids("label=vip") == {first["id"]}
    assert await ids(f"assignee={agent.user_id}") == {second["id"]}
    status, problem = await team.call("GET", f"{CONVERSATIONS}?status=closed", owner)
    assert (status, problem["errors"][0]["field"]) == (422, "status")
    status, problem = await team.call("GET", f"{CONVERSATIONS}?assignee=me", owner)
    assert (status, problem["errors"][0]["field"]) == (422, "assignee")


async def _until_woken(gateway: TestServer, team: Team, conversation_id: str) -> dict:
    """Run sweep rounds until the conversation is open (its time is a moment away)."""
    one = f"{CONVERSATIONS}/{conversation_id}"
    async with asyncio.timeout(20):
        while True:
            await gateway.app[SNOOZE].sweep()
            _, found = await team.call("GET", one, team.people[0])
            if found["status"] == "open":
                return found
            await asyncio.sleep(0.1)


async def test_a_snoozed_conversation_wakes_by_the_sweep(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, agent = team.people
    found = await team.conversation(owner, "support", agent)
    soon = (datetime.now(UTC) + timedelta(milliseconds=500)).isoformat()
    status, snoozed = await team.call(
        "PATCH", f"{CONVERSATIONS}/{found['id']}", agent, {"snooze_until": soon}
    )
    assert (status, snoozed["status"]) == (200, "snoozed")
    assert datetime.fromisoformat(snoozed["snooze_until"]) == datetime.fromisoformat(soon)
    woken = await _until_woken(gateway, team, found["id"])
    assert (woken["snooze_until"], woken["last_seq"]) == (None, 3)
    [(seq, name, data)] = await _events(team, found["id"], 2)
    assert (seq, name, data["changes"], data["by"]) == (
        3,
        "conversation:updated",
        {"status": "open", "snooze_until": None},
        None,
    )


async def test_the_sweep_finds_snoozes_in_postgres_across_tenants(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    """What the sweep wakes comes from Postgres: it survives every restart."""
    team = await new_team(gateway, 1)
    found = await team.conversation(team.people[0], "support")
    soon = (datetime.now(UTC) + timedelta(milliseconds=300)).isoformat()
    await team.call(
        "PATCH",
        f"{CONVERSATIONS}/{found['id']}",
        team.people[0],
        {"status": "snoozed", "snooze_until": soon},
    )
    row = await owner_conn.fetchrow(
        "SELECT status, snooze_until FROM conversations WHERE id = $1", uuid.UUID(found["id"])
    )
    assert row["status"] == "snoozed" and row["snooze_until"] is not None
    await _until_woken(gateway, team, found["id"])
    status = await owner_conn.fetchval(
        "SELECT status FROM conversations WHERE id = $1", uuid.UUID(found["id"])
    )
    assert status == "open"


async def test_a_message_after_the_snooze_wakes_it_at_once(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, agent = team.people
    found = await team.conversation(owner, "support", agent)
    soon = datetime.now(UTC) + timedelta(milliseconds=200)
    await team.call(
        "PATCH", f"{CONVERSATIONS}/{found['id']}", agent, {"snooze_until": soon.isoformat()}
    )
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    message = await team.send(owner, found["id"], "are you there?")
    assert message["seq"] == 3
    events = await _events(team, found["id"], 2)
    assert [(s, e) for s, e, _ in events] == [(3, "message:new"), (4, "conversation:updated")]
    assert (await team.call("GET", f"{CONVERSATIONS}/{found['id']}", owner))[1]["status"] == "open"


async def test_soft_delete_hides_it_from_everyone_and_stops_events(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "group", ann, title="doomed")
    one = f"{CONVERSATIONS}/{found['id']}"
    listener = await ChatClient().connect(_url(gateway), ann.token, team.tenant_id)
    try:
        await listener.call("conversation:join", {"conversation_id": found["id"], "since_seq": 1})
        status, problem = await team.call("DELETE", one, ann)
        assert (status, problem["code"]) == (403, "insufficient_role")
        assert (await team.call("DELETE", one, owner))[0] == 204
        event, data = await listener.next()
        assert (event, data["seq"], data["by"]) == ("conversation:deleted", 2, owner.user_id)
        for who in (owner, ann):
            for method, path, body in [
                ("GET", one, None),
                ("GET", f"{one}/events", None),
                ("GET", f"{one}/messages", None),
                ("POST", f"{one}/messages", {"body": "x", "client_msg_id": "x"}),
                ("DELETE", one, None),
            ]:
                status, problem = await team.call(method, path, who, body)
                assert (status, problem["code"]) == (404, "not_found"), (method, path)
        status, mine = await team.call("GET", CONVERSATIONS, owner)
        assert found["id"] not in [c["id"] for c in mine["items"]]
        status, unread = await team.call("GET", f"{CONVERSATIONS}/unread", ann)
        assert found["id"] not in [c["conversation_id"] for c in unread["items"]]
        ack = await listener.call("conversation:join", {"conversation_id": found["id"]})
        assert ack["error"]["code"] == "not_found"
        assert listener.events.empty()
    finally:
        await listener.client.disconnect()


async def test_mute_and_star_are_per_member_and_private(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "group", ann)
    path = f"{CONVERSATIONS}/{found['id']}/membership"
    status, mine = await team.call("PATCH", path, ann, {"muted": True, "starred": True})
    assert (status, mine["muted"], mine["starred"]) == (200, True, True)
    status, mine = await team.call("PATCH", path, ann, {"starred": False})
    assert (mine["muted"], mine["starred"]) == (True, False)
    assert (await team.call("GET", f"{CONVERSATIONS}/{found['id']}", ann))[1]["muted"] is True
    assert (await team.call("GET", f"{CONVERSATIONS}/{found['id']}", owner))[1]["muted"] is False
    assert [e for _, e, _ in await _events(team, found["id"])] == ["conversation:created"]
    status, problem = await team.call("PATCH", path, ann, {"muted": "loud"})
    assert (status, problem["errors"][0]["field"]) == (422, "muted")
    outsider = (await new_team(gateway, 1)).people[0]
    status, _ = await team.call("PATCH", path, outsider, {"muted": True})
    assert status == 404


async def test_public_channels_are_listed_to_all_and_joinable(gateway: TestServer) -> None:
    team = await new_team(gateway, 3)
    owner, ann, bob = team.people
    public = await team.conversation(owner, "channel", ann, visibility="public", title="news")
    private = await team.conversation(owner, "channel", ann, title="secret")
    status, directory = await team.call("GET", f"{CONVERSATIONS}/public", bob)
    assert status == 200, directory
    assert [(c["id"], c["joined"], c["member_count"]) for c in directory["items"]] == [
        (public["id"], False, 2)
    ]
    status, joined = await team.call("POST", f"{CONVERSATIONS}/{public['id']}/join", bob)
    assert (status, joined["role"]) == (200, "member")
    again = await team.call("POST", f"{CONVERSATIONS}/{public['id']}/join", bob)
    assert (again[0], again[1]["last_seq"]) == (200, joined["last_seq"])
    status, problem = await team.call("POST", f"{CONVERSATIONS}/{private['id']}/join", bob)
    assert (status, problem["code"]) == (404, "not_found")
    status, directory = await team.call("GET", f"{CONVERSATIONS}/public", bob)
    assert directory["items"][0]["joined"] is True
    other = await new_team(gateway, 1)
    status, elsewhere = await other.call("GET", f"{CONVERSATIONS}/public", other.people[0])
    assert status == 200 and elsewhere["items"] == []
    status, problem = await other.call(
        "POST", f"{CONVERSATIONS}/{public['id']}/join", other.people[0]
    )
    assert status == 404


async def test_support_events_replay_on_socket_join(gateway: TestServer) -> None:
    team = await new_team(gateway, 2)
    owner, agent = team.people
    found = await team.conversation(owner, "support", agent)
    await team.call("PATCH", f"{CONVERSATIONS}/{found['id']}", agent, {"status": "resolved"})
    client = await ChatClient().connect(_url(gateway), agent.token, team.tenant_id)
    try:
        ack = await client.call("conversation:join", {"conversation_id": found["id"]})
        events = [(e["seq"], e["event"]) for e in ack["data"]["events"]]
        assert events == [(1, "conversation:created"), (2, "conversation:updated")]
        assert ack["data"]["events"][0]["data"]["conversation"]["status"] == "open"
        await team.call("PATCH", f"{CONVERSATIONS}/{found['id']}", owner, {"labels": ["a"]})
        event, data = await client.next()
        assert (event, data["seq"], data["changes"]) == (
            "conversation:updated",
            3,
            {"labels": ["a"]},
        )
    finally:
        await client.client.disconnect()
