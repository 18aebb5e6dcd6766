"""What the gateway reads of tenants straight from Postgres.

Everything a tenant decides goes through its entity; this module holds the
few reads and reservations that span tenants or precede one:

* **my tenants** — run :func:`acting_as` the authenticated user: the
  ``own_memberships`` and ``member_of`` policies of migration 0005 let that
  transaction see the user's own membership rows and the tenants they name,
  and nothing else of any tenant. ``hubbub.user_id`` is set only here, from
  a verified access token, never from client input;
* **slugs** — unique across tenants by a unique index; a slug is reserved
  in the tenant's own scope before the entity commits the change;
* **people** — names and emails of member user ids (users are global).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from hubbub.errors import AppError
from hubbub.storage.database import Database
from hubbub.tenancy.wire import slugify

__all__ = [
    "MyTenant",
    "Person",
    "acting_as",
    "find_user_id",
    "list_my_tenants",
    "people",
    "release_slug",
    "reserve_slug",
    "reserve_slug_for_name",
]

USER_SETTING = "hubbub.user_id"
_SLUG_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class MyTenant:
    id: UUID
    name: str
    slug: str
    plan: str
    timezone: str
    locale: str
    created_at: datetime
    role: str


@dataclass(frozen=True, slots=True)
class Person:
    email: str
    name: str


@asynccontextmanager
async def acting_as(db: Database, user_id: UUID) -> AsyncIterator[asyncpg.Connection]:
    """A transaction with no tenant, acting for ``user_id`` (see the module doc)."""
    async with db.tenant(None) as conn:
        await conn.execute("SELECT set_config($1, $2, true)", USER_SETTING, str(user_id))
        yield conn


async def list_my_tenants(
    db: Database, user_id: UUID, *, after: UUID | None, limit: int
) -> list[MyTenant]:
    """``user_id``'s live tenants by id, those after ``after``; at most ``limit``."""
    async with acting_as(db, user_id) as conn:
        rows = await conn.fetch(
            """SELECT t.id, t.name, t.slug, t.plan, t.timezone, t.locale, t.created_at, m.role
               FROM tenant_members m JOIN tenants t ON t.id = m.tenant_id
               WHERE m.user_id = $1 AND t.deleted_at IS NULL
                 AND ($2::uuid IS NULL OR t.id > $2)
               ORDER BY t.id LIMIT $3""",
            user_id,
            after,
            limit,
        )
    return [MyTenant(**row) for row in rows]


async def reserve_slug(db: Database, tenant_id: UUID, slug: str) -> bool:
    """Reserve ``slug`` for ``tenant_id``: True if newly reserved, False if it
    already was this tenant's; AppError 409 ``slug_taken`` if another's."""
    async with db.tenant(tenant_id) as conn:
        reserved = await conn.fetchval(
            """INSERT INTO tenant_slugs (slug, tenant_id) VALUES ($1, $2)
               ON CONFLICT (slug) DO NOTHING RETURNING true""",
            slug,
            tenant_id,
        )
        if reserved:
            return True
        if await conn.fetchval("SELECT true FROM tenant_slugs WHERE slug = $1", slug):
            return False  # visible under this tenant's policy: already ours
    raise AppError("slug_taken", f"the slug {slug!r} is taken", status=409)


async def reserve_slug_for_name(db: Database, tenant_id: UUID, name: str) -> tuple[str, bool]:
    """A free slug made from ``name`` (a random suffix when taken), reserved for
    ``tenant_id``; and whether this call reserved it (False: it already held it)."""
    base = slugify(name)
    for attempt in range(_SLUG_ATTEMPTS):
        slug = base if attempt == 0 else f"{base}-{secrets.token_hex(3)}"
        try:
            return slug, await reserve_slug(db, tenant_id, slug)
        except AppError:
            continue
    raise AppError.unavailable("slug_unavailable", "could not make a free slug; retry")


async def release_slug(db: Database, tenant_id: UUID, slug: str) -> None:
    """Give back a slug reserved for a change that was then refused."""
    async with db.tenant(tenant_id) as conn:
        await conn.execute(
            """DELETE FROM tenant_slugs WHERE slug = $1
               AND NOT EXISTS (SELECT 1 FROM tenants WHERE id = $2 AND slug = $1)""",
            slug,
            tenant_id,
        )


async def people(db: Database, user_ids: list[UUID]) -> dict[UUID, Person]:
    """Email and name of each of ``user_ids`` that exists."""
    rows = await db.pool.fetch("SELECT id, email, name FROM users WHERE id = ANY($1)", user_ids)
    return {row["id"]: Person(row["email"], row["name"]) for row in rows}


async def find_user_id(db: Database, email: str) -> UUID | None:
    """The account of ``email`` (any case), if there is one."""
    return await db.pool.fetchval("SELECT id FROM users WHERE lower(email) = lower($1)", email)
