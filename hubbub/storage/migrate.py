"""Ordered SQL migrations, each applied in its own transaction and recorded.

Files are ``NNNN_name.sql``: hubbub's own in ``hubbub/storage/migrations``
(stream ``hubbub``), and a plugin's in the directory it names (a stream
named after the plugin), applied after hubbub's. A migration
already applied is never run again; if its file changed since, migrating
stops with an error instead of guessing. An advisory lock lets several
gateways start at once: one migrates, the others wait and find nothing to do.
Afterwards the application role exists and may use every table but the
migration record, less the privileges listed in ``app_role_revocations``
(a table migrations fill in).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from hubbub.storage.database import connect_owner

__all__ = ["HUBBUB_STREAM", "Migration", "MigrationError", "discover", "migrate"]

#: hubbub's own migrations: ``(stream, directory)``.
HUBBUB_STREAM = ("hubbub", Path(__file__).with_name("migrations"))
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x687562627562  # "hubbub"


class MigrationError(Exception):
    """The database's migration record disagrees with the migration files."""


@dataclass(frozen=True, slots=True)
class Migration:
    stream: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def __str__(self) -> str:
        return f"{self.stream}/{self.version:04d}_{self.name}"


def discover(stream: str, directory: Path) -> list[Migration]:
    """Every migration file of ``stream`` in ``directory``, by version."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"expected a file named NNNN_name.sql, got {path.name!r}")
        found.append(Migration(stream, int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


async def migrate(
    url: str,
    *,
    app_role: str,
    on_apply: Callable[[Migration], None] | None = None,
    streams: Sequence[tuple[str, Path]] = (HUBBUB_STREAM,),
) -> list[Migration]:
    """Apply pending migrations of ``streams``, in order; returns those applied."""
    migrations = [m for stream, directory in streams for m in discover(stream, directory)]
    conn = await connect_owner(url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        pending = await _pending(conn, migrations)
        for migration in pending:
            if on_apply is not None:
                on_apply(migration)
            await _apply(conn, migration)
        await _ensure_app_role(conn, app_role)
        return pending
    finally:
        await conn.close()  # closing the session releases the advisory lock


async def _pending(conn: asyncpg.Connection, migrations: list[Migration]) -> list[Migration]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
             stream     text        NOT NULL,
             version    integer     NOT NULL,
             name       text        NOT NULL,
             checksum   text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (stream, version))"""
    )
    rows = await conn.fetch("SELECT stream, version, checksum FROM schema_migrations")
    applied = {(row["stream"], row["version"]): row["checksum"] for row in rows}
    for migration in migrations:
        recorded = applied.get((migration.stream, migration.version))
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"migration {migration} was changed after it was applied; "
                "add a new migration instead of editing an applied one"
            )
    return [m for m in migrations if (m.stream, m.version) not in applied]


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(migration.sql)
        await conn.execute(
            "INSERT INTO schema_migrations (stream, version, name, checksum)"
            " VALUES ($1, $2, $3, $4)",
            migration.stream,
            migration.version,
            migration.name,
            migration.checksum,
        )


async def _ensure_app_role(conn: asyncpg.Connection, role: str) -> None:
    """The role the application runs as: no login, no superuser, no BYPASSRLS."""
    quoted = await conn.fetchval("SELECT quote_ident($1)", role)
    async with conn.transaction():
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        if not exists:
            await conn.execute(f"CREATE ROLE {quoted} NOLOGIN NOSUPERUSER NOBYPASSRLS")
        if not await conn.fetchval("SELECT pg_has_role(current_user, $1, 'MEMBER')", role):
            await conn.execute(f"GRANT {quoted} TO current_user")
        await conn.execute(
            f"""GRANT USAGE ON SCHEMA public TO {quoted};
                GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted};
                GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted};
                REVOKE ALL ON schema_migrations FROM {quoted};"""
        )
        await _apply_revocations(conn, quoted)


async def _apply_revocations(conn: asyncpg.Connection, quoted_role: str) -> None:
    if await conn.fetchval("SELECT to_regclass('app_role_revocations')") is None:
        return  # created by hubbub's 0002 migration
    rows = await conn.fetch(
        "SELECT quote_ident(table_name) AS target, privilege FROM app_role_revocations"
    )
    for row in rows:
        # privilege is one of four keywords (a CHECK constraint); target is quoted.
        await conn.execute(f"REVOKE {row['privilege']} ON {row['target']} FROM {quoted_role}")
