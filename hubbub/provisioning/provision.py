"""``tenant.provision``: the job of an async signup, on a Ray worker.

Steps, each reported as a ``step`` event with progress:

1. ``validating`` — the signup is on file and its email free (or already
   this signup's account);
2. ``creating_user`` — the account, with the id chosen at the gateway and
   the password hash filed there; the hash leaves ``account_signups`` in the
   same transaction;
3. ``creating_tenant`` — a slug from the tenant's name, then ``create``
   through the tenant entity, the account as owner;
4. ``running_migrations`` — tenants share one schema under row-level
   security, so nothing is migrated per tenant; the step checks that the
   schema is at the latest migration this code knows (a worker on a newer
   release than the database fails the job instead of half-provisioning);
5. ``seeding`` — the tenant's public ``general`` channel.

The result names the account and its tenant, and holds no secret: the
signup's stream link opens the account's first session when it delivers
that result (``api.py``). A retried run repeats nothing: the ids are fixed,
the account and tenant steps recognise their own earlier work, and the
tenant and channel commands carry idempotency keys.
"""

from __future__ import annotations

import uuid
from typing import Any

from hubbub.chat.commands import Create, ask
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.identity.users import User, create_user, email_taken, get_user
from hubbub.jobs.context import JobContext
from hubbub.jobs.registry import Policy, job_kind
from hubbub.provisioning import PROVISION
from hubbub.provisioning.signups import Signup, forget_password, get_signup
from hubbub.provisioning.wire import ProvisionInput
from hubbub.storage.database import Database
from hubbub.storage.migrate import HUBBUB_STREAM, discover
from hubbub.tenancy.access import send_tenant
from hubbub.tenancy.commands import CreateTenant, GetTenant
from hubbub.tenancy.directory import find_user_id, release_slug, reserve_slug_for_name
from hubbub.tenancy.plans import parse_plans

__all__ = ["STEPS", "provision"]

STEPS = ("validating", "creating_user", "creating_tenant", "running_migrations", "seeding")
_GENERAL = uuid.UUID("0b7d5c1e-3f2a-5e4b-9c8d-7a6f5e4d3c2b")  # namespace of seeded channels


@job_kind(
    PROVISION,
    ProvisionInput,
    resources={"num_cpus": 0.1},
    entities=("tenant", "conversation"),
    # Retrying is safe (see the module doc); an AppError such as email_taken
    # still fails the job at once. No concurrency limit: every signup shares
    # one tenant scope.
    policy=Policy(max_attempts=3, backoff_seconds=1.0, timeout_seconds=120.0),
)
async def provision(context: JobContext, input: ProvisionInput) -> dict[str, Any]:
    """Create an async signup's account and its tenant."""
    settings = context.settings
    assert settings is not None, "a worker has resolved settings"
    # A small pool of the run's own: signups are rare, and users and sessions
    # have no entity to send commands to.
    async with context.database(size=2) as db:
        return await _provision(context, input, db, settings)


async def _provision(
    context: JobContext, input: ProvisionInput, db: Database, settings: Settings
) -> dict[str, Any]:
    _enter(context, "validating")
    signup = await _validated(context, input, db)
    _enter(context, "creating_user")
    user = await _account(input, signup, db)
    _enter(context, "creating_tenant")
    slug = await _tenant(context, input, db, settings)
    _enter(context, "running_migrations")
    await _check_schema(db)
    _enter(context, "seeding")
    await _seed(context, input)
    context.progress(100)
    return {
        "tenant_id": str(input.tenant_id),
        "tenant_name": input.tenant_name,
        "tenant_slug": slug,
        "user_id": str(user.id),
    }


def _enter(context: JobContext, step: str) -> None:
    context.raise_if_cancelled()
    context.step(step)
    context.progress(100 * STEPS.index(step) / len(STEPS))


async def _validated(context: JobContext, input: ProvisionInput, db: Database) -> Signup:
    signup = await get_signup(db, context.job_id)
    if signup is None or signup.user_id != input.user_id:
        raise AppError("signup_not_found", "expected the job's signup on file", status=404)
    holder = await find_user_id(db, input.email)
    if holder not in (None, input.user_id):
        raise email_taken()
    return signup


async def _account(input: ProvisionInput, signup: Signup, db: Database) -> User:
    """The signup's account: created now, or found (an earlier run made it).
    Its password hash leaves the signup row in the same transaction."""
    async with db.tenant(None) as conn:
        if signup.password_hash is None:
            user = await get_user(conn, input.user_id)
        else:
            user = await create_user(
                conn,
                email=input.email,
                name=input.name,
                password_hash=signup.password_hash,
                user_id=input.user_id,
            )
        if user is None:  # taken since validating (or deleted since an earlier run)
            raise email_taken()
        await forget_password(conn, str(signup.job_id))
    return user


async def _tenant(
    context: JobContext, input: ProvisionInput, db: Database, settings: Settings
) -> str:
    """The new tenant's slug, once the tenant entity has created it (or had)."""
    assert context.router is not None
    slug, reserved = await reserve_slug_for_name(db, input.tenant_id, input.tenant_name)
    try:
        reply = await _create_tenant(context, input, slug, settings)
    except AppError:
        await release_slug(db, input.tenant_id, slug)
        raise
    if reserved and reply["slug"] != slug:  # an earlier run chose the slug
        await release_slug(db, input.tenant_id, slug)
    return str(reply["slug"])


async def _create_tenant(
    context: JobContext, input: ProvisionInput, slug: str, settings: Settings
) -> dict[str, Any]:
    """The tenant entity's view of the new tenant, owned by the account."""
    assert context.router is not None
    tenant_id, actor = str(input.tenant_id), str(input.user_id)
    create = CreateTenant(
        actor=actor,
        tenant_id=tenant_id,
        name=input.tenant_name,
        slug=slug,
        plan=parse_plans(settings.plans).default,
        timezone="UTC",
        locale="en",
    )
    key = f"{context.job_id}:create"
    try:
        return await send_tenant(context.router, tenant_id, create, idempotency_key=key)
    except AppError as error:
        if error.code != "tenant_exists":
            raise
    # Made by an earlier run whose receipt expired: ours if the account is in it
    # (404 otherwise).
    return await send_tenant(context.router, tenant_id, GetTenant(actor))


async def _check_schema(db: Database) -> None:
    stream, directory = HUBBUB_STREAM
    expected = max(m.version for m in discover(stream, directory))
    async with db.tenant(None) as conn:
        applied = await conn.fetchval("SELECT hubbub_schema_version($1)", stream)
    if applied < expected:
        raise AppError(
            "schema_outdated",
            f"expected the database at migration {expected} or later, got {applied}; "
            "run `hubbub migrate`",
            status=503,
        )


async def _seed(context: JobContext, input: ProvisionInput) -> None:
    """The tenant's public ``general`` channel (get-or-create: its id is fixed)."""
    assert context.router is not None
    tenant_id = str(input.tenant_id)
    channel_id = str(uuid.uuid5(_GENERAL, tenant_id))
    general = Create(
        actor=str(input.user_id),
        conversation_id=channel_id,
        tenant_id=tenant_id,
        kind="channel",
        title="general",
        visibility="public",
    )
    await ask(context.router, tenant_id, channel_id, general, f"{context.job_id}:seed")
