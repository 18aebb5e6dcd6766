"""Presence at the edges: sockets counted as devices, ``presence:*`` events and
``GET /api/v1/tenants/{id}/presence`` (the store itself is ``realtime/presence.py``).

A socket counts towards its user's presence in the tenant of its handshake
(``auth: {token, tenant_id}``) once, at connect, the tenant entity confirmed
the membership — before counting it and again after, so a removal racing
with the connect cannot leave a device counted; no command per event.
Presence events go only to sockets that asked: ``presence:watch`` puts a
socket in the tenant's presence room (bus topic ``presence:<tenant>``), so a
gateway subscribes to a tenant's presence only while a local socket watches
it. When a member is removed (or the tenant deleted), ``eviction.py`` takes
their sockets out of that room and :meth:`Presence.forget` stops counting
them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Literal, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.identity.bearer import authenticate_request
from hubbub.realtime.handshake import Principal
from hubbub.realtime.presence import Presence, topic
from hubbub.realtime.protocol import parse_payload
from hubbub.realtime.server import SocketContext
from hubbub.services import ROUTER, Services
from hubbub.tenancy.access import authorize, roster
from hubbub.tenancy.wire import TenantPath

__all__ = ["PRESENCE", "PRESENCE_EVENTS", "PresenceList", "PresenceView", "api", "presence"]

log = logging.getLogger(__name__)

PRESENCE = web.AppKey("presence", Presence)

api = Api("presence", "Who of a tenant is online, away or busy.")


class PresenceView(BaseModel):
    tenant_id: UUID
    user_id: UUID
    status: Literal["online", "away", "busy", "offline"]
    text: str = Field(description="The user's status text ('' when none).")
    available: bool = Field(description="Agent availability: set by the user, false offline.")
    last_seen_at: str | None = Field(
        description="When the user's last device went (RFC 3339); null if never seen or "
        "not yet gone."
    )
    version: int = Field(description="Grows with every change of this user's presence.")


class PresenceList(BaseModel):
    items: list[PresenceView]
    next_cursor: str | None = Field(None, description="Always null: one page holds everyone.")


class _Set(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["online", "away", "busy"] | None = None
    text: str | None = Field(None, max_length=200)
    available: bool | None = None


class _Watch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: UUID | None = None


Model = TypeVar("Model", bound=BaseModel)


async def set_presence(context: SocketContext, data: Any) -> dict[str, Any]:
    """Change your status, text or availability; the ack is your new view."""
    payload = parse_payload(_Set, data)
    app = context.app
    tracked = app[PRESENCE].tenant_of(context.sid)
    if tracked is None:
        raise AppError(
            "tenant_required",
            "expected a socket connected with auth.tenant_id naming a tenant you belong to",
            status=400,
        )
    return await app[PRESENCE].update(*tracked, payload.status, payload.text, payload.available)


async def watch_presence(context: SocketContext, data: Any) -> dict[str, Any]:
    """Receive the tenant's ``presence`` events; the ack holds everyone's view now."""
    payload = parse_payload(_Watch, data)
    tenant_id = str(payload.tenant_id or context.principal.tenant_id or "")
    user_id = context.principal.user_id
    if not tenant_id or user_id is None:
        raise AppError("tenant_required", "expected {tenant_id} or auth.tenant_id", status=400)
    app = context.app
    await roster(app[ROUTER], tenant_id, user_id)  # members only, before the room
    await context.realtime.watch(context.sid, topic(tenant_id))
    try:
        members = await roster(app[ROUTER], tenant_id, user_id)  # and after: a removal may race
    except AppError:
        await context.realtime.unwatch(context.sid, topic(tenant_id))
        raise
    return {"tenant_id": tenant_id, "items": await app[PRESENCE].views(tenant_id, members)}


async def unwatch_presence(context: SocketContext, data: Any) -> dict[str, Any]:
    """Stop receiving the tenant's ``presence`` events."""
    payload = parse_payload(_Watch, data)
    tenant_id = str(payload.tenant_id or context.principal.tenant_id or "")
    if tenant_id:
        await context.realtime.unwatch(context.sid, topic(tenant_id))
    return {"tenant_id": tenant_id or None}


PRESENCE_EVENTS = {
    "presence:set": set_presence,
    "presence:watch": watch_presence,
    "presence:unwatch": unwatch_presence,
}


@api.get(
    "/api/v1/tenants/{tenant_id}/presence",
    params=TenantPath,
    response=PresenceList,
    security=("bearer", "api_key"),
    responses={404: "No such tenant of yours (`not_found`)"},
)
async def list_presence(request: web.Request, *, path: TenantPath) -> PresenceList:
    """The presence of every member of the tenant (any member)."""
    claims = await authenticate_request(request)
    user_ids = sorted(await roster(request.app[ROUTER], path.tenant_id, claims.user_id))
    views = await request.app[PRESENCE].views(str(path.tenant_id), user_ids)
    return PresenceList(items=[PresenceView.model_validate(v) for v in views])


async def presence(services: Services) -> AsyncIterator[None]:
    """This gateway's presence: its lease, heartbeat and socket hooks (a cleanup context)."""
    tracker = services.app[PRESENCE] = Presence(services.redis, services.settings)

    async def connected(sid: str, principal: Principal) -> None:
        if principal.tenant_id is None or principal.user_id is None:
            return
        try:
            await authorize(services.router, principal.tenant_id, principal.user_id)
        except AppError as error:
            log.info("socket %s not counted in presence of %s: %s", sid, principal.tenant_id, error)
            return
        await tracker.connected(sid, principal)
        try:  # again: a removal decided meanwhile found no device of theirs to forget
            await authorize(services.router, principal.tenant_id, principal.user_id)
        except AppError as error:
            log.info("socket %s no longer counted in presence: %s", sid, error)
            await tracker.disconnected(sid)

    realtime = services.realtime
    realtime.on_connect(connected)
    realtime.on_disconnect(tracker.disconnected)
    realtime.on_event(tracker.active)
    await tracker.start()
    yield
    await tracker.close()
