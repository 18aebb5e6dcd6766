"""Sockets in a tenant: joining its room, and leaving it when access ends.

``tenant:watch {tenant_id}`` puts a socket in the tenant's room (bus topic
``tenant:{id}``, whose events are listed in docs/events.md) after the tenant
entity confirms membership. When the entity removes a member or deletes the
tenant it also publishes ``tenant:access_revoked`` on the global topic
``tenant-access``; every gateway's one bus watches it, routed to
:func:`tenant_access`, which makes its local sockets of that user (of everyone, for a
deletion) leave the tenant's rooms at once — its events and its presence
— telling each once with a ``tenant:access_revoked`` event, and stop
counting as devices in the tenant's presence. The socket stays connected:
its user may belong to other tenants.

The same subscription tells :class:`ConfirmedMembers` which memberships
its sockets may no longer act on.

Joining checks membership twice — before entering the room and again
after — so a removal decided between the two cannot leave a socket behind:
either the second check fails, or the removal's event finds the socket in
the room.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ValidationError

from hubbub.errors import AppError, FieldError
from hubbub.realtime.fanout import Fanout
from hubbub.realtime.presence import topic as presence_topic
from hubbub.realtime.server import Realtime, SocketContext
from hubbub.services import ROUTER, Services
from hubbub.tenancy.access import authorize
from hubbub.tenancy.confirmed_members import CONFIRMED_MEMBERS, ConfirmedMembers
from hubbub.tenancy.entity import ACCESS_CHANNEL, channel
from hubbub.tenancy.presence_api import PRESENCE

__all__ = [
    "ACCESS_FANOUT",
    "evict",
    "tenant_access",
    "unwatch_tenant",
    "watch_tenant",
]

log = logging.getLogger(__name__)

#: The gateway's bus, which ``tenant-access`` is routed on (its rebuilds forget
#: every confirmed membership).
ACCESS_FANOUT = web.AppKey("tenant_access_fanout", Fanout)


class _TenantRef(BaseModel):
    tenant_id: UUID


def _tenant_id(data: Any) -> UUID:
    try:
        return _TenantRef.model_validate(data).tenant_id
    except ValidationError:
        raise AppError(
            "validation_failed",
            "expected {tenant_id: <uuid>}",
            status=422,
            errors=(FieldError("body", "tenant_id", "expected a tenant id (UUID)"),),
        ) from None


async def _authorize(context: SocketContext, tenant_id: UUID) -> dict[str, Any]:
    router = context.app[ROUTER]
    assert context.principal.user_id is not None, "only users watch tenants"
    return await authorize(router, tenant_id, context.principal.user_id)


async def watch_tenant(context: SocketContext, data: Any) -> dict[str, Any]:
    """Join the tenant's room: its committed ``tenant:*`` events (members only)."""
    tenant_id = _tenant_id(data)
    topic = channel(str(tenant_id))
    await _authorize(context, tenant_id)
    await context.realtime.watch(context.sid, topic)
    try:
        reply = await _authorize(context, tenant_id)
    except AppError:
        await context.realtime.unwatch(context.sid, topic)
        raise
    return {"tenant_id": str(tenant_id), "role": reply["role"]}


async def unwatch_tenant(context: SocketContext, data: Any) -> dict[str, Any]:
    """Leave the tenant's room."""
    tenant_id = _tenant_id(data)
    await context.realtime.unwatch(context.sid, channel(str(tenant_id)))
    return {"tenant_id": str(tenant_id)}


async def evict(realtime: Realtime, tenant_id: str, user_id: str | None) -> int:
    """Make this gateway's sockets of ``user_id`` (None: all) leave the tenant's
    rooms (its events and its presence), telling each once; how many left."""
    rooms = (channel(tenant_id), presence_topic(tenant_id))
    sids = dict.fromkeys(
        sid for room in rooms for sid, _ in realtime.sio.manager.get_participants("/", room)
    )
    evicted = 0
    for sid in sids:
        if user_id is not None:
            session = await realtime.sio.get_session(sid)
            if session["principal"].user_id != user_id:
                continue
        await realtime.sio.emit(
            "tenant:access_revoked", {"tenant_id": tenant_id}, to=sid, ignore_queue=True
        )
        for room in rooms:
            await realtime.unwatch(sid, room)
        evicted += 1
    return evicted


async def tenant_access(services: Services) -> AsyncIterator[None]:
    """This gateway's listener of ``tenant-access`` on its bus (a cleanup context)."""

    async def deliver(topic: str, event: str, data: dict[str, Any]) -> None:
        if event != "tenant:access_revoked" or not isinstance(data.get("tenant_id"), str):
            return
        user_id = data.get("user_id")
        user_id = user_id if isinstance(user_id, str) else None
        members.forget(data["tenant_id"], user_id)
        try:
            await evict(services.realtime, data["tenant_id"], user_id)
            await services.app[PRESENCE].forget(data["tenant_id"], user_id)
        except Exception:  # one bad eviction must not stop the subscription
            log.exception("evicting sockets from tenant %s failed", data["tenant_id"])

    fanout = services.app[ACCESS_FANOUT] = services.bus
    members = services.app[CONFIRMED_MEMBERS] = ConfirmedMembers(fanout)
    fanout.route(ACCESS_CHANNEL, deliver)
    fanout.on_rebuilt(members.forget_all)
    await fanout.watch(ACCESS_CHANNEL)
    services.readiness.add("fanout:tenant_access", fanout.check(ACCESS_CHANNEL))
    yield
    await fanout.unwatch(ACCESS_CHANNEL)
