"""Tenants through a real gateway and real tenant shards: create (slug given
or made from the name), list mine with cursors, get, update (unique slug,
IANA time zone, locale), settings, soft delete and restore, tenant events."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestServer

from tests.support.tenants import TENANTS, add_member, call, new_account, new_tenant


async def test_create_makes_the_creator_owner_and_a_slug_from_the_name(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner = await new_account(gateway)
    name = f"Lucia Studios {uuid.uuid4().hex[:6]}"
    status, tenant = await call(gateway, "POST", TENANTS, owner.token, {"name": name})
    assert status == 201, tenant
    assert tenant["slug"] == name.lower().replace(" ", "-")
    assert (tenant["plan"], tenant["role"]) == ("free", "owner")
    assert (tenant["timezone"], tenant["locale"]) == ("UTC", "en")
    assert set(tenant) >= {"id", "name", "slug", "plan", "created_at"}
    role = await owner_conn.fetchval(
        "SELECT role FROM tenant_members WHERE tenant_id = $1 AND user_id = $2",
        uuid.UUID(tenant["id"]),
        uuid.UUID(owner.user_id),
    )
    assert role == "owner"


async def test_a_taken_slug_is_409_and_a_generated_one_gets_a_suffix(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner = await new_account(gateway)
    slug = f"acme-{uuid.uuid4().hex[:8]}"
    first = await call(gateway, "POST", TENANTS, owner.token, {"name": "Acme", "slug": slug})
    assert first[0] == 201
    tenants_before = await owner_conn.fetchval("SELECT count(*) FROM tenants")
    status, problem = await call(
        gateway, "POST", TENANTS, owner.token, {"name": "Other", "slug": slug.upper()}
    )
    assert (status, problem["code"]) == (409, "slug_taken")
    assert await owner_conn.fetchval("SELECT count(*) FROM tenants") == tenants_before

    status, again = await call(gateway, "POST", TENANTS, owner.token, {"name": slug})
    assert status == 201
    assert again["slug"].startswith(f"{slug}-") and again["slug"] != slug


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "A", "slug": "Bad Slug!"}, "slug"),
        ({"name": "A", "slug": "ab"}, "slug"),
        ({"name": "A", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "A", "locale": "english please"}, "locale"),
        ({"name": "A", "plan": "business"}, "plan"),
    ],
)
async def test_bad_tenant_input_is_422_naming_the_field(
    gateway: TestServer, body: dict, field: str
) -> None:
    owner = await new_account(gateway)
    status, problem = await call(gateway, "POST", TENANTS, owner.token, body)
    assert (status, problem["code"]) == (422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == [field]


async def test_tenant_routes_need_a_bearer_token(gateway: TestServer) -> None:
    status, problem = await call(gateway, "GET", TENANTS)
    assert (status, problem["code"]) == (401, "unauthenticated")
    status, problem = await call(gateway, "POST", TENANTS, json={"name": "A"})
    assert (status, problem["code"]) == (401, "unauthenticated")


async def test_list_mine_pages_with_a_cursor_and_shows_only_my_tenants(
    gateway: TestServer,
) -> None:
    me, other = await new_account(gateway), await new_account(gateway)
    mine = [await new_tenant(gateway, me) for _ in range(3)]
    theirs = await new_tenant(gateway, other)
    joined = await new_tenant(gateway, other)
    await add_member_as(gateway, joined["id"], other, me, "viewer")

    seen, cursor = [], None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        status, page = await call(gateway, "GET", f"{TENANTS}{query}", me.token)
        assert status == 200, page
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [t["id"] for t in seen] == sorted(t["id"] for t in [*mine, joined])
    assert theirs["id"] not in {t["id"] for t in seen}
    assert {t["id"]: t["role"] for t in seen}[joined["id"]] == "viewer"


async def add_member_as(gateway, tenant_id, by, account, role):
    from tests.support.tenants import invite

    issued = await invite(gateway, tenant_id, by, account.email, role)
    status, _ = await call(
        gateway, "POST", "/api/v1/invites/accept", account.token, {"token": issued["token"]}
    )
    assert status == 200


async def test_get_and_update_with_timezone_locale_and_slug(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    one = f"{TENANTS}/{tenant['id']}"
    assert await call(gateway, "GET", one, owner.token) == (200, tenant)

    new_slug = f"renamed-{uuid.uuid4().hex[:8]}"
    change = {"name": "Renamed", "slug": new_slug, "timezone": "Europe/Paris", "locale": "pt-BR"}
    status, updated = await call(gateway, "PATCH", one, owner.token, change)
    assert status == 200, updated
    assert {k: updated[k] for k in change} == change
    assert (await call(gateway, "GET", one, owner.token))[1] == updated

    # The old slug is free again; the new one is taken.
    other = await new_account(gateway)
    status, reuse = await call(
        gateway, "POST", TENANTS, other.token, {"name": "X", "slug": tenant["slug"]}
    )
    assert status == 201, reuse
    status, problem = await call(gateway, "PATCH", one, owner.token, {"slug": reuse["slug"]})
    assert (status, problem["code"]) == (409, "slug_taken")
    status, problem = await call(gateway, "PATCH", one, owner.token, {"timezone": "Nowhere/X"})
    assert (status, problem["errors"][0]["field"]) == (422, "timezone")
    status, problem = await call(gateway, "PATCH", one, owner.token, {})
    assert status == 422


async def test_only_admins_update_and_members_read(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    one = f"{TENANTS}/{tenant['id']}"
    member = await add_member(gateway, tenant["id"], owner, "member")
    admin = await add_member(gateway, tenant["id"], owner, "admin")

    status, seen = await call(gateway, "GET", one, member.token)
    assert (status, seen["role"]) == (200, "member")
    status, problem = await call(gateway, "PATCH", one, member.token, {"name": "Nope"})
    assert (status, problem["code"]) == (403, "insufficient_role")
    status, problem = await call(gateway, "PATCH", one, member.token, {"slug": "nope-nope"})
    assert (status, problem["code"]) == (403, "insufficient_role")
    status, updated = await call(gateway, "PATCH", one, admin.token, {"name": "By admin"})
    assert (status, updated["name"]) == (200, "By admin")


async def test_settings_get_and_put(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    path = f"{TENANTS}/{tenant['id']}/settings"
    viewer = await add_member(gateway, tenant["id"], owner, "viewer")
    assert await call(gateway, "GET", path, owner.token) == (200, {})

    settings = {"require_two_factor": True, "theme": {"color": "#123456"}}
    assert await call(gateway, "PUT", path, owner.token, settings) == (200, settings)
    assert await call(gateway, "GET", path, viewer.token) == (200, settings)
    status, problem = await call(gateway, "PUT", path, viewer.token, {"a": 1})
    assert (status, problem["code"]) == (403, "insufficient_role")
    status, problem = await call(gateway, "PUT", path, owner.token, ["not", "an", "object"])
    assert status == 422
    status, problem = await call(gateway, "PUT", path, owner.token, {"big": "x" * 20_000})
    assert status == 422
    assert await call(gateway, "GET", path, owner.token) == (200, settings)


async def test_delete_is_owner_only_soft_and_restorable(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    one = f"{TENANTS}/{tenant['id']}"
    admin = await add_member(gateway, tenant["id"], owner, "admin")

    status, problem = await call(gateway, "DELETE", one, admin.token)
    assert (status, problem["code"]) == (403, "owner_required")
    status, deletion = await call(gateway, "DELETE", one, owner.token)
    assert status == 200, deletion
    row = await owner_conn.fetchrow(
        "SELECT deleted_at, purge_after - deleted_at AS grace FROM tenants WHERE id = $1",
        uuid.UUID(tenant["id"]),
    )
    assert row["deleted_at"] is not None and row["grace"].days == 30

    for account in (owner, admin):
        status, problem = await call(gateway, "GET", one, account.token)
        assert (status, problem["code"]) == (404, "not_found")
    _, listed = await call(gateway, "GET", TENANTS, owner.token)
    assert tenant["id"] not in {t["id"] for t in listed["items"]}

    status, problem = await call(gateway, "POST", f"{one}/restore", admin.token)
    assert (status, problem["code"]) == (403, "owner_required")
    status, restored = await call(gateway, "POST", f"{one}/restore", owner.token)
    assert (status, restored["id"]) == (200, tenant["id"])
    assert (await call(gateway, "GET", one, admin.token))[0] == 200
    status, problem = await call(gateway, "POST", f"{one}/restore", owner.token)
    assert (status, problem["code"]) == (409, "tenant_not_deleted")


async def test_sockets_of_members_receive_tenant_events(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    stranger = await new_account(gateway)
    events: asyncio.Queue = asyncio.Queue()
    client = socketio.AsyncClient()
    client.on("tenant:updated", lambda data: events.put_nowait(("updated", data)))
    client.on("tenant:member_added", lambda data: events.put_nowait(("added", data)))
    await client.connect(str(gateway.make_url("")), auth={"token": owner.token})
    outsider = socketio.AsyncClient()
    await outsider.connect(str(gateway.make_url("")), auth={"token": stranger.token})
    try:
        ack = await client.call("tenant:watch", {"tenant_id": tenant["id"]})
        assert ack == {"ok": True, "data": {"tenant_id": tenant["id"], "role": "owner"}}
        refused = await outsider.call("tenant:watch", {"tenant_id": tenant["id"]})
        assert refused["error"]["code"] == "not_found"
        bad = await outsider.call("tenant:watch", {"tenant_id": "nope"})
        assert bad["error"]["code"] == "validation_failed"

        await call(gateway, "PATCH", f"{TENANTS}/{tenant['id']}", owner.token, {"name": "Ev"})
        kind, data = await asyncio.wait_for(events.get(), 10)
        assert kind == "updated" and data["changes"] == {"name": "Ev"}
        first_seq = data["seq"]
        member = await add_member(gateway, tenant["id"], owner)
        kind, data = await asyncio.wait_for(events.get(), 10)
        assert (kind, data["user_id"], data["role"]) == ("added", member.user_id, "member")
        assert data["seq"] == first_seq + 1 and data["tenant_id"] == tenant["id"]
    finally:
        await client.disconnect()
        await outsider.disconnect()
