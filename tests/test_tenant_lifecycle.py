"""The rest of a tenant's life: restore within the grace period and the
purge after it (every tenant-scoped row, checked table by table), staff
changing a plan (audited), signup decisions audited, invites proving the
email, and idempotent creation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.gateway import create_app
from hubbub.plugin import load_plugins
from hubbub.tenancy import state as rules
from hubbub.tenancy.commands import CreateTenant, DeleteTenant, PurgeTenant, RestoreTenant
from hubbub.tenancy.purge import PURGE
from tests.support.accounts import PASSWORD, unique_email
from tests.support.tenants import (
    TENANTS,
    Account,
    add_member,
    call,
    invite,
    new_account,
    new_tenant,
)

TINY_GRACE_DAYS = 1e-5  # under a second
STAFF_PLAN = "/api/v1/staff/tenants/{}/plan"

StartGateway = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def gateway_with(ray_cluster: Settings) -> AsyncIterator[StartGateway]:
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


async def make_staff(server: TestServer, conn: asyncpg.Connection) -> Account:
    account = await new_account(server)
    await conn.execute("UPDATE users SET is_staff = true WHERE id = $1", uuid.UUID(account.user_id))
    return account


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    """Every tenant-scoped table: a tenant_id column under row-level security."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_class c
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
           WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity
             AND c.relnamespace = current_schema()::regnamespace ORDER BY 1"""
    )
    return [row["relname"] for row in rows]


async def rows_of(conn: asyncpg.Connection, tenant_id: str) -> dict[str, int]:
    """Rows of ``tenant_id`` in each tenant table (as the owner: no policy hides any)."""
    counts = {}
    for table in await tenant_tables(conn):
        counts[table] = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", uuid.UUID(tenant_id)
        )
    return counts


async def populated_tenant(server: TestServer, owner: Account, staff: Account) -> dict:
    """A tenant with a row in every tenant table hubbub has."""
    tenant = await new_tenant(server, owner)
    one = f"{TENANTS}/{tenant['id']}"
    await add_member(server, tenant["id"], owner)  # a member and an accepted invite
    await invite(server, tenant["id"], owner, unique_email("pending"))
    settings_call = await call(
        server, "PUT", f"{one}/settings", owner.token, {"a": 1}, **{"Idempotency-Key": "settings-1"}
    )
    assert settings_call[0] == 200  # and an idempotency receipt
    status, _ = await call(
        server, "PUT", STAFF_PLAN.format(tenant["id"]), staff.token, {"plan": "pro"}
    )
    assert status == 200
    status, _ = await call(server, "POST", f"{one}/features/ai/uses", owner.token)
    assert status == 200  # a usage counter
    return tenant


async def delete(server: TestServer, tenant_id: str, owner: Account) -> dict:
    status, deletion = await call(server, "DELETE", f"{TENANTS}/{tenant_id}", owner.token)
    assert status == 200, deletion
    return deletion


async def wait_past(moment: str) -> None:
    """Until the clock passes ``moment`` (an RFC 3339 time)."""
    left = (datetime.fromisoformat(moment) - datetime.now(UTC)).total_seconds()
    await asyncio.sleep(max(left, 0) + 0.1)  # a deadline to pass, not an event to await


async def sweep(server: TestServer) -> int:
    """One purge round on ``server`` (waiting out a round of another gateway)."""
    for _ in range(200):
        purged = await server.app[PURGE].sweep()
        if purged is not None:
            return purged
        await asyncio.sleep(0.05)
    raise AssertionError("the purge lock stayed taken")


async def test_restore_within_the_grace_period_and_410_after_it(
    gateway_with: StartGateway,
) -> None:
    server = await gateway_with()
    owner = await new_account(server)
    tenant = await new_tenant(server, owner)
    await delete(server, tenant["id"], owner)
    status, restored = await call(server, "POST", f"{TENANTS}/{tenant['id']}/restore", owner.token)
    assert (status, restored["id"]) == (200, tenant["id"])

    hasty = await gateway_with(
        tenant_deletion_grace_days=TINY_GRACE_DAYS, tenant_purge_interval_seconds=3600
    )
    deletion = await delete(hasty, tenant["id"], owner)
    await wait_past(deletion["purge_after"])
    status, problem = await call(hasty, "POST", f"{TENANTS}/{tenant['id']}/restore", owner.token)
    assert (status, problem["code"]) == (410, "restore_period_ended"), problem
    stranger = await new_account(server)
    status, problem = await call(hasty, "POST", f"{TENANTS}/{tenant['id']}/restore", stranger.token)
    assert (status, problem["code"]) == (404, "not_found")


async def test_the_sweep_purges_every_row_of_a_tenant_past_its_grace(
    gateway_with: StartGateway, owner_conn: asyncpg.Connection
) -> None:
    server = await gateway_with(
        tenant_deletion_grace_days=TINY_GRACE_DAYS, tenant_purge_interval_seconds=3600
    )
    staff = await make_staff(server, owner_conn)
    owner = await new_account(server)
    doomed = await populated_tenant(server, owner, staff)
    kept = await populated_tenant(server, owner, staff)
    before = await rows_of(owner_conn, doomed["id"])
    hubbub_tables = {"tenants", "tenant_slugs", "tenant_members", "tenant_invites"}
    hubbub_tables |= {"tenant_usage", "entity_commands"}
    assert all(before[table] > 0 for table in hubbub_tables), before

    deletion = await delete(server, doomed["id"], owner)
    await wait_past(deletion["purge_after"])
    assert await sweep(server) >= 1

    after = await rows_of(owner_conn, doomed["id"])
    assert set(after) == set(before) and set(after.values()) == {0}, after
    assert (await rows_of(owner_conn, kept["id"]))["tenants"] == 1  # others untouched
    status, problem = await call(server, "POST", f"{TENANTS}/{doomed['id']}/restore", owner.token)
    assert (status, problem["code"]) == (404, "not_found")
    status, _ = await call(server, "GET", f"{TENANTS}/{kept['id']}", owner.token)
    assert status == 200
    # the slug is free again
    status, again = await call(
        server, "POST", TENANTS, owner.token, {"name": "Again", "slug": doomed["slug"]}
    )
    assert (status, again["slug"]) == (201, doomed["slug"])


async def test_each_gateway_sweeps_on_its_own_schedule(
    gateway_with: StartGateway, owner_conn: asyncpg.Connection
) -> None:
    server = await gateway_with(
        tenant_deletion_grace_days=TINY_GRACE_DAYS, tenant_purge_interval_seconds=0.2
    )
    await gateway_with(tenant_purge_interval_seconds=0.2)  # a second one competing
    owner = await new_account(server)
    tenant = await new_tenant(server, owner)
    await delete(server, tenant["id"], owner)
    for _ in range(300):
        if not await owner_conn.fetchval(
            "SELECT count(*) FROM tenants WHERE id = $1", uuid.UUID(tenant["id"])
        ):
            break
        await asyncio.sleep(0.1)
    assert set((await rows_of(owner_conn, tenant["id"])).values()) == {0}


def test_a_purge_cannot_run_early_or_on_a_live_tenant() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    create = CreateTenant(
        "u", tenant_id="t", name="T", slug="tee", plan="free", timezone="UTC", locale="en"
    )
    state = None
    for event in rules.decide(None, create, now):
        state = rules.apply(state, event)
    with pytest.raises(AppError, match="tenant_not_deleted"):
        rules.decide(state, PurgeTenant(), now)
    (deleted,) = rules.decide(state, DeleteTenant("u", grace_days=1), now)
    state = rules.apply(state, deleted)
    with pytest.raises(AppError, match="purge_not_due"):
        rules.decide(state, PurgeTenant(), now + timedelta(hours=23))
    (purged,) = rules.decide(state, PurgeTenant(), now + timedelta(days=1))
    assert rules.apply(state, purged) is None
    with pytest.raises(AppError) as refused:
        rules.decide(state, RestoreTenant("u"), now + timedelta(days=1))
    assert (refused.value.code, refused.value.status) == ("restore_period_ended", 410)


async def test_staff_change_a_plan_through_the_entity_and_it_is_audited(
    gateway_with: StartGateway, owner_conn: asyncpg.Connection
) -> None:
    server = await gateway_with()
    staff = await make_staff(server, owner_conn)
    owner = await new_account(server)
    tenant = await new_tenant(server, owner)
    path = STAFF_PLAN.format(tenant["id"])

    status, problem = await call(server, "PUT", path, owner.token, {"plan": "pro"})
    assert (status, problem["code"]) == (403, "staff_only")
    status, problem = await call(server, "PUT", path, staff.token, {"plan": "platinum"})
    assert (status, problem["code"]) == (422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == ["plan"]
    status, problem = await call(server, "PUT", path, staff.token, {})
    assert status == 422 and "plan" in [e["field"] for e in problem["errors"]]
    status, _ = await call(
        server, "PUT", STAFF_PLAN.format(uuid.uuid4()), staff.token, {"plan": "pro"}
    )
    assert status == 404
    assert await audit_of(owner_conn, tenant["id"]) == []

    body = {"plan": "business", "reason": "upgrade deal"}
    status, changed = await call(server, "PUT", path, staff.token, body)
    assert (status, changed) == (
        200,
        {"tenant_id": tenant["id"], "plan": "business", "previous": "free"},
    )
    _, plan = await call(server, "GET", f"{TENANTS}/{tenant['id']}/plan", owner.token)
    assert plan["plan"] == "business"
    status, again = await call(server, "PUT", path, staff.token, body)
    assert (status, again["previous"]) == (200, "business")

    (row,) = await audit_of(owner_conn, tenant["id"])  # the repeat wrote nothing
    assert (row["actor_id"], row["action"], row["target_kind"]) == (
        uuid.UUID(staff.user_id),
        "set_plan",
        "tenant",
    )
    assert (row["before"], row["after"], row["reason"]) == (
        {"plan": "free"},
        {"plan": "business"},
        "upgrade deal",
    )
    status, log = await call(
        server, "GET", f"/api/v1/staff/audit-log?target_id={tenant['id']}", staff.token
    )
    assert status == 200 and log["items"][0]["target_kind"] == "tenant"


async def audit_of(conn: asyncpg.Connection, target_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM staff_audit_log WHERE target_id = $1 ORDER BY id", uuid.UUID(target_id)
    )


async def test_signup_approvals_and_rejections_are_audited(
    gateway_with: StartGateway, owner_conn: asyncpg.Connection
) -> None:
    server = await gateway_with(signup_policy="approval")
    staff = await make_staff(await gateway_with(), owner_conn)
    filed = []
    for _ in range(2):
        body = {"email": unique_email("applicant"), "password": PASSWORD, "name": "Applicant"}
        status, request = await call(server, "POST", "/api/v1/auth/register", json=body)
        assert status == 202
        filed.append(request)
    base = "/api/v1/signup-requests"
    status, approved = await call(server, "POST", f"{base}/{filed[0]['id']}/approve", staff.token)
    assert status == 200
    status, _ = await call(server, "POST", f"{base}/{filed[1]['id']}/reject", staff.token)
    assert status == 200
    status, _ = await call(server, "POST", f"{base}/{filed[1]['id']}/reject", staff.token)
    assert status == 404  # decided already: refused, and not audited again

    (approval,) = await audit_of(owner_conn, filed[0]["id"])
    assert (approval["action"], approval["target_kind"], approval["actor_id"]) == (
        "signup_approve",
        "signup_request",
        uuid.UUID(staff.user_id),
    )
    assert approval["before"]["status"] == "pending"
    assert approval["after"] == {
        "status": "approved",
        "email": filed[0]["email"],
        "user_id": approved["user_id"],
    }
    (rejection,) = await audit_of(owner_conn, filed[1]["id"])
    assert (rejection["action"], rejection["after"]["status"]) == ("signup_reject", "rejected")


async def test_accepting_an_invite_verifies_the_email(
    gateway_with: StartGateway, owner_conn: asyncpg.Connection
) -> None:
    server = await gateway_with()
    owner = await new_account(server)
    tenant = await new_tenant(server, owner)

    newcomer = unique_email("newcomer")
    issued = await invite(server, tenant["id"], owner, newcomer)
    accept = {"token": issued["token"], "name": "New", "password": PASSWORD}
    status, tokens = await call(server, "POST", "/api/v1/invites/accept", json=accept)
    assert (status, tokens["user"]["email_verified"]) == (200, True)

    existing = await new_account(server)
    verified = "SELECT email_verified FROM users WHERE id = $1"
    assert await owner_conn.fetchval(verified, uuid.UUID(existing.user_id)) is False
    issued = await invite(server, tenant["id"], owner, existing.email.upper())
    status, tokens = await call(
        server, "POST", "/api/v1/invites/accept", existing.token, {"token": issued["token"]}
    )
    assert (status, tokens["user"]["email_verified"]) == (200, True)
    assert await owner_conn.fetchval(verified, uuid.UUID(existing.user_id)) is True
    _, me = await call(server, "GET", "/api/v1/auth/me", existing.token)
    assert me["email_verified"] is True

    other = await new_account(server)  # the wrong account proves nothing
    issued = await invite(server, tenant["id"], owner, unique_email("elsewhere"))
    status, problem = await call(
        server, "POST", "/api/v1/invites/accept", other.token, {"token": issued["token"]}
    )
    assert (status, problem["code"]) == (403, "invite_email_mismatch")
    assert await owner_conn.fetchval(verified, uuid.UUID(other.user_id)) is False


async def test_create_honours_idempotency_keys(
    gateway_with: StartGateway, owner_conn: asyncpg.Connection
) -> None:
    server = await gateway_with()
    owner, other = await new_account(server), await new_account(server)
    key = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    body = {"name": "Same Again"}

    first = await call(server, "POST", TENANTS, owner.token, body, **key)
    assert first[0] == 201, first
    assert await call(server, "POST", TENANTS, owner.token, body, **key) == first
    count = "SELECT count(*) FROM tenant_members WHERE user_id = $1"
    assert await owner_conn.fetchval(count, uuid.UUID(owner.user_id)) == 1

    status, problem = await call(server, "POST", TENANTS, owner.token, {"name": "Else"}, **key)
    assert (status, problem["code"]) == (422, "idempotency_key_reused")
    status, theirs = await call(server, "POST", TENANTS, other.token, body, **key)
    assert status == 201 and theirs["id"] != first[1]["id"]  # keys are per user
    assert await owner_conn.fetchval(count, uuid.UUID(owner.user_id)) == 1

    # A refusal that created nothing leaves the key free for a corrected body.
    key = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    taken = {"name": "Taken", "slug": first[1]["slug"]}
    status, problem = await call(server, "POST", TENANTS, owner.token, taken, **key)
    assert (status, problem["code"]) == (409, "slug_taken")
    fixed = {"name": "Taken", "slug": f"free-{uuid.uuid4().hex[:8]}"}
    status, made = await call(server, "POST", TENANTS, owner.token, fixed, **key)
    assert (status, made["slug"]) == (201, fixed["slug"])
    slugs = "SELECT count(*) FROM tenant_slugs WHERE tenant_id = $1"
    assert await owner_conn.fetchval(slugs, uuid.UUID(made["id"])) == 1
