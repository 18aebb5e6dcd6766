"""HTTP routes of broadcasts, under ``/api/v1/broadcasts``.

Every route needs a bearer token and a tenant (``X-Tenant-Id``) the caller
is a member of; every member sees the tenant's broadcasts. A broadcast is
sent by a ``broadcast.send`` job (``hubbub.broadcasts.sending``); creating
one writes it with its recipients, then submits that job. Reads come from
Postgres in the tenant's scope, so another tenant's broadcast answers 404.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from aiohttp import web

from hubbub.broadcasts import ledger, reads
from hubbub.broadcasts.wire import (
    BroadcastList,
    BroadcastPath,
    BroadcastsQuery,
    BroadcastView,
    NewBroadcast,
    RecipientList,
    RecipientsQuery,
)
from hubbub.chat.commands import check_body
from hubbub.errors import AppError, FieldError
from hubbub.http.routing import Api
from hubbub.ids import new_id
from hubbub.jobs.caller import Caller, idempotency_key
from hubbub.jobs.caller import caller as _caller
from hubbub.jobs.control import cancel_job
from hubbub.jobs.dispatch import job_id_for, submit_job
from hubbub.jobs.registry import KINDS
from hubbub.services import DATABASE, SETTINGS
from hubbub.tenancy.creations import request_hash

__all__ = ["api"]

api = Api("broadcasts", "One message to many conversations, sent by a job.", tenant_header=True)

BASE = "/api/v1/broadcasts"
ONE = f"{BASE}/{{broadcast_id}}"
BEARER = ("bearer",)
NOT_FOUND = {404: "No such broadcast in this tenant (`not_found`)"}
KIND = "broadcast.send"
_KEYED = uuid.UUID("3c0f6a52-9d1e-5b84-8e27-4a6b1d9c0f73")  # namespace of keyed broadcast ids


@api.post(
    BASE,
    body=NewBroadcast,
    response=BroadcastView,
    status=202,
    security=BEARER,
    responses={
        422: "A bad field (`validation_failed`: more than 1,000 `recipient_ids`, both or "
        "neither of `recipient_ids` and `label`), `body_empty`, `body_too_large`, a "
        "label no conversation of yours has (`no_recipients`), or an `Idempotency-Key` "
        "used with another body (`idempotency_key_reused`)"
    },
)
async def create_broadcast(request: web.Request, *, body: NewBroadcast) -> BroadcastView:
    """Create a broadcast and queue the job that sends it; recipients start `pending`.
    With an `Idempotency-Key` the same key gives the same broadcast."""
    caller = await _caller(request)
    key = idempotency_key(request)
    _check_target(body)
    check_body(body.body, request.app[SETTINGS].message_max_bytes)
    tenant_id, user_id = str(caller.tenant_id), str(caller.user_id)
    broadcast_id = _broadcast_id(tenant_id, user_id, key)
    job_key = f"broadcast:{broadcast_id}"  # fixes the job id, so the row can name it first
    new = ledger.Draft(
        broadcast_id,
        tenant_id,
        job_id_for(tenant_id, user_id, job_key),
        body.body,
        user_id,
        body.recipient_ids,
        body.label,
        body.start_at,
        key,
        request_hash(body.model_dump(mode="json")),
    )
    database = request.app[DATABASE]
    async with database.tenant(tenant_id) as conn:
        created = await ledger.create(conn, new)
        accepted = BroadcastView.model_validate(await reads.broadcast(conn, str(broadcast_id)))
    job_input = {"broadcast_id": str(broadcast_id)}
    try:  # a retried request submits again: the same job, launched if it never was
        kind = KINDS.get(KIND)
        await submit_job(
            request.app, tenant_id, user_id, kind, job_input, job_key, run_at=body.start_at
        )
    except AppError:
        if created:
            async with database.tenant(tenant_id) as conn:
                await ledger.forget(conn, broadcast_id)
        raise
    return accepted  # as committed (a retried request: as it is now), not as its job runs


def _broadcast_id(tenant_id: str, user_id: str, key: str | None) -> UUID:
    """A fresh id, or with an ``Idempotency-Key`` the one (tenant, creator, key) fix."""
    if key is None:
        return new_id()
    return uuid.uuid5(_KEYED, f"{tenant_id}\x1f{user_id}\x1f{key}")


def _check_target(body: NewBroadcast) -> None:
    """Exactly one of ``recipient_ids`` and ``label``; 422 naming them otherwise."""
    if (body.recipient_ids is None) != (body.label is None):
        return
    problem = "both given" if body.label is not None else "neither given"
    raise AppError(
        "validation_failed",
        f"expected exactly one of recipient_ids and label, got {problem}",
        status=422,
        errors=tuple(
            FieldError("body", name, f"exactly one of recipient_ids and label: {problem}")
            for name in ("recipient_ids", "label")
        ),
    )


@api.get(BASE, query=BroadcastsQuery, response=BroadcastList, security=BEARER)
async def list_broadcasts(request: web.Request, *, query: BroadcastsQuery) -> BroadcastList:
    """The tenant's broadcasts, newest first, with their counts per status."""
    caller = await _caller(request)
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        items, cursor = await reads.broadcasts(conn, query.cursor, query.limit)
    return BroadcastList.model_validate({"items": items, "next_cursor": cursor})


@api.get(ONE, params=BroadcastPath, response=BroadcastView, security=BEARER, responses=NOT_FOUND)
async def get_broadcast(request: web.Request, *, path: BroadcastPath) -> BroadcastView:
    """One broadcast with its counts per recipient status."""
    return await _view(request, await _caller(request), path.broadcast_id)


@api.get(
    f"{ONE}/recipients",
    params=BroadcastPath,
    query=RecipientsQuery,
    response=RecipientList,
    security=BEARER,
    responses=NOT_FOUND,
)
async def list_broadcast_recipients(
    request: web.Request, *, path: BroadcastPath, query: RecipientsQuery
) -> RecipientList:
    """The broadcast's recipients with their status (optionally one status), by
    conversation id."""
    caller = await _caller(request)
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        items, cursor = await reads.recipients(
            conn, str(path.broadcast_id), query.status, query.cursor, query.limit
        )
    return RecipientList.model_validate({"items": items, "next_cursor": cursor})


@api.post(
    f"{ONE}/cancel",
    params=BroadcastPath,
    response=BroadcastView,
    security=BEARER,
    responses=NOT_FOUND
    | {
        403: "Neither its creator nor a tenant owner or admin (`insufficient_role`)",
        409: "The broadcast is completed or cancelled already (`broadcast_finished`)",
    },
)
async def cancel_broadcast(request: web.Request, *, path: BroadcastPath) -> BroadcastView:
    """Cancel a broadcast: its pending recipients become `cancelled` and its job is
    cancelled; messages already sent stay."""
    caller = await _caller(request)
    view = await _view(request, caller, path.broadcast_id)
    await _cancel_job(request, caller, view)
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        cancelled = await ledger.cancel(conn, path.broadcast_id)
    if not cancelled:
        raise AppError(
            "broadcast_finished",
            "expected a queued or sending broadcast, got one that is completed or cancelled",
            status=409,
        )
    return await _view(request, caller, path.broadcast_id)


async def _cancel_job(request: web.Request, caller: Caller, view: BroadcastView) -> None:
    """Cancel the sending job; the job entity checks who may (the broadcast's
    creator made it). A job that ended already leaves nothing to stop."""
    tenant_id, user_id = str(caller.tenant_id), str(caller.user_id)
    try:
        await cancel_job(request.app, tenant_id, str(view.job_id), user_id, caller.role)
    except AppError as error:
        if error.code != "job_finished":
            raise


async def _view(request: web.Request, caller: Caller, broadcast_id: UUID) -> BroadcastView:
    async with request.app[DATABASE].tenant(caller.tenant_id) as conn:
        return BroadcastView.model_validate(await reads.broadcast(conn, str(broadcast_id)))
