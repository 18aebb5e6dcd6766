"""This gateway's followers of jobs: replay from Postgres, then live from the
bus, in seq order, with no gap and no duplicate — for SSE streams and
Socket.IO subscriptions alike.

Each followed job is a :class:`~hubbub.realtime.seq_stream.SeqStream` on the
gateway's one bus: it hands the job's events to the job's local followers
in seq order, once, and reads back from Postgres what the bus lost — in the
stream's own task, so a slow read holds up only that job.

Following a job takes three steps. :meth:`JobFeeds.follow` follows the job's
stream (for the topic's first follower, a probe round trip through the same
Redis connection proves the SUBSCRIBE was processed) and starts buffering
every event of the job for the new :class:`Follower`. Then the follower's
:meth:`~Follower.backlog` reads what was committed after the client's
``after_seq`` from Postgres, a page at a time. Finally :meth:`~Follower.next`
hands out the buffered and live events: those at or below the last seq
handed out are dropped (committed before the backlog read, published after
it), and one above the next expected seq — the follower dropped events while
its client read slowly — means the missing range is read back first, with
the stream's own ``read_after``.

A follower that does not keep up (its client reads slowly, or not at all)
holds at most :data:`MAX_LIVE` live events: past that it keeps only the
newest and reads the rest back from Postgres, a page at a time, when its
client catches up.

A finished job's stream ends with its terminal ``status`` event, which a
follower always gets: in the backlog, live, or — when the client had seen it
already — once more at the end of the backlog.

A follower whose user loses access to the job's tenant (removed from it,
or the tenant deleted) is *revoked* at once by :meth:`JobFeeds.cut_off`
(run by ``hubbub.tenancy.eviction`` on every gateway): its ``next`` returns
no events from then on and ``revoked`` says why, so its SSE stream or socket
relay ends. So is every follower of a user all of whose sessions were
revoked (a ban, a lock, logout everywhere: :meth:`JobFeeds.sessions_revoked`),
and every follower of another member's private job whose owner or admin
role was lowered to one that cannot see it (:meth:`JobFeeds.role_lowered`).

The same bus routes :data:`~hubbub.jobs.entity.ENDED`, where jobs that stop
running say so, to ``on_ended`` (the job sweep's kick).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import asyncpg

from hubbub.errors import AppError
from hubbub.identity.revocation import Revocation
from hubbub.jobs import reads
from hubbub.jobs.entity import ENDED, EVENT, channel
from hubbub.jobs.state import TERMINAL
from hubbub.realtime.fanout import Fanout
from hubbub.realtime.seq_stream import Event, ReadAfter, SeqStreams
from hubbub.storage.database import Database
from hubbub.tenancy.roles import at_least

__all__ = ["MAX_LIVE", "PAGE", "Follower", "JobFeeds", "is_final"]

log = logging.getLogger(__name__)

#: Events read from Postgres at a time.
PAGE = 500

#: Live events one follower buffers before it drops all but the newest.
MAX_LIVE = 256


def is_final(event: dict[str, Any]) -> bool:
    """Whether ``event`` ends its job's stream."""
    return event["type"] == "status" and event["data"].get("status") in TERMINAL


class JobFeeds:
    """Owns: the followers of each job on this gateway (the streams own each
    job's head).

    Concurrency: one event loop. Failure: events lost on the bus are read
    back by the job's stream at the next seq gap, events a slow follower
    dropped by that follower (``repaired`` counts both).
    """

    def __init__(
        self, fanout: Fanout, database: Database, on_ended: Callable[[], None] = lambda: None
    ) -> None:
        self.database = database
        self.fanout = fanout
        self.streams = SeqStreams(fanout, "job:", self._deliver)
        self._followers: dict[str, set[Follower]] = {}
        self.on_ended = on_ended
        self._standing = fanout.check(ENDED)
        fanout.route(ENDED, self._ended)

    @property
    def repaired(self) -> int:
        """Events read back from Postgres, by the streams and by slow followers."""
        return self.streams.stats.repaired

    async def start(self) -> None:
        await self.fanout.watch(ENDED)

    async def close(self) -> None:
        await self.streams.close()
        await self.fanout.unwatch(ENDED)

    async def check(self) -> dict[str, Any]:
        """Readiness: ``jobs:ended`` is watched on a live bus; the streams' counts."""
        return {**await self._standing(), **await self.streams.check()}

    async def follow(
        self, tenant_id: str, job_id: str, after_seq: int, viewer: reads.Viewer | None
    ) -> Follower:
        """A follower of the job from ``after_seq``; 404 if the tenant has no
        such job (or none ``viewer`` may see).

        Subscribed on return; call :meth:`Follower.close` when done. 422
        ``seq_out_of_range`` for an ``after_seq`` the job has not reached.
        """
        async with self.database.tenant(tenant_id) as conn:
            reads.check_after_seq(await reads.job(conn, job_id, viewer), after_seq)
            managed = (
                viewer is not None
                and viewer.manages
                and not await _visible_to_members(conn, job_id, viewer.user_id)
            )
        read_after = self.reader(tenant_id, job_id)
        user_id = None if viewer is None else viewer.user_id
        follower = Follower(self, tenant_id, job_id, after_seq, read_after, user_id)
        follower.needs_manager = managed
        self._followers.setdefault(job_id, set()).add(follower)
        try:
            await self.streams.follow(channel(job_id), read_after)
        except BaseException:
            self._discard(follower)  # the stream forgot it already
            raise
        return follower

    async def cut_off(self, tenant_id: str, user_id: str | None) -> list[str]:
        """Revoke the followers of ``user_id`` (None: everyone) of the tenant's
        jobs; no socket is cut off here (:class:`JobSubscriptions` names them)."""
        for followers in list(self._followers.values()):
            for follower in list(followers):
                if follower.tenant_id == tenant_id and (
                    user_id is None or follower.user_id == user_id
                ):
                    follower.revoke()
        return []

    async def role_lowered(self, tenant_id: str, user_id: str, role: str) -> None:
        """Revoke the user's followers of jobs only owners and admins may see
        (other members' private ones), if ``role`` is neither."""
        if at_least(role, "admin"):
            return
        for followers in list(self._followers.values()):
            for follower in list(followers):
                same = follower.tenant_id == tenant_id and follower.user_id == user_id
                if same and follower.needs_manager:
                    follower.revoke()

    async def sessions_revoked(self, revocation: Revocation) -> None:
        """Revoke the followers of a user whose every session was revoked.

        A revocation of some sessions only (one logout; a password change
        sparing the session that made it) ends no stream: a follower does
        not know its session, so it ends when its client next reconnects."""
        if revocation.user_id is None or revocation.except_session_id is not None:
            return
        for followers in list(self._followers.values()):
            for follower in list(followers):
                if follower.user_id == revocation.user_id:
                    follower.revoke()

    def reader(self, tenant_id: str, job_id: str) -> ReadAfter:
        """The job's ``read_after``: a page of its committed events, as bus events."""

        async def read_after(after: int, before: int) -> list[Event]:
            async with self.database.tenant(tenant_id) as conn:
                limit = min(before - after - 1, PAGE)
                events = await reads.stream_after(conn, job_id, after, limit, before)
            return [(EVENT, event) for event in events]

        return read_after

    def _discard(self, follower: Follower) -> None:
        followers = self._followers.get(follower.job_id, set())
        followers.discard(follower)
        if not followers:
            self._followers.pop(follower.job_id, None)

    async def _forget(self, follower: Follower) -> None:
        self._discard(follower)
        await self.streams.unfollow(channel(follower.job_id))

    async def _ended(self, topic: str, event: str, data: dict[str, Any]) -> None:
        self.on_ended()

    async def _deliver(self, topic: str, event: str, data: dict[str, Any]) -> None:
        for follower in list(self._followers.get(topic.removeprefix("job:"), ())):
            follower.offer(data)


async def _visible_to_members(conn: asyncpg.Connection, job_id: str, user_id: str) -> bool:
    """Whether ``user_id`` would see the job as a plain member."""
    try:
        await reads.job(conn, job_id, reads.Viewer(user_id, manages=False))
    except AppError:
        return False
    return True


class Follower:
    """One client following one job (``user_id``: whose; None where the stream
    was handed out without a member, such as a signup's link).

    Owns: its buffer of live events (at most :data:`MAX_LIVE`), the last
    seq it handed out, and whether its access was revoked.
    Concurrency: one consumer calls ``backlog`` until ``caught_up``, then ``next``.
    """

    def __init__(
        self,
        feeds: JobFeeds,
        tenant_id: str,
        job_id: str,
        after_seq: int,
        read_after: ReadAfter,
        user_id: str | None = None,
    ) -> None:
        self._feeds = feeds
        self._read_after = read_after
        self.tenant_id = tenant_id
        self.job_id = job_id
        self.user_id = user_id
        self.revoked = False
        self.needs_manager = False  # seen only as an owner or admin (another's private job)
        self.last_seq = after_seq
        self.finished = False
        self.caught_up = False
        self._live: deque[dict[str, Any]] = deque()
        self._arrived = asyncio.Event()
        self._interrupted = False
        self._closed = False

    @property
    def buffered(self) -> int:
        """Live events waiting to be handed out."""
        return len(self._live)

    def offer(self, event: dict[str, Any]) -> None:
        """A live event from the bus (any order the bus gives)."""
        if self.revoked:
            return
        self._live.append(event)
        if len(self._live) > MAX_LIVE:  # Postgres has them all: keep the newest
            self._live = deque([max(self._live, key=lambda e: e["seq"])])
        self._arrived.set()

    async def backlog(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` (default :data:`PAGE`) committed events after the last
        seq handed out.

        Fewer than ``limit`` means the backlog is read (``caught_up``); then,
        if the job is finished, the events end with its terminal status event
        (read again if it was handed out before).
        """
        async with self._feeds.database.tenant(self.tenant_id) as conn:
            # The job's state first: if it is finished, every event is committed.
            finished = (await reads.job(conn, self.job_id, None))["status"] in TERMINAL
            limit = limit or PAGE
            events = await reads.stream_after(conn, self.job_id, self.last_seq, limit)
            self._advance(events)
            self.caught_up = len(events) < limit
            if self.caught_up and finished and not self.finished:
                final = await reads.final_status(conn, self.job_id)
                assert final is not None, "a finished job has a terminal status event"
                events.append(final)
                self.finished = True
        return events

    async def next(self) -> list[dict[str, Any]]:
        """The next live events in seq order (a gap read back first); waits for one."""
        while True:
            while not self._live:
                if self._interrupted:
                    return []
                self._arrived.clear()
                await self._arrived.wait()
            event = self._live.popleft()
            seq = event["seq"]
            if seq <= self.last_seq:
                continue
            missed = await self._missed(seq)
            if self.revoked:  # while the read was in flight
                return []
            if missed and missed[-1]["seq"] < seq - 1:  # one page of a longer gap
                self._live.appendleft(event)
                events = missed
            else:
                events = [*missed, event]
            self._advance(events)
            return events

    def revoke(self) -> None:
        """Its user lost access: no event from now on (``next`` returns none)."""
        self.revoked = True
        self._live.clear()
        self.interrupt()

    def interrupt(self) -> None:
        """Make a waiting (or the next) ``next`` return no events."""
        self._interrupted = True
        self._arrived.set()

    async def close(self) -> None:
        """Stop following (once); a waiting ``next`` returns no events."""
        self.interrupt()
        if not self._closed:
            self._closed = True
            await self._feeds._forget(self)

    def _advance(self, events: list[dict[str, Any]]) -> None:
        if events:
            self.last_seq = events[-1]["seq"]
            self.finished = self.finished or any(is_final(e) for e in events)

    async def _missed(self, before: int) -> list[dict[str, Any]]:
        """A page of the events this follower dropped below ``before``."""
        if before <= self.last_seq + 1:
            return []
        missed = [event for _, event in await self._read_after(self.last_seq, before)]
        self._feeds.streams.stats.repaired += len(missed)
        if missed:
            log.warning(
                "job %s: read seqs %d..%d back from Postgres (dropped while the client "
                "read slowly, or offered out of order)",
                self.job_id,
                missed[0]["seq"],
                missed[-1]["seq"],
            )
        return missed
