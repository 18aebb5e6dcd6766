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
its sockets may no longer act on, and runs the hooks capabilities register
on :class:`AccessLosses` (``ACCESS_LOSSES``): each ends that user's (or
everyone's) live deliveries of the tenant's streams on this gateway — the
conversation rooms their sockets joined, the job streams their sockets and
SSE responses follow — and names the sockets it cut off, which are told
``tenant:access_revoked`` once, like those of the tenant's rooms. A lowered
role (``tenant:role_lowered`` on the same topic) runs the ``on_lowered``
hooks: each ends what the user's new role may no longer follow.

Joining checks membership twice — before entering the room and again
after — so a removal decided between the two cannot leave a socket behind:
either the second check fails, or the removal's event finds the socket in
the room.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
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
    "ACCESS_LOSSES",
    "AccessLosses",
    "AccessLost",
    "RoleLowered",
    "evict",
    "tenant_access",
    "unwatch_tenant",
    "watch_tenant",
]

log = logging.getLogger(__name__)

#: The gateway's bus, which ``tenant-access`` is routed on (its rebuilds forget
#: every confirmed membership).
ACCESS_FANOUT = web.AppKey("tenant_access_fanout", Fanout)


#: ``lost(tenant_id, user_id)``: ``user_id`` (None: everyone) lost access to
#: the tenant; end their live deliveries here and return the sockets cut off.
AccessLost = Callable[[str, str | None], Awaitable[Iterable[str]]]

#: ``lowered(tenant_id, user_id, role)``: the user's role in the tenant is now
#: the lower ``role``; end what it may no longer follow here.
RoleLowered = Callable[[str, str, str], Awaitable[None]]


class AccessLosses:
    """Owns: the hooks that end a capability's live deliveries on this gateway
    when someone loses access to a tenant.

    Concurrency: one event loop; hooks run one after another, in the order
    registered, from the bus reader (so none may wait on Postgres or Ray).
    Failure: a failing hook is logged and the others still run.
    """

    def __init__(self) -> None:
        self._hooks: list[AccessLost] = []
        self._lowered: list[RoleLowered] = []

    def on_lost(self, hook: AccessLost) -> None:
        """Call ``hook`` whenever access to a tenant ends."""
        self._hooks.append(hook)

    def on_lowered(self, hook: RoleLowered) -> None:
        """Call ``hook`` whenever a member's role is lowered."""
        self._lowered.append(hook)

    async def lowered(self, tenant_id: str, user_id: str, role: str) -> None:
        """Run every ``on_lowered`` hook."""
        for hook in self._lowered:
            try:
                await hook(tenant_id, user_id, role)
            except Exception:  # one capability's failure must not spare another's streams
                log.exception("narrowing deliveries of tenant %s failed", tenant_id)

    async def lost(self, tenant_id: str, user_id: str | None) -> set[str]:
        """Run every hook; the sockets they cut off."""
        sids: set[str] = set()
        for hook in self._hooks:
            try:
                sids.update(await hook(tenant_id, user_id))
            except Exception:  # one capability's failure must not spare another's streams
                log.exception("ending deliveries of tenant %s failed", tenant_id)
        return sids


ACCESS_LOSSES = web.AppKey("tenant_access_losses", AccessLosses)


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


async def evict(
    realtime: Realtime, tenant_id: str, user_id: str | None, cut_off: Iterable[str] = ()
) -> int:
    """Make this gateway's sockets of ``user_id`` (None: all) leave the tenant's
    rooms (its events and its presence), telling each once — and each of
    ``cut_off`` (sockets already cut off from the tenant's streams); how many."""
    rooms = (channel(tenant_id), presence_topic(tenant_id))
    sids = dict.fromkeys(
        sid for room in rooms for sid, _ in realtime.sio.manager.get_participants("/", room)
    )
    told = set(cut_off)
    for sid in sids:
        if user_id is not None:
            session = await realtime.sio.get_session(sid)
            if session["principal"].user_id != user_id:
                continue
        for room in rooms:
            await realtime.unwatch(sid, room)
        told.add(sid)
    for sid in told:
        await realtime.sio.emit(
            "tenant:access_revoked", {"tenant_id": tenant_id}, to=sid, ignore_queue=True
        )
    return len(told)


async def tenant_access(services: Services) -> AsyncIterator[None]:
    """This gateway's listener of ``tenant-access`` on its bus (a cleanup context)."""

    async def deliver(topic: str, event: str, data: dict[str, Any]) -> None:
        if not isinstance(data.get("tenant_id"), str):
            return
        if event == "tenant:role_lowered":
            user_id, role = data.get("user_id"), data.get("role")
            if isinstance(user_id, str) and isinstance(role, str):
                await losses.lowered(data["tenant_id"], user_id, role)
            return
        if event != "tenant:access_revoked":
            return
        user_id = data.get("user_id")
        user_id = user_id if isinstance(user_id, str) else None
        members.forget(data["tenant_id"], user_id)
        cut_off = await losses.lost(data["tenant_id"], user_id)
        try:
            await evict(services.realtime, data["tenant_id"], user_id, cut_off)
            await services.app[PRESENCE].forget(data["tenant_id"], user_id)
        except Exception:  # one bad eviction must not stop the subscription
            log.exception("evicting sockets from tenant %s failed", data["tenant_id"])

    fanout = services.app[ACCESS_FANOUT] = services.bus
    members = services.app[CONFIRMED_MEMBERS] = ConfirmedMembers(fanout)
    losses = services.app[ACCESS_LOSSES] = AccessLosses()
    fanout.route(ACCESS_CHANNEL, deliver)
    fanout.on_rebuilt(members.forget_all)
    await fanout.watch(ACCESS_CHANNEL)
    services.readiness.add("fanout:tenant_access", fanout.check(ACCESS_CHANNEL))
    yield
    await fanout.unwatch(ACCESS_CHANNEL)
