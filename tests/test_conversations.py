"""Conversations through a real gateway and real conversation shards: create and
get-or-create, list mine by last activity with cursors, get, title, members,
and that a non-member or another tenant only ever sees 404."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from aiohttp.test_utils import TestServer

from hubbub.chat import rules
from hubbub.chat.commands import Read, Send, ask
from hubbub.errors import AppError
from hubbub.services import ROUTER
from tests.support.chat import CONVERSATIONS, new_team
from tests.support.tenants import call, new_account


async def test_a_group_is_created_with_its_creator_as_owner(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway)
    owner, ann, bob = team.people
    found = await team.conversation(owner, "group", ann, bob, title="Launch")
    assert (found["kind"], found["title"], found["role"]) == ("group", "Launch", "owner")
    assert found["tenant_id"] == team.tenant_id
    assert (found["last_seq"], found["unread_count"], found["last_message"]) == (1, 0, None)
    assert set(found) >= {"id", "subject", "status", "created_at", "updated_at"}
    status, seen = await team.call("GET", f"{CONVERSATIONS}/{found['id']}", ann)
    assert status == 200 and seen["role"] == "member" and seen["id"] == found["id"]
    roles = await owner_conn.fetch(
        "SELECT user_id::text, role FROM conversation_members WHERE conversation_id = $1",
        uuid.UUID(found["id"]),
    )
    assert dict(roles) == {owner.user_id: "owner", ann.user_id: "member", bob.user_id: "member"}


async def test_direct_get_or_create_is_idempotent_by_the_pair(gateway: TestServer) -> None:
    team = await new_team(gateway)
    owner, ann, _ = team.people
    body = {"kind": "direct", "member_ids": [ann.user_id]}
    status, first = await team.call("POST", CONVERSATIONS, owner, body)
    assert status == 201, first
    again = await asyncio.gather(
        team.call("POST", CONVERSATIONS, owner, body),
        team.call("POST", CONVERSATIONS, ann, {"kind": "direct", "member_ids": [owner.user_id]}),
    )
    assert [(s, c["id"]) for s, c in again] == [(200, first["id"])] * 2


async def test_direct_needs_exactly_one_other_member(gateway: TestServer) -> None:
    team = await new_team(gateway)
    owner, ann, bob = team.people
    body = {"kind": "direct", "member_ids": [ann.user_id, bob.user_id]}
    status, problem = await team.call("POST", CONVERSATIONS, owner, body)
    assert (status, problem["code"]) == (422, "validation_failed")


async def test_subject_get_or_create_is_by_subject_and_participants(gateway: TestServer) -> None:
    team = await new_team(gateway)
    owner, ann, bob = team.people
    listing = {"type": "listing", "id": f"L-{uuid.uuid4().hex[:6]}"}
    first = await team.conversation(owner, "group", ann, subject=listing)
    assert first["subject"] == listing
    assert (await team.conversation(ann, "group", owner, subject=listing))["id"] == first["id"]
    other = await team.conversation(owner, "group", bob, subject=listing)
    assert other["id"] != first["id"]


async def test_members_must_belong_to_the_tenant_and_nothing_is_written(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 1)
    stranger = await new_account(gateway)
    before = await owner_conn.fetchval("SELECT count(*) FROM conversations")
    body = {"kind": "group", "member_ids": [stranger.user_id]}
    status, problem = await team.call("POST", CONVERSATIONS, team.people[0], body)
    assert (status, problem["code"]) == (422, "not_a_tenant_member")
    assert stranger.user_id in problem["detail"]
    assert await owner_conn.fetchval("SELECT count(*) FROM conversations") == before


async def test_non_members_and_other_tenants_get_404_everywhere(gateway: TestServer) -> None:
    team = await new_team(gateway)
    owner, ann, outsider = team.people
    found = await team.conversation(owner, "group", ann)
    one = f"{CONVERSATIONS}/{found['id']}"
    attempts = [
        ("GET", one, None),
        ("PATCH", one, {"title": "x"}),
        ("GET", f"{one}/messages", None),
        ("POST", f"{one}/messages", {"body": "hi", "client_msg_id": "c1"}),
        ("POST", f"{one}/read", {"up_to_seq": 1}),
        ("GET", f"{one}/events", None),
        ("POST", f"{one}/leave", None),
        ("POST", f"{one}/members", {"user_ids": [outsider.user_id]}),
    ]
    for method, path, body in attempts:
        status, problem = await team.call(method, path, outsider, body)
        assert (status, problem["code"]) == (404, "not_found"), (method, path, problem)
    # The owner, as a member of another tenant, asking there: 404 as well.
    other = await new_team(gateway, 1)
    owner_elsewhere = other.people[0]
    status, _ = await other.call("GET", one, owner_elsewhere)
    assert status == 404
    # A tenant the caller is not in at all: 404 from the tenant check.
    status, problem = await team.call("GET", one, owner, tenant=other.tenant_id)
    assert (status, problem["code"]) == (404, "not_found")


async def test_the_tenant_header_is_required(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    status, problem = await call(gateway, "GET", CONVERSATIONS, team.people[0].token)
    assert (status, problem["code"]) == (400, "tenant_required")
    status, problem = await team.call("GET", CONVERSATIONS, team.people[0], tenant="nope")
    assert (status, problem["code"]) == (422, "validation_failed")


async def test_list_is_by_last_activity_with_previews_unread_and_cursors(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway)
    owner, ann, bob = team.people
    older = await team.conversation(owner, "group", ann, title="older")
    direct = await team.conversation(owner, "direct", bob)
    newest = await team.conversation(owner, "channel", ann, title="newest")
    await team.send(ann, older["id"], "wake up")  # now the most recent activity

    status, page = await team.call("GET", f"{CONVERSATIONS}?limit=2", owner)
    assert status == 200, page
    assert [c["id"] for c in page["items"]] == [older["id"], newest["id"]]
    assert page["items"][0]["last_message"]["body"] == "wake up"
    assert page["items"][0]["unread_count"] == 1
    status, rest = await team.call(
        "GET", f"{CONVERSATIONS}?limit=2&cursor={page['next_cursor']}", owner
    )
    assert [c["id"] for c in rest["items"]] == [direct["id"]] and rest["next_cursor"] is None
    status, only = await team.call("GET", f"{CONVERSATIONS}?kind=direct", owner)
    assert [c["id"] for c in only["items"]] == [direct["id"]]
    status, problem = await team.call("GET", f"{CONVERSATIONS}?cursor=garbage", owner)
    assert (status, problem["code"]) == (422, "validation_failed")


async def test_title_changes_need_owner_or_admin_and_become_events(gateway: TestServer) -> None:
    team = await new_team(gateway)
    owner, ann, _ = team.people
    found = await team.conversation(owner, "group", ann, title="Old")
    one = f"{CONVERSATIONS}/{found['id']}"
    status, problem = await team.call("PATCH", one, ann, {"title": "Mine"})
    assert (status, problem["code"]) == (403, "insufficient_role")
    status, updated = await team.call("PATCH", one, owner, {"title": "New"})
    assert (status, updated["title"], updated["last_seq"]) == (200, "New", 2)
    status, events = await team.call("GET", f"{one}/events?after_seq=1", ann)
    assert [(e["seq"], e["event"]) for e in events["items"]] == [(2, "conversation:updated")]
    assert events["items"][0]["data"]["changes"] == {"title": "New"}
    direct = await team.conversation(owner, "direct", ann)
    status, problem = await team.call(
        "PATCH", f"{CONVERSATIONS}/{direct['id']}", owner, {"title": "x"}
    )
    assert (status, problem["code"]) == (409, "direct_conversation_fixed")


async def test_members_are_added_removed_and_leave(gateway: TestServer) -> None:
    team = await new_team(gateway, 4)
    owner, ann, bob, cat = team.people
    found = await team.conversation(owner, "group", ann)
    one = f"{CONVERSATIONS}/{found['id']}"
    status, problem = await team.call("POST", f"{one}/members", ann, {"user_ids": [bob.user_id]})
    assert (status, problem["code"]) == (403, "insufficient_role")
    status, _ = await team.call(
        "POST", f"{one}/members", owner, {"user_ids": [bob.user_id, cat.user_id]}
    )
    assert status == 200
    assert (await team.call("GET", one, bob))[0] == 200
    assert (await team.call("DELETE", f"{one}/members/{bob.user_id}", ann))[0] == 403
    assert (await team.call("DELETE", f"{one}/members/{bob.user_id}", owner))[0] == 204
    assert (await team.call("GET", one, bob))[0] == 404
    assert (await team.call("POST", f"{one}/leave", cat))[0] == 204
    assert (await team.call("GET", one, cat))[0] == 404
    status, events = await team.call("GET", f"{one}/events", owner)
    names = [(e["event"], e["data"].get("user_id")) for e in events["items"]]
    assert names == [
        ("conversation:created", None),
        ("member:joined", bob.user_id),
        ("member:joined", cat.user_id),
        ("member:left", bob.user_id),
        ("member:left", cat.user_id),
    ]
    assert [e["seq"] for e in events["items"]] == [1, 2, 3, 4, 5]


async def test_anyone_in_the_tenant_may_join_a_public_channel(gateway: TestServer) -> None:
    team = await new_team(gateway)
    owner, ann, bob = team.people
    public = await team.conversation(owner, "channel", ann, visibility="public")
    private = await team.conversation(owner, "channel", ann)
    body = {"user_ids": [bob.user_id]}
    status, joined = await team.call("POST", f"{CONVERSATIONS}/{public['id']}/members", bob, body)
    assert (status, joined["role"]) == (200, "member")
    status, _ = await team.call("POST", f"{CONVERSATIONS}/{private['id']}/members", bob, body)
    assert status == 404


def test_rules_refuse_commands_on_a_missing_conversation() -> None:
    from datetime import UTC, datetime

    from hubbub.errors import AppError

    now = datetime.now(UTC)
    try:
        rules.decide(None, Send("a", "hi", "c1", "m1"), now)
    except AppError as error:
        assert error.code == "not_found"
    else:
        raise AssertionError("expected not_found")


async def test_a_command_field_of_the_wrong_type_is_refused_alone_naming_it(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    group = await team.conversation(owner, "group", ann)
    router = gateway.app[ROUTER]
    wrong = Read(owner.user_id, "seven")  # type: ignore[arg-type]  # structs check on decode
    bad, good = await asyncio.gather(
        ask(router, team.tenant_id, group["id"], wrong),
        ask(router, team.tenant_id, group["id"], Read(ann.user_id, 1)),
        return_exceptions=True,
    )
    assert isinstance(bad, AppError) and (bad.code, bad.status) == ("validation_failed", 422)
    assert [e.field for e in bad.errors] == ["up_to_seq"]
    assert good == {"conversation_id": group["id"], "user_id": ann.user_id, "last_read_seq": 1}
