"""Full-text search over conversation titles and message bodies: ranked, only
conversations you are a member of, only your tenant (row-level security),
deleted things excluded, paginated, and bad queries refused naming the field."""

from __future__ import annotations

import uuid

from aiohttp.test_utils import TestServer

from tests.support.chat import CONVERSATIONS, new_team

SEARCH = f"{CONVERSATIONS}/search"


async def test_search_finds_titles_and_bodies_of_my_conversations_ranked(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 3)
    owner, ann, bob = team.people
    word = f"zebra{uuid.uuid4().hex[:8]}"
    titled = await team.conversation(owner, "group", ann, title=f"{word} launch")
    chatty = await team.conversation(owner, "group", ann, title="misc")
    hidden = await team.conversation(bob, "group", title=f"{word} secret")  # owner not in it
    many = await team.send(ann, chatty["id"], f"{word} {word} {word} is what we ship")
    once = await team.send(owner, chatty["id"], f"one {word} mention among many other words here")
    await team.send(bob, hidden["id"], f"{word} private")

    status, found = await team.call("GET", f"{SEARCH}?q={word}", owner)
    assert status == 200, found
    hits = [(h["conversation_id"], (h["message"] or {}).get("id")) for h in found["items"]]
    assert set(hits) == {
        (titled["id"], None),
        (chatty["id"], many["id"]),
        (chatty["id"], once["id"]),
    }
    ranks = [h["rank"] for h in found["items"]]
    assert ranks == sorted(ranks, reverse=True)
    assert hits.index((chatty["id"], many["id"])) < hits.index((chatty["id"], once["id"]))
    assert found["items"][0]["title"] is not None and found["next_cursor"] is None
    status, theirs = await team.call("GET", f"{SEARCH}?q={word}", bob)
    assert {h["conversation_id"] for h in theirs["items"]} == {hidden["id"]}


async def test_search_is_paginated_and_skips_deleted_things(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    word = f"quokka{uuid.uuid4().hex[:8]}"
    found = await team.conversation(owner, "group", title="notes")
    sent = [await team.send(owner, found["id"], f"{word} number {i}") for i in range(5)]
    await team.call("DELETE", f"{CONVERSATIONS}/{found['id']}/messages/{sent[0]['id']}", owner)
    seen: list[str] = []
    cursor = ""
    for _ in range(3):
        status, page = await team.call("GET", f"{SEARCH}?q={word}&limit=2{cursor}", owner)
        assert status == 200, page
        seen += [h["message"]["id"] for h in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(seen) == sorted(m["id"] for m in sent[1:])
    gone = await team.conversation(owner, "group", title=f"{word} gone")
    await team.call("DELETE", f"{CONVERSATIONS}/{gone['id']}", owner)
    status, page = await team.call("GET", f"{SEARCH}?q={word}&limit=100", owner)
    assert gone["id"] not in {h["conversation_id"] for h in page["items"]}


async def test_search_stays_in_the_tenant(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    other = await new_team(gateway, 1)
    word = f"okapi{uuid.uuid4().hex[:8]}"
    found = await team.conversation(team.people[0], "group", title=word)
    await team.send(team.people[0], found["id"], word)
    status, page = await other.call("GET", f"{SEARCH}?q={word}", other.people[0])
    assert (status, page["items"]) == (200, [])
    # Naming a tenant you are not in: 404 before any search.
    status, problem = await team.call(
        "GET", f"{SEARCH}?q={word}", team.people[0], tenant=other.tenant_id
    )
    assert (status, problem["code"]) == (404, "not_found")


async def test_bad_queries_name_the_field(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    for query, field in [
        ("", "q"),
        ("?q=", "q"),
        ("?q=%20%20", "q"),
        (f"?q={'a' * 201}", "q"),
        ("?q=x&limit=0", "limit"),
        ("?q=x&cursor=nope", "cursor"),
    ]:
        status, problem = await team.call("GET", f"{SEARCH}{query}", owner)
        assert (status, problem["code"]) == (422, "validation_failed"), query
        assert problem["errors"][0]["field"] == field, (query, problem)
    status, page = await team.call("GET", f"{SEARCH}?q=%22%22%20-%20or", owner)
    assert (status, page["items"]) == (200, [])  # a query of no words finds nothing
