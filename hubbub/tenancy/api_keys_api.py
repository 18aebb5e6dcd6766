"""HTTP routes of a tenant's API keys, under ``/api/v1/tenants/{id}/api-keys``.

Only admins and owners manage keys, with a bearer token: a key cannot
create, list or revoke keys (so a leaked key cannot mint longer-lived
ones). Creating needs the plan feature ``api_access``. The tenant entity
creates and revokes keys; the list is read from Postgres in the tenant's
scope (it carries ``last_used_at``, which gateways stamp). Revoking
disconnects the key's sockets on every gateway.
"""

from __future__ import annotations

from aiohttp import web

from hubbub.http.routing import Api
from hubbub.identity.api_keys import issue_key, list_api_keys
from hubbub.ids import new_id
from hubbub.services import DATABASE
from hubbub.tenancy.access import PLANS, ask_tenant, require_member
from hubbub.tenancy.api_keys_wire import (
    ApiKeyList,
    ApiKeyPath,
    ApiKeyView,
    IssuedApiKey,
    NewApiKey,
)
from hubbub.tenancy.commands import CreateApiKey, RevokeApiKey
from hubbub.tenancy.wire import ListQuery, TenantPath

__all__ = ["FEATURE", "api"]

api = Api("api-keys", "A tenant's API keys: service accounts sending X-API-Key.")

KEYS = "/api/v1/tenants/{tenant_id}/api-keys"
#: The plan feature that allows creating keys.
FEATURE = "api_access"
BEARER = ("bearer",)
REFUSALS = {
    403: "Needs admin or owner (`insufficient_role`)",
    404: "No such tenant of yours, or key (`not_found`)",
}


@api.post(
    KEYS,
    params=TenantPath,
    body=NewApiKey,
    response=IssuedApiKey,
    status=201,
    security=BEARER,
    responses=REFUSALS | {402: "The plan lacks `api_access` (`feature_not_in_plan`)"},
)
async def create_api_key(
    request: web.Request, *, path: TenantPath, body: NewApiKey
) -> IssuedApiKey:
    """Create an API key (admin or owner); the key is shown only in this answer."""
    membership = await require_member(request, path.tenant_id, "admin")
    request.app[PLANS].require_feature(membership.plan, FEATURE)
    issued = issue_key(path.tenant_id)
    create = CreateApiKey(
        actor=str(membership.user_id),
        key_id=str(new_id()),
        name=body.name,
        scopes=body.unique_scopes(),
        prefix=issued.prefix,
        key_hash=issued.key_hash,
        expires_in_days=body.expires_in_days,
    )
    reply = await ask_tenant(request, path.tenant_id, create)
    return IssuedApiKey.model_validate(reply | {"key": issued.key})


@api.get(
    KEYS,
    params=TenantPath,
    query=ListQuery,
    response=ApiKeyList,
    security=BEARER,
    responses=REFUSALS,
)
async def list_keys(request: web.Request, *, path: TenantPath, query: ListQuery) -> ApiKeyList:
    """The tenant's API keys, masked, oldest first (admin or owner); revoked ones included."""
    await require_member(request, path.tenant_id, "admin")
    db = request.app[DATABASE]
    found = await list_api_keys(db, path.tenant_id, after=query.cursor, limit=query.limit + 1)
    page = found[: query.limit]
    items = [ApiKeyView.model_validate(row, from_attributes=True) for row in page]
    next_cursor = str(page[-1].id) if len(found) > query.limit else None
    return ApiKeyList(items=items, next_cursor=next_cursor)


@api.delete(f"{KEYS}/{{key_id}}", params=ApiKeyPath, security=BEARER, responses=REFUSALS)
async def revoke_api_key(request: web.Request, *, path: ApiKeyPath) -> None:
    """Revoke an API key (admin or owner): its requests are refused at once
    (`api_key_revoked`) and its sockets disconnected. Revoking again is a no-op."""
    membership = await require_member(request, path.tenant_id, "admin")
    revoke = RevokeApiKey(str(membership.user_id), str(path.key_id))
    await ask_tenant(request, path.tenant_id, revoke)  # the entity drops its sockets
