"""Tenant isolation: a member of tenant A can neither read nor change
anything of tenant B through any tenant endpoint (B's ids answer 404, as
unknown ids do), and SQL run in A's row-level-security scope sees and
touches none of B's rows in any tenant-scoped table."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hubbub.actors.command import Command
from hubbub.services import ROUTER
from hubbub.storage.database import Database
from hubbub.tenancy.commands import SetPlan
from hubbub.tenancy.directory import acting_as
from tests.support.accounts import unique_email
from tests.support.tenants import TENANTS, add_member, call, invite, new_account, new_tenant

#: Every table of migration 0005 that holds tenant rows.
TENANT_TABLES = ("tenants", "tenant_slugs", "tenant_members", "tenant_invites", "tenant_usage")
NO_DELETE = {"tenants", "tenant_invites"}


@pytest.fixture(scope="module")
async def world(gateway: TestServer) -> dict:
    """Two tenants, each with an owner, a member, settings, usage and an invite."""
    found = {}
    for name in ("a", "b"):
        owner = await new_account(gateway)
        tenant = await new_tenant(gateway, owner)
        member = await add_member(gateway, tenant["id"], owner)
        pending = await invite(gateway, tenant["id"], owner, unique_email(name))
        path = f"{TENANTS}/{tenant['id']}/settings"
        assert (await call(gateway, "PUT", path, owner.token, {"secret": name}))[0] == 200
        await gateway.app[ROUTER].send(
            Command("tenant", tenant["id"], SetPlan("business"), tenant["id"])
        )
        uses = f"{TENANTS}/{tenant['id']}/features/ai/uses"
        assert (await call(gateway, "POST", uses, owner.token))[0] == 200
        found[name] = {"owner": owner, "tenant": tenant, "member": member, "invite": pending}
    return found


def endpoints(b: dict) -> list[tuple[str, str, dict | None]]:
    """Every tenant endpoint, aimed at tenant B's ids."""
    one = f"{TENANTS}/{b['tenant']['id']}"
    member = f"{one}/members/{b['member'].user_id}"
    pending = f"{one}/invites/{b['invite']['id']}"
    return [
        ("GET", one, None),
        ("PATCH", one, {"name": "hijacked"}),
        ("PATCH", one, {"slug": f"hijack-{uuid.uuid4().hex[:8]}"}),
        ("DELETE", one, None),
        ("POST", f"{one}/restore", None),
        ("GET", f"{one}/settings", None),
        ("PUT", f"{one}/settings", {"secret": "mine now"}),
        ("GET", f"{one}/plan", None),
        ("POST", f"{one}/features/ai/uses", None),
        ("GET", f"{one}/members", None),
        ("PATCH", member, {"role": "viewer"}),
        ("DELETE", member, None),
        ("GET", f"{one}/invites", None),
        ("POST", f"{one}/invites", {"email": unique_email(), "role": "owner"}),
        ("POST", f"{pending}/resend", None),
        ("DELETE", pending, None),
    ]


async def test_a_member_of_a_gets_404_from_every_endpoint_of_b(
    gateway: TestServer, world: dict
) -> None:
    a, b = world["a"], world["b"]
    for account in (a["owner"], a["member"]):
        for method, path, body in endpoints(b):
            status, problem = await call(gateway, method, path, account.token, body)
            assert (status, problem["code"]) == (404, "not_found"), (method, path, problem)
    # Nothing of B changed.
    b_owner = b["owner"]
    one = f"{TENANTS}/{b['tenant']['id']}"
    assert (await call(gateway, "GET", one, b_owner.token))[1] == b["tenant"] | {"plan": "business"}
    assert await call(gateway, "GET", f"{one}/settings", b_owner.token) == (200, {"secret": "b"})
    _, members = await call(gateway, "GET", f"{one}/members", b_owner.token)
    assert {m["user_id"]: m["role"] for m in members["items"]} == {
        b_owner.user_id: "owner",
        b["member"].user_id: "member",
    }
    _, invites = await call(gateway, "GET", f"{one}/invites", b_owner.token)
    assert [(i["id"], i["status"]) for i in invites["items"] if i["status"] == "pending"] == [
        (b["invite"]["id"], "pending")
    ]


async def test_b_ids_under_a_path_are_404_too(gateway: TestServer, world: dict) -> None:
    a, b = world["a"], world["b"]
    one = f"{TENANTS}/{a['tenant']['id']}"
    owner = a["owner"]
    member = f"{one}/members/{b['member'].user_id}"
    status, problem = await call(gateway, "PATCH", member, owner.token, {"role": "viewer"})
    assert (status, problem["code"]) == (404, "not_found")
    assert (await call(gateway, "DELETE", member, owner.token))[0] == 404
    pending = f"{one}/invites/{b['invite']['id']}"
    assert (await call(gateway, "POST", f"{pending}/resend", owner.token))[0] == 404
    assert (await call(gateway, "DELETE", pending, owner.token))[0] == 404


async def test_a_tokens_invite_cannot_be_forged_for_b(gateway: TestServer, world: dict) -> None:
    """A's invite token with B's tenant id is unknown to B."""
    a, b = world["a"], world["b"]
    issued = await invite(gateway, a["tenant"]["id"], a["owner"], unique_email())
    secret = issued["token"].rsplit("_", 1)[1]
    forged = f"hbi_{uuid.UUID(b['tenant']['id']).hex}_{secret}"
    status, problem = await call(
        gateway, "POST", "/api/v1/invites/accept", a["member"].token, {"token": forged}
    )
    assert (status, problem["code"]) == (400, "invalid_invite_token")


async def test_sql_in_a_scope_sees_and_touches_none_of_b_rows(
    db: Database, owner_conn: asyncpg.Connection, world: dict
) -> None:
    a_id, b_id = (uuid.UUID(world[n]["tenant"]["id"]) for n in ("a", "b"))
    for table in TENANT_TABLES:
        assert await owner_conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", b_id
        ), f"{table} has no rows of B: the test proves nothing"
        async with db.tenant(a_id) as conn:
            tenants_seen = await conn.fetch(f"SELECT DISTINCT tenant_id FROM {table}")
            assert {row["tenant_id"] for row in tenants_seen} == {a_id}, table
            touched = await conn.execute(
                f"UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = $1", b_id
            )
            assert touched == "UPDATE 0", table
            if table in NO_DELETE:  # the application may not delete these at all
                continue
            deleted = await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", b_id)
            assert deleted == "DELETE 0", table
    async with db.tenant(a_id) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO tenant_usage (tenant_id, metric, value, updated_at)"
                " VALUES ($1, 'ai', 1, now())",
                b_id,
            )


async def test_acting_as_a_user_shows_only_their_own_memberships(db: Database, world: dict) -> None:
    a, b = world["a"], world["b"]
    member_id = uuid.UUID(a["member"].user_id)
    async with acting_as(db, member_id) as conn:
        memberships = await conn.fetch("SELECT tenant_id, user_id FROM tenant_members")
        tenants = await conn.fetch("SELECT id FROM tenants")
        for table in ("tenant_slugs", "tenant_invites", "tenant_usage"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    a_id = uuid.UUID(a["tenant"]["id"])
    assert [(r["tenant_id"], r["user_id"]) for r in memberships] == [(a_id, member_id)]
    assert [r["id"] for r in tenants] == [a_id]
    assert uuid.UUID(b["tenant"]["id"]) not in {r["id"] for r in tenants}
