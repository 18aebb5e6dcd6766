"""Members, roles and invites through a real gateway and real tenant shards:
invite acceptance by a new and by an existing account, invite token errors,
resend and revoke, role checks, the last-owner rule, a removed member losing
access at once (HTTP and sockets), and the deployment's signup policies."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestServer

from hubbub.actors.command import Command, CommandBody
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.gateway import create_app
from hubbub.plugin import load_plugins
from hubbub.services import ROUTER
from hubbub.tenancy import state as rules
from hubbub.tenancy import views
from hubbub.tenancy.commands import CreateInvite, CreateTenant, GetTenant, RemoveMember
from tests.support.accounts import PASSWORD, unique_email
from tests.support.tenants import (
    TENANTS,
    add_member,
    call,
    invite,
    new_account,
    new_tenant,
)

ACCEPT = "/api/v1/invites/accept"


async def test_a_new_user_accepts_an_invite_with_name_and_password(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    email = unique_email("invitee")
    issued = await invite(gateway, tenant["id"], owner, email, "admin")
    assert set(issued) == {"id", "email", "role", "token", "accept_url", "expires_at"}
    assert (issued["email"], issued["role"]) == (email, "admin")
    assert issued["accept_url"].endswith(f"/invites/accept?token={issued['token']}")
    lifetime = datetime.fromisoformat(issued["expires_at"]) - datetime.now(UTC)
    assert 6 < lifetime.total_seconds() / 86400 <= 7
    stored = await owner_conn.fetchval(
        "SELECT token_hash FROM tenant_invites WHERE id = $1", uuid.UUID(issued["id"])
    )
    assert bytes(stored) == hashlib.sha256(issued["token"].encode()).digest()

    body = {"token": issued["token"], "name": "New Person", "password": PASSWORD}
    status, tokens = await call(gateway, "POST", ACCEPT, json=body)
    assert status == 200, tokens
    assert tokens["token_type"] == "Bearer" and tokens["user"]["email"] == email
    status, seen = await call(gateway, "GET", f"{TENANTS}/{tenant['id']}", tokens["access_token"])
    assert (status, seen["role"]) == (200, "admin")
    status, problem = await call(gateway, "POST", ACCEPT, json=body)
    assert (status, problem["code"]) == (410, "invite_already_used")
    login = {"email": email, "password": PASSWORD}
    assert (await call(gateway, "POST", "/api/v1/auth/login", json=login))[0] == 200


async def test_an_existing_user_accepts_with_a_bearer_token(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    invitee, stranger = await new_account(gateway), await new_account(gateway)
    issued = await invite(gateway, tenant["id"], owner, invitee.email.upper(), "viewer")

    status, problem = await call(
        gateway, "POST", ACCEPT, stranger.token, {"token": issued["token"]}
    )
    assert (status, problem["code"]) == (403, "invite_email_mismatch")
    status, problem = await call(gateway, "POST", ACCEPT, json={"token": issued["token"]})
    assert (status, problem["code"]) == (401, "unauthenticated")
    status, tokens = await call(gateway, "POST", ACCEPT, invitee.token, {"token": issued["token"]})
    assert status == 200 and tokens["user"]["id"] == invitee.user_id
    _, members = await call(gateway, "GET", f"{TENANTS}/{tenant['id']}/members", owner.token)
    roles = {m["user_id"]: (m["role"], m["email"]) for m in members["items"]}
    assert roles[invitee.user_id] == ("viewer", invitee.email)
    assert roles[owner.user_id][0] == "owner"


async def test_a_new_account_for_a_registered_email_is_409(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    existing = await new_account(gateway)
    issued = await invite(gateway, tenant["id"], owner, existing.email)
    body = {"token": issued["token"], "name": "Again", "password": PASSWORD}
    status, problem = await call(gateway, "POST", ACCEPT, json=body)
    assert (status, problem["code"]) == (409, "email_taken")


async def test_invite_token_errors_have_distinct_codes(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    invitee = await new_account(gateway)

    async def accept(token: str) -> tuple[int, str]:
        status, problem = await call(gateway, "POST", ACCEPT, invitee.token, {"token": token})
        return status, problem["code"]

    assert await accept("garbage") == (400, "invalid_invite_token")
    unknown = f"hbi_{uuid.UUID(tenant['id']).hex}_{'A' * 43}"
    assert await accept(unknown) == (400, "invalid_invite_token")
    elsewhere = f"hbi_{uuid.uuid4().hex}_{'A' * 43}"
    assert await accept(elsewhere) == (400, "invalid_invite_token")

    revoked = await invite(gateway, tenant["id"], owner, invitee.email)
    path = f"{TENANTS}/{tenant['id']}/invites/{revoked['id']}"
    assert (await call(gateway, "DELETE", path, owner.token))[0] == 204
    assert await accept(revoked["token"]) == (410, "invite_revoked")

    # An invite issued already expired: the entity's clock decides expiry.
    token = f"hbi_{uuid.UUID(tenant['id']).hex}_{'B' * 43}"
    await gateway.app[ROUTER].send(
        Command(
            "tenant",
            tenant["id"],
            CreateInvite(
                actor=owner.user_id,
                invite_id=str(uuid.uuid4()),
                email=invitee.email,
                role="member",
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                invite_days=-1,
            ),
            tenant["id"],
        )
    )
    assert await accept(token) == (410, "invite_expired")
    _, listed = await call(gateway, "GET", f"{TENANTS}/{tenant['id']}/invites", owner.token)
    assert sorted(i["status"] for i in listed["items"]) == ["expired", "revoked"]


async def test_resend_gives_a_new_token_and_kills_the_old_one(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    invitee = await new_account(gateway)
    first = await invite(gateway, tenant["id"], owner, invitee.email)
    path = f"{TENANTS}/{tenant['id']}/invites/{first['id']}"
    status, second = await call(gateway, "POST", f"{path}/resend", owner.token)
    assert status == 200 and second["id"] == first["id"] and second["token"] != first["token"]

    status, problem = await call(gateway, "POST", ACCEPT, invitee.token, {"token": first["token"]})
    assert (status, problem["code"]) == (400, "invalid_invite_token")
    assert (await call(gateway, "POST", ACCEPT, invitee.token, {"token": second["token"]}))[
        0
    ] == 200
    status, problem = await call(gateway, "POST", f"{path}/resend", owner.token)
    assert (status, problem["code"]) == (409, "invite_already_used")
    status, problem = await call(gateway, "DELETE", path, owner.token)
    assert (status, problem["code"]) == (409, "invite_already_used")
    missing = f"{TENANTS}/{tenant['id']}/invites/{uuid.uuid4()}"
    assert (await call(gateway, "DELETE", missing, owner.token))[0] == 404


async def test_duplicate_invites_and_members_are_409(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    email = unique_email()
    await invite(gateway, tenant["id"], owner, email)
    body = {"email": email.upper(), "role": "member"}
    path = f"{TENANTS}/{tenant['id']}/invites"
    status, problem = await call(gateway, "POST", path, owner.token, body)
    assert (status, problem["code"]) == (409, "invite_pending")
    member = await add_member(gateway, tenant["id"], owner)
    status, problem = await call(gateway, "POST", path, owner.token, {"email": member.email})
    assert (status, problem["code"]) == (409, "already_member")
    status, problem = await call(gateway, "POST", path, owner.token, {"email": "nope", "role": "x"})
    assert status == 422 and {e["field"] for e in problem["errors"]} == {"email", "role"}


async def test_role_checks_on_members_and_invites(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    base = f"{TENANTS}/{tenant['id']}"
    admin = await add_member(gateway, tenant["id"], owner, "admin")
    member = await add_member(gateway, tenant["id"], owner, "member")
    viewer = await add_member(gateway, tenant["id"], owner, "viewer")

    # Members and viewers read the roster but manage nothing.
    assert (await call(gateway, "GET", f"{base}/members", viewer.token))[0] == 200
    for account in (member, viewer):
        status, problem = await call(gateway, "GET", f"{base}/invites", account.token)
        assert (status, problem["code"]) == (403, "insufficient_role")
        body = {"email": unique_email()}
        status, problem = await call(gateway, "POST", f"{base}/invites", account.token, body)
        assert (status, problem["code"]) == (403, "insufficient_role")
    status, problem = await call(
        gateway, "PATCH", f"{base}/members/{viewer.user_id}", member.token, {"role": "admin"}
    )
    assert (status, problem["code"]) == (403, "insufficient_role")
    status, problem = await call(
        gateway, "DELETE", f"{base}/members/{viewer.user_id}", member.token
    )
    assert (status, problem["code"]) == (403, "insufficient_role")

    # Admins manage members and invites, but not owners or the owner role.
    status, changed = await call(
        gateway, "PATCH", f"{base}/members/{viewer.user_id}", admin.token, {"role": "member"}
    )
    assert (status, changed["role"], changed["email"]) == (200, "member", viewer.email)
    for target, role in ((member.user_id, "owner"), (owner.user_id, "admin")):
        status, problem = await call(
            gateway, "PATCH", f"{base}/members/{target}", admin.token, {"role": role}
        )
        assert (status, problem["code"]) == (403, "owner_required")
    status, problem = await call(gateway, "DELETE", f"{base}/members/{owner.user_id}", admin.token)
    assert (status, problem["code"]) == (403, "owner_required")
    body = {"email": unique_email(), "role": "owner"}
    status, problem = await call(gateway, "POST", f"{base}/invites", admin.token, body)
    assert (status, problem["code"]) == (403, "owner_required")
    assert (await call(gateway, "DELETE", f"{base}/members/{viewer.user_id}", admin.token))[
        0
    ] == 204
    missing = f"{base}/members/{uuid.uuid4()}"
    assert (await call(gateway, "PATCH", missing, owner.token, {"role": "member"}))[0] == 404


async def test_the_last_owner_can_neither_leave_nor_be_demoted(gateway: TestServer) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    me = f"{TENANTS}/{tenant['id']}/members/{owner.user_id}"
    status, problem = await call(gateway, "DELETE", me, owner.token)
    assert (status, problem["code"]) == (409, "last_owner")
    status, problem = await call(gateway, "PATCH", me, owner.token, {"role": "admin"})
    assert (status, problem["code"]) == (409, "last_owner")

    # Hand ownership over, then the first owner may step down and leave.
    heir = await add_member(gateway, tenant["id"], owner, "member")
    heir_path = f"{TENANTS}/{tenant['id']}/members/{heir.user_id}"
    status, promoted = await call(gateway, "PATCH", heir_path, owner.token, {"role": "owner"})
    assert (status, promoted["role"]) == (200, "owner")
    assert (await call(gateway, "PATCH", me, owner.token, {"role": "admin"}))[0] == 200
    assert (await call(gateway, "DELETE", me, owner.token))[0] == 204
    status, problem = await call(gateway, "DELETE", heir_path, heir.token)
    assert (status, problem["code"]) == (409, "last_owner")


async def test_a_removed_member_loses_access_at_once_sockets_included(
    gateway: TestServer,
) -> None:
    owner = await new_account(gateway)
    tenant = await new_tenant(gateway, owner)
    member = await add_member(gateway, tenant["id"], owner)
    one = f"{TENANTS}/{tenant['id']}"
    received: asyncio.Queue = asyncio.Queue()
    client = socketio.AsyncClient()
    for event in ("tenant:updated", "tenant:access_revoked", "tenant:member_removed"):
        client.on(event, lambda data, event=event: received.put_nowait((event, data)))
    await client.connect(str(gateway.make_url("")), auth={"token": member.token})
    try:
        ack = await client.call("tenant:watch", {"tenant_id": tenant["id"]})
        assert ack["ok"], ack
        assert (await call(gateway, "DELETE", f"{one}/members/{member.user_id}", owner.token))[
            0
        ] == 204
        # The very next request is refused.
        for method, path in (("GET", one), ("GET", f"{one}/members"), ("GET", f"{one}/settings")):
            status, problem = await call(gateway, method, path, member.token)
            assert (status, problem["code"]) == (404, "not_found"), path
        seen = {}
        while "tenant:access_revoked" not in seen:
            event, data = await asyncio.wait_for(received.get(), 10)
            seen[event] = data
        assert seen["tenant:access_revoked"] == {"tenant_id": tenant["id"]}
        # Out of the room: a later tenant event reaches a member's socket, not theirs.
        watcher = socketio.AsyncClient()
        updates: asyncio.Queue = asyncio.Queue()
        watcher.on("tenant:updated", updates.put_nowait)
        await watcher.connect(str(gateway.make_url("")), auth={"token": owner.token})
        try:
            assert (await watcher.call("tenant:watch", {"tenant_id": tenant["id"]}))["ok"]
            await call(gateway, "PATCH", one, owner.token, {"name": "After removal"})
            assert (await asyncio.wait_for(updates.get(), 10))["changes"]["name"] == "After removal"
        finally:
            await watcher.disconnect()
        marker = await client.call("tenant:watch", {"tenant_id": tenant["id"]})
        assert marker["error"]["code"] == "not_found"
        late = [received.get_nowait()[0] for _ in range(received.qsize())]
        assert "tenant:updated" not in late
    finally:
        await client.disconnect()


class Fly(CommandBody, frozen=True):
    """A command of no tenant."""


def test_the_pure_rules_refuse_without_changing_anything() -> None:
    now = datetime.now(UTC)
    created = rules.decide(
        None,
        CreateTenant(
            actor="u1",
            tenant_id="t1",
            name="T",
            slug="tee",
            plan="free",
            timezone="UTC",
            locale="en",
        ),
        now,
    )
    state = None
    for event in created:
        state = rules.apply(state, event)
    assert state is not None and state.members["u1"].role == "owner" and state.seq == 1
    with pytest.raises(AppError) as refused:
        rules.decide(state, RemoveMember(actor="u1", user_id="u1"), now)
    assert refused.value.code == "last_owner"
    with pytest.raises(AppError) as refused:
        views.query(state, GetTenant(actor="stranger"), now)
    assert refused.value.code == "not_found"
    with pytest.raises(AppError) as refused:
        rules.decide(state, Fly(), now)
    assert refused.value.code == "unknown_command"
    assert views.query(state, GetTenant(actor="u1"), now)["role"] == "owner"


@pytest.fixture
async def gateway_with(ray_cluster: Settings) -> AsyncIterator:
    servers: list[TestServer] = []

    async def start(**overrides: object) -> TestServer:
        settings = ray_cluster.model_copy(update=overrides)
        server = TestServer(create_app(settings, load_plugins(["tests.support.probe"])))
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def test_invite_only_signup_refuses_register_but_invites_create_accounts(
    gateway_with,
) -> None:
    server = await gateway_with(signup_policy="invite_only")
    body = {"email": unique_email(), "password": PASSWORD, "name": "Walk In"}
    status, problem = await call(server, "POST", "/api/v1/auth/register", json=body)
    assert (status, problem["code"]) == (403, "signup_invite_only")

    owner = await new_account(await gateway_with())  # an account from an open gateway
    tenant = await new_tenant(server, owner)
    issued = await invite(server, tenant["id"], owner, body["email"])
    accept = {"token": issued["token"], "name": "Invited", "password": PASSWORD}
    status, tokens = await call(server, "POST", ACCEPT, json=accept)
    assert status == 200 and tokens["user"]["email"] == body["email"]


async def test_approval_signup_files_requests_that_staff_approve_or_reject(
    gateway_with, owner_conn: asyncpg.Connection
) -> None:
    server = await gateway_with(signup_policy="approval")
    staff = await new_account(await gateway_with())
    await owner_conn.execute(
        "UPDATE users SET is_staff = true WHERE id = $1", uuid.UUID(staff.user_id)
    )
    nobody = await new_account(await gateway_with())
    wanted, unwanted = unique_email("wanted"), unique_email("unwanted")

    filed = {}
    for email in (wanted, unwanted):
        body = {"email": email, "password": PASSWORD, "name": "Applicant"}
        status, filed[email] = await call(server, "POST", "/api/v1/auth/register", json=body)
        assert (status, filed[email]["status"]) == (202, "pending"), filed[email]
        status, problem = await call(server, "POST", "/api/v1/auth/register", json=body)
        assert (status, problem["code"]) == (409, "signup_request_pending")
    login = {"email": wanted, "password": PASSWORD}
    assert (await call(server, "POST", "/api/v1/auth/login", json=login))[0] == 401

    base = "/api/v1/signup-requests"
    status, problem = await call(server, "GET", base, nobody.token)
    assert (status, problem["code"]) == (403, "staff_only")
    status, pending = await call(server, "GET", f"{base}?limit=100", staff.token)
    assert status == 200
    assert {wanted, unwanted} <= {r["email"] for r in pending["items"]}

    status, approved = await call(
        server, "POST", f"{base}/{filed[wanted]['id']}/approve", staff.token
    )
    assert (status, approved["status"]) == (200, "approved") and approved["user_id"]
    assert (await call(server, "POST", "/api/v1/auth/login", json=login))[0] == 200
    status, rejected = await call(
        server, "POST", f"{base}/{filed[unwanted]['id']}/reject", staff.token
    )
    assert (status, rejected["status"]) == (200, "rejected")
    status, _ = await call(server, "POST", f"{base}/{filed[unwanted]['id']}/approve", staff.token)
    assert status == 404
    rejected_login = {"email": unwanted, "password": PASSWORD}
    assert (await call(server, "POST", "/api/v1/auth/login", json=rejected_login))[0] == 401
