"""HTTP routes of tenants, under ``/api/v1/tenants``: the tenant itself, its
settings, its plan and gated features. Members and invites are in
``members_api.py``. Every route needs a bearer token; a tenant the caller is
not a member of answers 404, whatever it is."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from aiohttp import web

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.identity.bearer import authenticate_request
from hubbub.ids import new_id
from hubbub.services import DATABASE, SETTINGS
from hubbub.tenancy.access import PLANS, ask_tenant, require_feature, require_member
from hubbub.tenancy.commands import (
    CreateTenant,
    DeleteTenant,
    GetSettings,
    GetTenant,
    PutSettings,
    RecordUsage,
    RestoreTenant,
    UpdateTenant,
)
from hubbub.tenancy.creations import claim_creation, forget_claim, request_hash
from hubbub.tenancy.directory import (
    list_my_tenants,
    release_slug,
    reserve_slug,
    reserve_slug_for_name,
)
from hubbub.tenancy.wire import (
    Deletion,
    FeaturePath,
    FeatureUse,
    ListQuery,
    NewTenant,
    PlanView,
    TenantList,
    TenantPath,
    TenantSettings,
    TenantUpdate,
    TenantView,
)

__all__ = ["api"]

api = Api("tenants", "Tenants (workspaces): create, list yours, update, settings, plan.")

BASE = "/api/v1/tenants"
ONE = f"{BASE}/{{tenant_id}}"
BEARER = ("bearer",)
#: Routes that also accept an X-API-Key (acting as the key's service account).
KEYED = ("bearer", "api_key")
NOT_FOUND = {404: "No tenant with this id of which you are a member (`not_found`)"}


@api.post(
    BASE,
    body=NewTenant,
    response=TenantView,
    status=201,
    security=BEARER,
    responses={
        409: "The slug is taken (`slug_taken`)",
        422: "The `Idempotency-Key` came with another body (`idempotency_key_reused`)",
    },
)
async def create_tenant(request: web.Request, *, body: NewTenant) -> TenantView:
    """Create a tenant; you become its owner. With an `Idempotency-Key`, a
    retry with the same key and body answers the same tenant."""
    claims = await authenticate_request(request)
    key = request.headers.get("Idempotency-Key", "")[:200] or None
    tenant_id, fresh = new_id(), True
    if key is not None:
        window = timedelta(hours=request.app[SETTINGS].idempotency_window_hours)
        body_hash = request_hash(body.model_dump(mode="json"))
        tenant_id, fresh = await claim_creation(
            request.app[DATABASE], claims.user_id, key, body_hash, window
        )
    try:
        slug, reserved = await _reserve_new_slug(request, tenant_id, body)
    except AppError:
        if key is not None and fresh:
            await forget_claim(request.app[DATABASE], claims.user_id, key, tenant_id)
        raise
    create = CreateTenant(
        actor=str(claims.user_id),
        tenant_id=str(tenant_id),
        name=body.name,
        slug=slug,
        plan=request.app[PLANS].default,
        timezone=body.timezone,
        locale=body.locale,
    )
    try:
        reply = await ask_tenant(request, tenant_id, create, idempotent=True)
    except AppError as error:
        await release_slug(request.app[DATABASE], tenant_id, slug)
        if key is not None and not error.retriable:  # nothing was created
            await forget_claim(request.app[DATABASE], claims.user_id, key, tenant_id)
        raise
    if reserved and reply["slug"] != slug:  # a replay: the first attempt chose the slug
        await release_slug(request.app[DATABASE], tenant_id, slug)
    return TenantView.model_validate(reply)


async def _reserve_new_slug(
    request: web.Request, tenant_id: UUID, body: NewTenant
) -> tuple[str, bool]:
    """The requested slug (409 if taken), or one made from the name; and
    whether this call reserved it (False: the tenant already held it)."""
    db = request.app[DATABASE]
    if body.slug is not None:
        return body.slug, await reserve_slug(db, tenant_id, body.slug)
    return await reserve_slug_for_name(db, tenant_id, body.name)


@api.get(BASE, query=ListQuery, response=TenantList, security=BEARER)
async def list_tenants(request: web.Request, *, query: ListQuery) -> TenantList:
    """The tenants you are a member of, oldest first."""
    claims = await authenticate_request(request)
    db = request.app[DATABASE]
    found = await list_my_tenants(db, claims.user_id, after=query.cursor, limit=query.limit + 1)
    page = found[: query.limit]
    items = [TenantView.model_validate(t, from_attributes=True) for t in page]
    next_cursor = str(page[-1].id) if len(found) > query.limit else None
    return TenantList(items=items, next_cursor=next_cursor)


@api.get(ONE, params=TenantPath, response=TenantView, security=KEYED, responses=NOT_FOUND)
async def get_tenant(request: web.Request, *, path: TenantPath) -> TenantView:
    """One tenant you are a member of."""
    claims = await authenticate_request(request)
    return TenantView.model_validate(
        await ask_tenant(request, path.tenant_id, GetTenant(str(claims.user_id)))
    )


@api.patch(
    ONE,
    params=TenantPath,
    body=TenantUpdate,
    response=TenantView,
    security=KEYED,
    responses=NOT_FOUND | {403: "Needs admin (`insufficient_role`)", 409: "`slug_taken`"},
)
async def update_tenant(
    request: web.Request, *, path: TenantPath, body: TenantUpdate
) -> TenantView:
    """Change name, slug, time zone or locale (admin or owner)."""
    claims = await authenticate_request(request)
    update = UpdateTenant(str(claims.user_id), **body.model_dump(exclude_none=True))
    reserved = False
    if body.slug is not None:
        await require_member(request, path.tenant_id, "admin")  # before touching slugs
        reserved = await reserve_slug(request.app[DATABASE], path.tenant_id, body.slug)
    try:
        reply = await ask_tenant(request, path.tenant_id, update)
    except AppError:
        if reserved:
            await release_slug(request.app[DATABASE], path.tenant_id, str(body.slug))
        raise
    return TenantView.model_validate(reply)


@api.get(
    f"{ONE}/settings",
    params=TenantPath,
    response=TenantSettings,
    security=KEYED,
    responses=NOT_FOUND,
)
async def get_tenant_settings(request: web.Request, *, path: TenantPath) -> TenantSettings:
    """The tenant's settings (any member)."""
    claims = await authenticate_request(request)
    reply = await ask_tenant(request, path.tenant_id, GetSettings(str(claims.user_id)))
    return TenantSettings.model_validate(reply)


@api.put(
    f"{ONE}/settings",
    params=TenantPath,
    body=TenantSettings,
    response=TenantSettings,
    security=KEYED,
    responses=NOT_FOUND | {403: "Needs admin (`insufficient_role`)"},
)
async def put_tenant_settings(
    request: web.Request, *, path: TenantPath, body: TenantSettings
) -> TenantSettings:
    """Replace the tenant's settings (admin or owner)."""
    claims = await authenticate_request(request)
    put = PutSettings(str(claims.user_id), body.root)
    reply = await ask_tenant(request, path.tenant_id, put, idempotent=True)
    return TenantSettings.model_validate(reply)


@api.delete(
    ONE,
    params=TenantPath,
    response=Deletion,
    security=KEYED,
    responses=NOT_FOUND | {403: "Only an owner can delete (`owner_required`)"},
)
async def delete_tenant(request: web.Request, *, path: TenantPath) -> Deletion:
    """Delete the tenant (owner only): hidden at once, restorable until `purge_after`."""
    claims = await authenticate_request(request)
    grace = request.app[SETTINGS].tenant_deletion_grace_days
    delete = DeleteTenant(str(claims.user_id), grace)
    reply = await ask_tenant(request, path.tenant_id, delete, idempotent=True)
    return Deletion.model_validate(reply)


@api.post(
    f"{ONE}/restore",
    params=TenantPath,
    response=TenantView,
    security=KEYED,
    responses=NOT_FOUND
    | {
        403: "Only an owner can restore (`owner_required`)",
        409: "The tenant is not deleted (`tenant_not_deleted`)",
        410: "The grace period is over; the tenant is being purged (`restore_period_ended`)",
    },
)
async def restore_tenant(request: web.Request, *, path: TenantPath) -> TenantView:
    """Undo a deletion within its grace period (owner only)."""
    claims = await authenticate_request(request)
    reply = await ask_tenant(request, path.tenant_id, RestoreTenant(str(claims.user_id)))
    return TenantView.model_validate(reply)


@api.get(f"{ONE}/plan", params=TenantPath, response=PlanView, security=KEYED, responses=NOT_FOUND)
async def get_tenant_plan(request: web.Request, *, path: TenantPath) -> PlanView:
    """The tenant's plan: its features, limits, rate buckets, and usage so far."""
    membership = await require_member(request, path.tenant_id)
    plan = request.app[PLANS].get(membership.plan).to_wire()
    return PlanView(
        plan=plan["name"],
        features=plan["features"],
        limits=plan["limits"],
        buckets=plan["buckets"],
        usage=membership.usage,
    )


@api.post(
    f"{ONE}/features/{{feature}}/uses",
    params=FeaturePath,
    response=FeatureUse,
    security=KEYED,
    responses=NOT_FOUND
    | {
        402: "The plan lacks the feature (`feature_not_in_plan`)",
        429: "The tenant's bucket for it is spent (`rate_limited`, `Retry-After`)",
    },
)
async def use_feature(request: web.Request, *, path: FeaturePath) -> FeatureUse:
    """Spend one use of a gated feature: the plan must include it, its rate
    bucket must have room; the use is counted in the tenant's usage."""
    membership = await require_feature(request, path.tenant_id, path.feature)
    use = RecordUsage(str(membership.user_id), path.feature)
    reply: dict[str, Any] = await ask_tenant(request, path.tenant_id, use)
    return FeatureUse(feature=path.feature, plan=membership.plan, used=reply["value"])
