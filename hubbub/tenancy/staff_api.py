"""Platform staff acting on tenants, under ``/api/v1/staff/tenants``.

Changing a tenant's plan goes through the tenant entity's ``set_plan``
command, which writes the audit row (``set_plan``, before/after
``{plan}``) in the same commit as the change; repeating the current plan
changes nothing and writes nothing.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hubbub.errors import AppError, FieldError
from hubbub.http.routing import Api
from hubbub.identity.staff_api import STAFF_ONLY, require_staff
from hubbub.tenancy.access import PLANS, ask_tenant
from hubbub.tenancy.commands import SetPlan
from hubbub.tenancy.wire import TenantPath

__all__ = ["PlanAssignment", "StaffPlanChange", "api"]

api = Api("staff-tenants", "Platform staff: tenants' plans (audited).")


class StaffPlanChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="A plan of the deployment's catalog (`HUBBUB_PLANS`)."
    )
    reason: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
        | None
    ) = Field(None, description="Recorded in the audit log.")


class PlanAssignment(BaseModel):
    tenant_id: UUID
    plan: str
    previous: str = Field(description="The plan before this request (the same: no change).")


@api.put(
    "/api/v1/staff/tenants/{tenant_id}/plan",
    params=TenantPath,
    body=StaffPlanChange,
    response=PlanAssignment,
    security=("bearer",),
    responses=STAFF_ONLY | {404: "No live tenant has this id (`not_found`)"},
)
async def set_tenant_plan(
    request: web.Request, *, path: TenantPath, body: StaffPlanChange
) -> PlanAssignment:
    """Move a tenant to another plan (staff); audited with the plan before and after."""
    claims = await require_staff(request)
    catalog = request.app[PLANS]
    if body.plan not in catalog.plans:
        known = list(catalog.plans)
        raise AppError(
            "validation_failed",
            f"expected a plan in {known}, got {body.plan!r}",
            status=422,
            errors=(FieldError("body", "plan", f"expected one of {known}"),),
        )
    change = SetPlan(body.plan, by=str(claims.user_id), reason=body.reason)
    reply = await ask_tenant(request, path.tenant_id, change)
    return PlanAssignment.model_validate(reply)
