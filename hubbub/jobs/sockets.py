"""Socket.IO events of jobs (payloads in docs/events.md).

``job:subscribe {job_id, after_seq}`` acks with the job's events after
``after_seq`` (read from Postgres), then ``job:event`` frames follow live, in
seq order, with no gap and no duplicate (``feeds.py``), until the job's
final status event; ``job:unsubscribe`` stops them sooner. A socket acts in
the tenant of its handshake and must be a member of it: when its user loses
access to the tenant its subscriptions of the tenant's jobs stop at once
(:meth:`JobSubscriptions.cut_off`) and it is told ``tenant:access_revoked``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hubbub.errors import AppError
from hubbub.jobs.feeds import Follower
from hubbub.jobs.keys import FEEDS
from hubbub.jobs.reads import Viewer
from hubbub.realtime.protocol import parse_payload
from hubbub.realtime.server import Realtime, SocketContext
from hubbub.services import ROUTER
from hubbub.tenancy.access import authorize
from hubbub.tenancy.confirmed_members import acting

__all__ = ["EVENT", "REPLAY_LIMIT", "REVOKED", "SOCKET_EVENTS", "SUBSCRIPTIONS", "JobSubscriptions"]

#: Most events a subscribe replays; further behind, page ``GET /jobs/{id}/events`` first.
REPLAY_LIMIT = 1000
#: The server → client event carrying one job event.
EVENT = "job:event"
#: The server → client event of a subscription ended because the socket's
#: user may no longer see the job (a lowered role).
REVOKED = "job:access_revoked"


class _Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: UUID
    after_seq: int = Field(0, ge=0)


class _Ref(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: UUID


class JobSubscriptions:
    """Owns: this gateway's socket subscriptions to jobs, each a follower and
    the task that relays it to its socket.

    Concurrency: one event loop; one relay task per subscription, ended by
    the job's final event, an unsubscribe, the socket's disconnect or close.
    """

    def __init__(self, realtime: Realtime) -> None:
        self._realtime = realtime
        self._relays: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._followers: dict[tuple[str, str], Follower] = {}

    def start(self, sid: str, follower: Follower) -> None:
        """Relay ``follower``'s live events to ``sid``.

        The task first runs after the subscribe handler's ack was queued, so
        live events follow the ack.
        """
        task = asyncio.get_running_loop().create_task(self._relay(sid, follower))
        self._relays[(sid, follower.job_id)] = task
        self._followers[(sid, follower.job_id)] = follower
        task.add_done_callback(lambda _: self._discard(sid, follower.job_id, task))

    async def stop(self, sid: str, job_id: str) -> bool:
        """Stop relaying the job to ``sid``; whether it was subscribed."""
        task = self._relays.pop((sid, job_id), None)
        self._followers.pop((sid, job_id), None)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def forget(self, sid: str) -> None:
        """The socket disconnected: stop all its relays."""
        for key in [key for key in self._relays if key[0] == sid]:
            await self.stop(*key)

    async def cut_off(self, tenant_id: str, user_id: str | None) -> list[str]:
        """``user_id`` (None: everyone) lost access to the tenant: stop relaying
        its jobs to their sockets here; which sockets had one."""
        cut = [
            key
            for key, follower in self._followers.items()
            if follower.tenant_id == tenant_id and (user_id is None or follower.user_id == user_id)
        ]
        for key in cut:
            self._followers[key].revoke()
            await self.stop(*key)
        return list(dict.fromkeys(sid for sid, _ in cut))

    async def close(self) -> None:
        for sid, job_id in list(self._relays):
            await self.stop(sid, job_id)

    async def _relay(self, sid: str, follower: Follower) -> None:
        try:
            while not follower.finished:
                events = await follower.next()
                if not events:  # interrupted, or access revoked
                    break
                for event in events:
                    await self._realtime.sio.emit(EVENT, event, to=sid, ignore_queue=True)
            if follower.revoked:  # still in the tenant, no longer allowed to see the job
                notice = {"job_id": follower.job_id}
                await self._realtime.sio.emit(REVOKED, notice, to=sid, ignore_queue=True)
        finally:
            await follower.close()

    def _discard(self, sid: str, job_id: str, task: asyncio.Task[None]) -> None:
        if self._relays.get((sid, job_id)) is task:
            del self._relays[(sid, job_id)]
            self._followers.pop((sid, job_id), None)


SUBSCRIPTIONS = web.AppKey("job_subscriptions", JobSubscriptions)


async def subscribe(context: SocketContext, data: Any) -> dict[str, Any]:
    """Ack the events after ``after_seq``; live ``job:event``s follow the ack."""
    payload = parse_payload(_Subscribe, data)
    app, tenant_id, user_id = await acting(context)
    job_id = str(payload.job_id)
    await app[SUBSCRIPTIONS].stop(context.sid, job_id)  # a resubscribe replays from its own seq
    viewer = await _viewer(app, tenant_id, user_id)
    follower = await app[FEEDS].follow(tenant_id, job_id, payload.after_seq, viewer)
    try:
        await acting(context)  # a removal decided meanwhile found no follower to revoke
        events = await follower.backlog(REPLAY_LIMIT + 1)
        if follower.revoked:  # its user lost access while the backlog was read
            raise AppError.not_found("job")
        if not follower.caught_up:
            raise AppError(
                "too_far_behind",
                f"more than {REPLAY_LIMIT} events since seq {payload.after_seq}: page "
                "GET /api/v1/jobs/{id}/events?after_seq= and subscribe with a later after_seq",
                status=409,
            )
    except BaseException:
        await follower.close()
        raise
    if follower.finished:
        await follower.close()
    else:
        app[SUBSCRIPTIONS].start(context.sid, follower)
    return {"job_id": job_id, "last_seq": follower.last_seq, "events": events}


async def _viewer(app: web.Application, tenant_id: str, user_id: str) -> Viewer:
    """The member as a viewer of jobs: private ones need their role (asked of
    the tenant entity, once per subscribe)."""
    reply = await authorize(app[ROUTER], tenant_id, user_id)
    return Viewer.member(user_id, reply["role"])


async def unsubscribe(context: SocketContext, data: Any) -> dict[str, Any]:
    """Stop receiving the job's events."""
    payload = parse_payload(_Ref, data)
    await context.app[SUBSCRIPTIONS].stop(context.sid, str(payload.job_id))
    return {"job_id": str(payload.job_id)}


SOCKET_EVENTS = {"job:subscribe": subscribe, "job:unsubscribe": unsubscribe}
