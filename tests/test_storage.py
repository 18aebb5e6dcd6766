"""Storage: migrations, the application role and tenant isolation in Postgres; the Redis pool."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from hubbub.config import Settings
from hubbub.storage.database import Database
from hubbub.storage.migrate import HUBBUB_STREAM, MigrationError, discover, migrate
from hubbub.storage.redis import MAX_CONNECTIONS, connect_redis
from hubbub.storage.table import Table
from tests.conftest import TEST_STREAMS


async def test_migrating_twice_applies_nothing_the_second_time(migrated: Settings) -> None:
    assert migrated.database_url is not None
    applied = await migrate(migrated.database_url, app_role=migrated.app_role, streams=TEST_STREAMS)
    assert applied == []


async def test_an_edited_applied_migration_stops_migrating(
    migrated: Settings, tmp_path: Path
) -> None:
    assert migrated.database_url is not None
    for migration in discover(*HUBBUB_STREAM):
        edited = migration.sql + "\n-- edited\n"
        (tmp_path / f"{migration.version:04d}_{migration.name}.sql").write_text(edited)
    with pytest.raises(MigrationError, match="was changed after it was applied"):
        await migrate(
            migrated.database_url, app_role=migrated.app_role, streams=[("hubbub", tmp_path)]
        )


def test_a_misnamed_migration_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "add_things.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        discover("hubbub", tmp_path)


async def test_the_application_role_is_bound_by_row_level_security(db: Database) -> None:
    async with db.pool.acquire() as conn:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
    assert role is not None and not role["rolsuper"] and not role["rolbypassrls"]


async def test_every_tenant_scoped_table_has_a_forced_tenant_policy(owner_conn) -> None:
    unprotected = await owner_conn.fetch(
        """SELECT c.relname FROM pg_class c
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
           WHERE c.relkind = 'r' AND NOT (c.relrowsecurity AND c.relforcerowsecurity
             AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))"""
    )
    assert [row["relname"] for row in unprotected] == []


async def test_a_tenant_sees_and_writes_only_its_own_rows(db: Database, owner_conn) -> None:
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    key = f"isolation-{uuid.uuid4().hex}"
    insert = "INSERT INTO tally_entries (tally, seq, tenant_id, amount) VALUES ($1, $2, $3, 1)"
    async with db.tenant(tenant_a) as conn:
        await conn.execute(insert, key, 1, tenant_a)
    async with db.tenant(tenant_b) as conn:
        assert await conn.fetch("SELECT * FROM tally_entries WHERE tally = $1", key) == []
        assert (
            await conn.execute("UPDATE tally_entries SET amount = 9 WHERE tally = $1", key)
            == "UPDATE 0"
        )
        with pytest.raises(Exception, match="row-level security"):
            await conn.execute(insert, key, 2, tenant_a)
    async with db.tenant(None) as conn:
        assert await conn.fetch("SELECT * FROM tally_entries WHERE tally = $1", key) == []
    assert await owner_conn.fetchval("SELECT amount FROM tally_entries WHERE tally = $1", key) == 1


async def test_the_migration_record_is_out_of_the_application_roles_reach(db: Database) -> None:
    async with db.pool.acquire() as conn:
        with pytest.raises(Exception, match="permission denied"):
            await conn.fetch("SELECT * FROM schema_migrations")


async def test_a_pooled_connection_keeps_no_tenant_scope_from_its_last_transaction(
    settings: Settings,
) -> None:
    """Connections go back to the pool without a reset round trip, which is
    safe because a tenant scope lives only as long as its transaction."""
    assert settings.database_url is not None
    db = await Database.connect(settings.database_url, role=settings.app_role, size=1)
    try:
        async with db.tenant(str(uuid.uuid4())) as conn:
            assert await conn.fetchval("SELECT current_setting('hubbub.tenant_id')") != ""
        async with db.pool.acquire() as conn:  # the same, only connection
            assert await conn.fetchval("SELECT current_setting('hubbub.tenant_id', true)") in (
                None,
                "",
            )
            assert await conn.fetchval("SELECT current_user") == settings.app_role
    finally:
        await db.close()


async def test_a_burst_of_redis_commands_past_the_pool_waits_for_free_connections(
    migrated: Settings,
) -> None:
    redis = connect_redis(migrated.redis_url or "")
    try:
        replies = await asyncio.gather(*(redis.ping() for _ in range(3 * MAX_CONNECTIONS)))
    finally:
        await redis.aclose()
    assert all(replies)


def test_a_table_builds_its_statements_and_rows_from_one_column_list() -> None:
    jobs = Table("jobs", ("id", "tenant_id", "status", "progress"))
    assert jobs.insert() == (
        "INSERT INTO jobs (id, tenant_id, status, progress) VALUES ($1, $2, $3, $4)"
    )
    assert jobs.update(["status", "progress"]) == (
        "UPDATE jobs SET status = $2, progress = $3 WHERE id = $1"
    )
    values = {"id": "j1", "tenant_id": "t1", "status": "running", "progress": 0.5, "extra": 1}
    assert jobs.row(values) == ("j1", "t1", "running", 0.5)
    assert jobs.update_row(values, ["status", "progress"]) == ("j1", "running", 0.5)
    members = Table("members", ("tenant_id", "user_id", "role"), key=("tenant_id", "user_id"))
    assert members.update(["role"]) == (
        "UPDATE members SET role = $3 WHERE tenant_id = $1 AND user_id = $2"
    )
    with pytest.raises(ValueError, match="no columns"):
        jobs.update(["nope"])
    with pytest.raises(ValueError, match="key columns"):
        Table("t", ("a",), key=("id",))
