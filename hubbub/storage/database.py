"""The asyncpg pool, and units of work scoped to one tenant.

Connections run as the application role (``settings.app_role``), a role
without superuser or BYPASSRLS, so row-level security applies to every
query the application makes. The role is set as a connection start-up
parameter: the pool's reset between uses (``RESET ALL``) returns to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import orjson

__all__ = ["Database", "connect_owner", "set_tenant"]

TENANT_SETTING = "hubbub.tenant_id"


class Database:
    """Owns: an asyncpg pool. Concurrency: safe for any number of tasks."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, url: str, *, role: str, size: int) -> Database:
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=size,
            server_settings={"role": role, "application_name": "hubbub"},
            init=_register_codecs,
            reset=_keep_session,
        )
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def tenant(self, tenant_id: UUID | str | None) -> AsyncIterator[asyncpg.Connection]:
        """A transaction that sees and writes only ``tenant_id``'s rows.

        With ``None`` only platform rows (``tenant_id IS NULL``) are visible.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await set_tenant(conn, tenant_id)
            yield conn

    async def ping(self) -> dict[str, Any]:
        """Round trip to Postgres; details for the readiness report."""
        async with self.pool.acquire() as conn:
            version = await conn.fetchval("SHOW server_version")
        return {"server_version": version, "pool_size": self.pool.get_size()}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection as it is: no reset round trip (``RESET ALL`` and
    friends) after every transaction. hubbub keeps no session state — the
    tenant scope and advisory locks are transaction-local — and asyncpg still
    rolls back a transaction left open."""


async def set_tenant(conn: asyncpg.Connection, tenant_id: UUID | str | None) -> None:
    """Scope the current transaction to ``tenant_id`` (``None``: no tenant)."""
    value = "" if tenant_id is None else str(tenant_id)
    await conn.execute("SELECT set_config($1, $2, true)", TENANT_SETTING, value)


async def connect_owner(url: str) -> asyncpg.Connection:
    """A connection as the URL's own user, for migrations and tests' checks."""
    conn = await asyncpg.connect(url)
    await _register_codecs(conn)
    return conn


async def _register_codecs(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog"
        )


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()
