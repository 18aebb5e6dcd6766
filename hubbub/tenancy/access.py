"""How the gateway talks to tenant entities, and authorises against them.

With :mod:`hubbub.tenancy.commands` (the typed command bodies) this is
tenancy's public face: HTTP routes, socket handlers, jobs and other
capabilities send tenant commands through :func:`send_tenant` (or
:func:`ask_tenant` from a request), read a roster with :func:`roster` and
check a caller with :func:`authorize` / :func:`require_member`.

Authorisation asks the entity that owns the roster, on every request: one
command through the batching router (about a millisecond, coalesced with
others bound for the same shard), no cache. So a removed member, a demoted
admin or a deleted tenant is refused by the very next request on every
gateway — there is no invalidation window to reason about. Capabilities
that live in a tenant call :func:`require_member` (or
:func:`require_feature`) before they act. Socket events are the one place
that remembers an answer, until the removal's event reaches the gateway
(:mod:`hubbub.tenancy.confirmed_members`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiohttp import web

from hubbub.actors.command import Command
from hubbub.actors.router import Router
from hubbub.errors import AppError, FieldError
from hubbub.http.routing import TENANT_HEADER
from hubbub.identity.bearer import authenticate_request
from hubbub.ratelimit import RATE_LIMITER, Limit
from hubbub.services import ROUTER
from hubbub.tenancy.commands import Acted, Authorize, ListMembers, TenantCommand
from hubbub.tenancy.plans import Plan, PlanCatalog

__all__ = [
    "PLANS",
    "TENANT_HEADER",
    "Membership",
    "ask_tenant",
    "authorize",
    "enforce_bucket",
    "require_feature",
    "require_member",
    "roster",
    "send_tenant",
    "tenant_of",
]

PLANS = web.AppKey("plans", PlanCatalog)


def tenant_of(request: web.Request, token_tenant: UUID | None = None) -> UUID:
    """The tenant a request acts in: its token's, else ``X-Tenant-Id``."""
    header = request.headers.get(TENANT_HEADER)
    if header is None:
        if token_tenant is not None:
            return token_tenant
        raise AppError(
            "tenant_required",
            f"expected an {TENANT_HEADER} header naming the tenant you act in",
            status=400,
            errors=(FieldError("header", TENANT_HEADER, "missing"),),
        )
    try:
        tenant_id = UUID(header)
    except ValueError:
        raise AppError(
            "validation_failed",
            f"expected {TENANT_HEADER} to be a tenant id (UUID), got {header[:40]!r}",
            status=422,
            errors=(FieldError("header", TENANT_HEADER, "expected a UUID"),),
        ) from None
    if token_tenant is not None and token_tenant != tenant_id:
        raise AppError.not_found("tenant")
    return tenant_id


@dataclass(frozen=True, slots=True)
class Membership:
    """What the tenant entity says about the requesting user."""

    tenant_id: UUID
    user_id: UUID
    role: str
    plan: str
    usage: dict[str, int]


async def send_tenant(
    router: Router,
    tenant_id: UUID | str,
    body: TenantCommand,
    *,
    idempotency_key: str | None = None,
) -> Any:
    """Send ``body`` to tenant ``tenant_id``, in that tenant's RLS scope; its reply."""
    command = Command("tenant", str(tenant_id), body, str(tenant_id), idempotency_key)
    return await router.send(command)


async def ask_tenant(
    request: web.Request, tenant_id: UUID, body: TenantCommand, *, idempotent: bool = False
) -> Any:
    """Send ``body`` to tenant ``tenant_id`` from a request; its reply.

    ``idempotent`` (for an :class:`Acted` body): pass the request's
    ``Idempotency-Key`` on, namespaced by actor and command so one key cannot
    replay another command's reply.
    """
    key = request.headers.get("Idempotency-Key") if idempotent else None
    if key:
        assert isinstance(body, Acted), "only a command with an actor carries a key"
        key = f"{body.actor}:{type(body).__name__}:{key[:200]}"
    return await send_tenant(request.app[ROUTER], tenant_id, body, idempotency_key=key or None)


async def authorize(
    router: Router, tenant_id: UUID | str, user_id: UUID | str, minimum: str = "viewer"
) -> dict[str, Any]:
    """The tenant entity's ``{role, plan, usage}`` for member ``user_id`` with at
    least ``minimum``; AppError 404 when not a member, 403 below ``minimum``."""
    return await send_tenant(router, tenant_id, Authorize(str(user_id), minimum))


async def roster(router: Router, tenant_id: UUID | str, actor: UUID | str) -> list[str]:
    """The ids of the tenant's members; AppError 404 unless ``actor`` is one."""
    members = await send_tenant(router, tenant_id, ListMembers(str(actor)))
    return [member["user_id"] for member in members]


async def require_member(
    request: web.Request, tenant_id: UUID, minimum: str = "viewer"
) -> Membership:
    """The bearer's membership of ``tenant_id`` with at least ``minimum``.

    AppError 401 without a valid token, 404 when the user is not a member
    (or the tenant does not exist), 403 ``insufficient_role`` below ``minimum``.
    """
    claims = await authenticate_request(request)
    reply = await authorize(request.app[ROUTER], tenant_id, claims.user_id, minimum)
    return Membership(tenant_id, claims.user_id, reply["role"], reply["plan"], reply["usage"])


async def require_feature(request: web.Request, tenant_id: UUID, feature: str) -> Membership:
    """A member's use of plan feature ``feature``: 402 ``feature_not_in_plan``
    when the tenant's plan lacks it, 429 ``rate_limited`` when the tenant's
    bucket of the same name (if the plan sets one) is spent."""
    membership = await require_member(request, tenant_id)
    plan = request.app[PLANS].require_feature(membership.plan, feature)
    await enforce_bucket(request.app, tenant_id, plan, feature)
    return membership


async def enforce_bucket(app: web.Application, tenant_id: UUID, plan: Plan, bucket: str) -> None:
    """Spend one hit of the tenant's ``bucket`` if ``plan`` rates it; 429 when spent.

    Buckets live in Redis, shared by every gateway; they are keyed by tenant
    and plan, so a tenant that changes plan starts a fresh bucket.
    """
    rate = plan.buckets.get(bucket)
    if rate is None:
        return
    key = f"tenant:{tenant_id}:{plan.name}:{bucket}"
    await app[RATE_LIMITER].hit(key, Limit.parse(rate), name=f"tenant_{bucket}")
