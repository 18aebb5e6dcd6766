"""API keys through a real gateway and real tenant shards: creation (shown
once, stored hashed, listed masked, plan-gated, admins only), use over HTTP
with ``X-API-Key`` (scopes → roles, read-only refused on writes, its own
tenant only), expired / revoked / unknown keys with distinct codes, socket
authentication with a key and disconnection on revoke, validation."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestServer

from hubbub.tenancy.service_accounts import role_for_scopes
from tests.support.tenants import Account, add_member, call, new_account, new_tenant
from tests.test_plans import set_plan
from tests.test_socket_revocation import Socket, url_of

TENANTS = "/api/v1/tenants"


def keys_path(tenant_id: str) -> str:
    return f"{TENANTS}/{tenant_id}/api-keys"


async def keyed(server: TestServer, method: str, path: str, key: str, json: Any = None) -> Any:
    return await call(server, method, path, json=json, **{"X-API-Key": key})


async def pro_tenant(server: TestServer) -> tuple[Account, dict]:
    owner = await new_account(server)
    tenant = await new_tenant(server, owner)
    await set_plan(server, tenant["id"], "pro")
    return owner, tenant


async def new_key(
    server: TestServer, tenant_id: str, by: Account, scopes: list[str], days: int = 30
) -> dict:
    body = {"name": f"ci {'+'.join(scopes)}", "scopes": scopes, "expires_in_days": days}
    status, issued = await call(server, "POST", keys_path(tenant_id), by.token, body)
    assert status == 201, issued
    return issued


# -- pure ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "role"),
    [
        (["read"], "viewer"),
        (["write"], "member"),
        (["read", "write"], "member"),
        (["admin"], "admin"),
        (["read", "admin"], "admin"),
    ],
)
def test_a_keys_role_is_that_of_its_highest_scope(scopes: list[str], role: str) -> None:
    assert role_for_scopes(scopes) == role


@pytest.mark.parametrize("scopes", [[], ["owner"], ["read", "sudo"]])
def test_no_or_unknown_scopes_have_no_role(scopes: list[str]) -> None:
    with pytest.raises(ValueError, match="expected a non-empty subset"):
        role_for_scopes(scopes)


# -- creating and listing ------------------------------------------------


async def test_a_key_is_shown_once_stored_hashed_and_listed_masked(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner, tenant = await pro_tenant(gateway)
    issued = await new_key(gateway, tenant["id"], owner, ["read", "write"], days=10)
    assert set(issued) == {"id", "name", "scopes", "key", "expires_at"}
    assert issued["scopes"] == ["read", "write"]
    assert issued["key"].startswith(f"hbk_{uuid.UUID(tenant['id']).hex}_")
    lifetime = datetime.fromisoformat(issued["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=9.9) < lifetime <= timedelta(days=10)
    stored = await owner_conn.fetchrow(
        "SELECT key_hash, prefix FROM api_keys WHERE id = $1", uuid.UUID(issued["id"])
    )
    assert bytes(stored["key_hash"]) == hashlib.sha256(issued["key"].encode()).digest()
    assert issued["key"].startswith(stored["prefix"]) and len(stored["prefix"]) < 16

    status, listed = await call(gateway, "GET", keys_path(tenant["id"]), owner.token)
    assert status == 200 and listed["next_cursor"] is None
    [item] = listed["items"]
    assert set(item) == {
        "id",
        "name",
        "scopes",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    }
    assert (item["id"], item["prefix"]) == (issued["id"], stored["prefix"])
    assert item["last_used_at"] is None and item["revoked_at"] is None
    assert issued["key"] not in str(listed)


async def test_the_list_pages_by_cursor(gateway: TestServer) -> None:
    owner, tenant = await pro_tenant(gateway)
    made = [await new_key(gateway, tenant["id"], owner, ["read"]) for _ in range(3)]
    path = keys_path(tenant["id"])
    status, first = await call(gateway, "GET", f"{path}?limit=2", owner.token)
    assert status == 200 and [k["id"] for k in first["items"]] == [k["id"] for k in made[:2]]
    status, rest = await call(
        gateway, "GET", f"{path}?limit=2&cursor={first['next_cursor']}", owner.token
    )
    assert [k["id"] for k in rest["items"]] == [made[2]["id"]] and rest["next_cursor"] is None


async def test_creating_keys_needs_the_api_access_feature(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    body = {"name": "ci", "scopes": ["read"], "expires_in_days": 30}
    status, problem = await call(gateway, "POST", keys_path(tenant["id"]), owner.token, body)
    assert (status, problem["code"]) == (402, "feature_not_in_plan")
    assert problem["plans_with_feature"] == ["pro", "business"]


async def test_only_admins_and_owners_manage_keys_and_never_with_a_key(
    gateway: TestServer,
) -> None:
    owner, tenant = await pro_tenant(gateway)
    member = await add_member(gateway, tenant["id"], owner, "member")
    admin = await add_member(gateway, tenant["id"], owner, "admin")
    path = keys_path(tenant["id"])
    body = {"name": "ci", "scopes": ["admin"], "expires_in_days": 30}
    status, problem = await call(gateway, "POST", path, member.token, body)
    assert (status, problem["code"]) == (403, "insufficient_role")
    assert (await call(gateway, "GET", path, member.token))[0] == 403
    issued = await new_key(gateway, tenant["id"], admin, ["admin"])
    status, problem = await call(gateway, "DELETE", f"{path}/{issued['id']}", member.token)
    assert (status, problem["code"]) == (403, "insufficient_role")

    for method, json in (("POST", body), ("GET", None)):
        status, problem = await keyed(gateway, method, path, issued["key"], json)
        assert (status, problem["code"]) == (401, "api_key_not_accepted")
    status, problem = await keyed(gateway, "DELETE", f"{path}/{issued['id']}", issued["key"])
    assert (status, problem["code"]) == (401, "api_key_not_accepted")
    status, problem = await keyed(gateway, "GET", "/api/v1/auth/me", issued["key"])
    assert (status, problem["code"]) == (401, "api_key_not_accepted")


async def test_bad_input_names_each_field_and_writes_nothing(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner, tenant = await pro_tenant(gateway)
    path = keys_path(tenant["id"])
    cases = [
        ({"name": "", "scopes": [], "expires_in_days": 0}, {"name", "scopes", "expires_in_days"}),
        ({"name": "x" * 101, "scopes": ["owner"], "expires_in_days": 366}, None),
        ({"scopes": ["read"]}, {"name", "expires_in_days"}),
        ({"name": "ok", "scopes": "read", "expires_in_days": 5, "extra": 1}, {"scopes", "extra"}),
    ]
    for body, fields in cases:
        status, problem = await call(gateway, "POST", path, owner.token, body)
        assert (status, problem["code"]) == (422, "validation_failed"), problem
        named = {e["field"].split(".")[0] for e in problem["errors"]}
        assert named == (fields or {"name", "scopes", "expires_in_days"}), problem
    count = await owner_conn.fetchval(
        "SELECT count(*) FROM api_keys WHERE tenant_id = $1", uuid.UUID(tenant["id"])
    )
    assert count == 0
    status, problem = await call(gateway, "DELETE", f"{path}/{uuid.uuid4()}", owner.token)
    assert (status, problem["code"]) == (404, "not_found")


# -- using a key ---------------------------------------------------------


async def test_a_key_acts_with_the_role_of_its_scopes(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner, tenant = await pro_tenant(gateway)
    one, settings = f"{TENANTS}/{tenant['id']}", f"{TENANTS}/{tenant['id']}/settings"
    read, write, admin = [
        (await new_key(gateway, tenant["id"], owner, [scope]))["key"]
        for scope in ("read", "write", "admin")
    ]
    for key, role in ((read, "viewer"), (write, "member"), (admin, "admin")):
        status, seen = await keyed(gateway, "GET", one, key)
        assert (status, seen["id"], seen["role"]) == (200, tenant["id"], role)
    assert (await keyed(gateway, "GET", f"{one}/members", read))[0] == 200

    status, problem = await keyed(gateway, "PUT", settings, read, {"theme": "dark"})
    assert (status, problem["code"]) == (403, "insufficient_scope")
    status, problem = await keyed(gateway, "POST", f"{one}/features/ai/uses", read)
    assert (status, problem["code"]) == (403, "insufficient_scope")
    status, problem = await keyed(gateway, "PUT", settings, write, {"theme": "dark"})
    assert (status, problem["code"]) == (403, "insufficient_role")
    assert (await keyed(gateway, "POST", f"{one}/features/ai/uses", write))[0] == 200
    status, saved = await keyed(gateway, "PUT", settings, admin, {"theme": "dark"})
    assert (status, saved) == (200, {"theme": "dark"})
    status, problem = await keyed(gateway, "DELETE", one, admin)
    assert (status, problem["code"]) == (403, "owner_required")

    # Service accounts are not people: not listed, not counted as members.
    _, members = await call(gateway, "GET", f"{one}/members", owner.token)
    assert [m["user_id"] for m in members["items"]] == [owner.user_id]
    used = await owner_conn.fetchval(
        "SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND last_used_at IS NOT NULL",
        uuid.UUID(tenant["id"]),
    )
    assert used == 3


async def test_last_used_is_stamped_at_most_once_a_minute(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner, tenant = await pro_tenant(gateway)
    issued = await new_key(gateway, tenant["id"], owner, ["read"])
    key_id, one = uuid.UUID(issued["id"]), f"{TENANTS}/{tenant['id']}"
    assert (await keyed(gateway, "GET", one, issued["key"]))[0] == 200
    first = await owner_conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key_id)
    assert first is not None
    assert (await keyed(gateway, "GET", one, issued["key"]))[0] == 200
    again = await owner_conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key_id)
    assert again == first  # within the minute: not written again
    await owner_conn.execute(
        "UPDATE api_keys SET last_used_at = last_used_at - interval '2 minutes' WHERE id = $1",
        key_id,
    )
    assert (await keyed(gateway, "GET", one, issued["key"]))[0] == 200
    later = await owner_conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key_id)
    assert later > first - timedelta(minutes=2)
    _, listed = await call(gateway, "GET", keys_path(tenant["id"]), owner.token)
    assert datetime.fromisoformat(listed["items"][0]["last_used_at"]) == later


async def test_a_key_sees_only_its_own_tenant(gateway: TestServer) -> None:
    owner, tenant = await pro_tenant(gateway)
    other = await new_tenant(gateway, owner)  # the same owner's other tenant
    key = (await new_key(gateway, tenant["id"], owner, ["admin"]))["key"]
    for method, path, json in (
        ("GET", f"{TENANTS}/{other['id']}", None),
        ("GET", f"{TENANTS}/{other['id']}/members", None),
        ("PUT", f"{TENANTS}/{other['id']}/settings", {"x": 1}),
        ("GET", f"{TENANTS}/{uuid.uuid4()}", None),
    ):
        status, problem = await keyed(gateway, method, path, key, json)
        assert (status, problem["code"]) == (404, "not_found"), (method, path)
    status, problem = await keyed(gateway, "POST", TENANTS, key, {"name": "Made by a key"})
    assert (status, problem["code"]) == (401, "api_key_not_accepted")


async def test_expired_revoked_and_unknown_keys_have_distinct_codes(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner, tenant = await pro_tenant(gateway)
    one = f"{TENANTS}/{tenant['id']}"
    expired = await new_key(gateway, tenant["id"], owner, ["read"])
    await owner_conn.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(expired["id"]),
    )
    revoked = await new_key(gateway, tenant["id"], owner, ["write"])
    assert (await keyed(gateway, "GET", one, revoked["key"]))[0] == 200
    path = f"{keys_path(tenant['id'])}/{revoked['id']}"
    assert (await call(gateway, "DELETE", path, owner.token))[0] == 204
    assert (await call(gateway, "DELETE", path, owner.token))[0] == 204  # again: no change
    unknown = f"hbk_{uuid.UUID(tenant['id']).hex}_{'A' * 43}"
    foreign = f"hbk_{uuid.uuid4().hex}_{'A' * 43}"
    for key, code in (
        (expired["key"], "api_key_expired"),
        (revoked["key"], "api_key_revoked"),
        (unknown, "invalid_api_key"),
        (foreign, "invalid_api_key"),
        ("not-a-key", "invalid_api_key"),
        ("", "invalid_api_key"),
    ):
        status, problem = await keyed(gateway, "GET", one, key)
        assert (status, problem["code"]) == (401, code), key
    _, listed = await call(gateway, "GET", keys_path(tenant["id"]), owner.token)
    by_id = {k["id"]: k for k in listed["items"]}
    assert by_id[revoked["id"]]["revoked_at"] is not None
    assert by_id[expired["id"]]["revoked_at"] is None


async def test_a_key_acts_only_while_its_creator_could_make_it(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    """Keys belong to the tenant, but a key made by an admin who is removed,
    demoted below admin or banned by staff is refused at once, and the sockets
    of a revoked key are dropped; keys made by others keep working."""
    owner, tenant = await pro_tenant(gateway)
    one = f"{TENANTS}/{tenant['id']}"
    removed, demoted, banned = [
        await add_member(gateway, tenant["id"], owner, "admin") for _ in range(3)
    ]
    keys = {
        who: await new_key(gateway, tenant["id"], who, ["read"])
        for who in (removed, demoted, banned)
    }
    owners_key = await new_key(gateway, tenant["id"], owner, ["read"])
    socket = await Socket().connect(url_of(gateway), keys[removed]["key"])
    try:
        ack = await socket.client.call("tenant:watch", {"tenant_id": tenant["id"]})
        assert ack["ok"], ack
        members = f"{one}/members"
        assert (await call(gateway, "DELETE", f"{members}/{removed.user_id}", owner.token))[
            0
        ] == 204
        await socket.expect_revoked("api_key_revoked")
    finally:
        await socket.close()
    role = {"role": "member"}
    status, _ = await call(gateway, "PATCH", f"{members}/{demoted.user_id}", owner.token, role)
    assert status == 200
    await owner_conn.execute(
        "UPDATE users SET banned_at = now() WHERE id = $1", uuid.UUID(banned.user_id)
    )
    for who in (removed, demoted, banned):
        status, problem = await keyed(gateway, "GET", one, keys[who]["key"])
        assert (status, problem["code"]) == (401, "api_key_revoked"), who
    assert (await keyed(gateway, "GET", one, owners_key["key"]))[0] == 200
    _, listed = await call(gateway, "GET", keys_path(tenant["id"]), owner.token)
    revoked = {k["id"] for k in listed["items"] if k["revoked_at"] is not None}
    assert revoked == {keys[removed]["id"], keys[demoted]["id"]}  # the ban revokes nothing


async def test_a_bearer_token_wins_over_a_key(gateway: TestServer) -> None:
    owner, tenant = await pro_tenant(gateway)
    key = (await new_key(gateway, tenant["id"], owner, ["read"]))["key"]
    status, seen = await call(
        gateway, "GET", f"{TENANTS}/{tenant['id']}", owner.token, **{"X-API-Key": key}
    )
    assert (status, seen["role"]) == (200, "owner")


async def test_openapi_offers_the_api_key_scheme_on_tenant_routes(gateway: TestServer) -> None:
    status, document = await call(gateway, "GET", "/openapi.json")
    assert status == 200
    scheme = document["components"]["securitySchemes"]["api_key"]
    assert scheme == scheme | {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    paths = document["paths"]
    both = [{"bearer": []}, {"api_key": []}]
    assert paths["/api/v1/tenants/{tenant_id}"]["get"]["security"] == both
    assert paths["/api/v1/tenants/{tenant_id}/members"]["get"]["security"] == both
    assert paths["/api/v1/tenants"]["post"]["security"] == [{"bearer": []}]
    keys = paths["/api/v1/tenants/{tenant_id}/api-keys"]
    assert keys["post"]["security"] == [{"bearer": []}]
    assert "key" in document["components"]["schemas"]["IssuedApiKey"]["required"]


# -- sockets -------------------------------------------------------------


async def test_a_socket_authenticates_with_a_key_and_is_dropped_on_revoke(
    gateway: TestServer,
) -> None:
    owner, tenant = await pro_tenant(gateway)
    other = await new_tenant(gateway, owner)
    issued = await new_key(gateway, tenant["id"], owner, ["read"])
    kept = await new_key(gateway, tenant["id"], owner, ["read"])
    socket = await Socket().connect(url_of(gateway), issued["key"])
    staying = await Socket().connect(url_of(gateway), kept["key"])
    try:
        ack = await socket.client.call("tenant:watch", {"tenant_id": tenant["id"]})
        assert ack["ok"] and ack["data"]["role"] == "viewer", ack
        ack = await socket.client.call("tenant:watch", {"tenant_id": other["id"]})
        assert ack["error"]["code"] == "not_found", ack

        path = f"{keys_path(tenant['id'])}/{issued['id']}"
        assert (await call(gateway, "DELETE", path, owner.token))[0] == 204
        await socket.expect_revoked("api_key_revoked")
        assert staying.client.connected
    finally:
        await socket.close()
        await staying.close()

    refused = Socket()
    errors: list[Any] = []
    refused.client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(url_of(gateway), issued["key"])
    assert errors and errors[0]["data"]["code"] == "api_key_revoked", errors
