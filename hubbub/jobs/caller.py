"""What a job route reads off its request: who calls, in which tenant, and
its ``Idempotency-Key``. Shared by the job routes and the capabilities built
on jobs (workflows), so they authorise alike."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from hubbub.errors import AppError, FieldError
from hubbub.identity.bearer import authenticate_request
from hubbub.jobs.reads import Viewer
from hubbub.services import ROUTER
from hubbub.tenancy.access import authorize, tenant_of

__all__ = ["IDEMPOTENCY_HEADER", "Caller", "caller", "idempotency_key"]

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who acts, in which tenant, with which role there."""

    tenant_id: str
    user_id: str
    role: str

    @property
    def viewer(self) -> Viewer:
        return Viewer.member(self.user_id, self.role)


async def caller(request: web.Request) -> Caller:
    """The member (or the API key, where the route accepts keys) behind the
    request and its tenant; 401 unauthenticated, 404 outside the tenant."""
    claims = await authenticate_request(request)
    tenant_id = tenant_of(request, claims.tenant_id)
    reply = await authorize(request.app[ROUTER], tenant_id, claims.user_id)
    return Caller(str(tenant_id), str(claims.user_id), reply["role"])


def idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key``; 422 naming the header if malformed."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise AppError(
            "validation_failed",
            f"expected an {IDEMPOTENCY_HEADER} of 1 to 200 printable characters",
            status=422,
            errors=(FieldError("header", IDEMPOTENCY_HEADER, "1 to 200 printable characters"),),
        )
    return key
