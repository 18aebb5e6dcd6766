"""Durable streams on a gateway: one topic's events in seq order, once, with
the gaps the bus left read back from Postgres — off the bus reader.

Every durable stream (a conversation, a job, later a user's notification
feed or a sync session) has a gap-free ``seq`` set by its owner, and its
committed events reach the gateway on the one fan-out bus (``fanout.py``).
A capability serves its streams of one kind through :class:`SeqStreams`: it
supplies the kind (``"conversation:"``), how to deliver an event to the
topic's local followers, and, when a topic gets its first follower, how to
read the topic's committed events after a seq (``read_after``, a Postgres
read). Each topic's :class:`SeqStream` then keeps

- its *head*: the last seq delivered to its live followers. An event at or
  below it was delivered already and is dropped; one above ``head + 1``
  means publications were lost on the bus (a rebuilt subscription, a shard
  killed between commit and publish), so the missing range is read back and
  delivered first. Events without a ``seq`` (read marks, typing) are not
  part of the stream and pass in arrival order;
- its *joiners*: a follower that read the stream's backlog up to its
  *floor* joins in stream order: it gets what was delivered after its floor
  (read back), then the live events once. A floor above the head (the
  backlog read saw commits whose publications are still on their way) moves
  the head up for everyone, so those publications are dropped when they come.

An in-order event is delivered straight from the bus reader (no task, no
queue). Anything that needs a read — a gap, a joiner behind the head — goes
to the stream's queue, drained by the stream's own task: a slow read stalls
that one stream (its later events queue behind it, in order), never the bus
reader, another stream, a revocation or a tenant eviction. Only the last
events before a silence cannot be noticed this way; clients still see seqs
and can fetch the range over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hubbub.errors import AppError
from hubbub.metrics import SEQ_GAPS_DETECTED, SEQ_GAPS_REPAIRED
from hubbub.realtime.fanout import Deliver, Fanout

__all__ = ["Arrive", "Event", "ReadAfter", "RepairStats", "SeqStream", "SeqStreams"]

log = logging.getLogger(__name__)

#: ``(event, data)`` as published on the bus; ``data["seq"]`` orders a stream's events.
Event = tuple[str, dict[str, Any]]

#: ``read_after(after, before)``: committed events with ``after`` < seq < ``before``
#: in seq order, the first page of them (an empty page ends the read).
ReadAfter = Callable[[int, int], Awaitable[list[Event]]]

#: ``arrive(missed)``: a joiner's events after its floor; once it returns, the
#: joiner must be one of the followers the stream's delivery reaches.
Arrive = Callable[[list[Event]], Awaitable[None]]


@dataclass(slots=True)
class RepairStats:
    """Counts of one kind's streams: events read back, reads that failed."""

    repaired: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class _Joiner:
    floor: int
    arrive: Arrive


class SeqStream:
    """One topic's ordered delivery on this gateway.

    Owns: the stream's head, its queue of events and joiners waiting behind
    a read, and the task draining that queue.
    Concurrency: one event loop; events and joiners are handled one at a
    time, in the order offered. The bus reader delivers in-order events
    itself while the queue is empty; otherwise the stream's task does.
    Durability: none; the owner's Postgres rows are the source for repair.
    Failure: a failed read is logged and counted (``RepairStats.failures``)
    and its gap left for clients to fetch; a failing delivery is logged and
    the stream goes on.
    """

    def __init__(
        self,
        topic: str,
        read_after: ReadAfter,
        deliver: Callable[[str, dict[str, Any]], Awaitable[None]],
        stats: RepairStats,
    ) -> None:
        self.topic = topic
        self.read_after = read_after
        self.head: int | None = None
        self._deliver = deliver
        self._stats = stats
        self._queue: deque[Event | _Joiner] = deque()
        self._drain: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def repairing(self) -> bool:
        """Whether events wait behind a read."""
        return self._drain is not None

    async def offer(self, event: str, data: dict[str, Any]) -> None:
        """An event from the bus, in any order it came; never waits on a read."""
        if self._closed:
            return
        if self._drain is None and self._in_order(data.get("seq")):
            await self._pass(event, data)
            return
        if self._drain is None:  # the first event past the head: the bus lost some
            SEQ_GAPS_DETECTED.inc()
        self._enqueue((event, data))

    def join(self, floor: int, arrive: Arrive) -> None:
        """A follower that has every event up to ``floor`` joins, in stream order:
        ``arrive`` gets what it missed since and must then make it live."""
        self._enqueue(_Joiner(floor, arrive))

    async def close(self) -> None:
        """Deliver nothing more; stop (and await) a drain in progress."""
        self._closed = True
        self._queue.clear()
        drain = self._drain
        if drain is not None and drain is not asyncio.current_task():
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)

    def _in_order(self, seq: Any) -> bool:
        return not isinstance(seq, int) or self.head is None or seq <= self.head + 1

    def _enqueue(self, item: Event | _Joiner) -> None:
        self._queue.append(item)
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_queue())

    async def _drain_queue(self) -> None:
        try:
            while self._queue and not self._closed:
                item = self._queue.popleft()
                try:
                    if isinstance(item, _Joiner):
                        await self._admit(item)
                    else:
                        await self._repair(*item)
                except Exception:  # one bad delivery must not end the stream's order
                    log.exception("stream %s could not handle %r", self.topic, item)
        finally:
            self._drain = None

    async def _repair(self, event: str, data: dict[str, Any]) -> None:
        """Deliver ``event`` after the range the bus lost before it, read back."""
        seq = data.get("seq")
        if isinstance(seq, int) and self.head is not None:
            if seq <= self.head:
                return  # delivered already
            if seq > self.head + 1:
                await self._catch_up(seq)
                SEQ_GAPS_REPAIRED.inc()
        await self._pass(event, data)

    async def _catch_up(self, before: int) -> None:
        """Deliver the events between the head and ``before`` to the live followers."""
        assert self.head is not None, "a head to catch up from"
        async for page in self._read(self.head, before):
            for event, data in page:
                await self._pass(event, data)

    async def _admit(self, joiner: _Joiner) -> None:
        if self.head is not None and joiner.floor < self.head:
            missed = [e async for page in self._read(joiner.floor, self.head + 1) for e in page]
            await joiner.arrive(missed)
            return
        if self.head is not None:
            await self._catch_up(joiner.floor + 1)
        self.head = joiner.floor if self.head is None else max(self.head, joiner.floor)
        await joiner.arrive([])

    async def _pass(self, event: str, data: dict[str, Any]) -> None:
        seq = data.get("seq")
        if isinstance(seq, int):
            if self.head is not None and seq <= self.head:
                return
            self.head = seq
        await self._deliver(event, data)

    async def _read(self, after: int, before: int) -> AsyncIterator[list[Event]]:
        """Pages of the committed events ``after`` < seq < ``before``."""
        first = after + 1
        while after + 1 < before:
            try:
                page = await self.read_after(after, before)
            except Exception as exc:  # the gap stays for clients to fetch
                self._stats.failures += 1
                log.error(
                    "could not repair seqs %d..%d of %s: %s", first, before - 1, self.topic, exc
                )
                return
            if not page:
                return
            self._stats.repaired += len(page)
            log.warning(
                "read seqs %d..%d of %s back from Postgres"
                " (lost on the bus, or missed by a joiner)",
                page[0][1]["seq"],
                page[-1][1]["seq"],
                self.topic,
            )
            yield page
            after = page[-1][1]["seq"]


class SeqStreams:
    """Owns: this gateway's open streams of one kind and their follower counts.

    Concurrency: one event loop. A topic's stream opens with its first
    follower (subscribing the bus to it) and closes with its last.
    Durability: none. Failure: a follower whose subscription fails is
    forgotten and the error raised to it.
    """

    def __init__(self, fanout: Fanout, kind: str, deliver: Deliver) -> None:
        self._fanout = fanout
        self._deliver = deliver
        self._streams: dict[str, SeqStream] = {}
        self._followers: Counter[str] = Counter()
        self.stats = RepairStats()
        fanout.route(kind, self._offer)

    def get(self, topic: str) -> SeqStream | None:
        return self._streams.get(topic)

    async def follow(self, topic: str, read_after: ReadAfter) -> SeqStream:
        """Count one more follower of ``topic`` (``read_after`` reads it back if it
        is the first); subscribed on return, its stream is what joiners join."""
        stream = self._streams.get(topic)
        first = stream is None
        if stream is None:
            stream = self._streams[topic] = SeqStream(
                topic, read_after, lambda e, d: self._deliver(topic, e, d), self.stats
            )
        self._followers[topic] += 1
        try:
            await (self._fanout.subscribe(topic) if first else self._fanout.prove(topic))
        except BaseException:
            await self.unfollow(topic)  # the first one's watch counted even if it failed
            raise
        return stream

    async def unfollow(self, topic: str) -> None:
        """One follower fewer; the last one closes the stream and its subscription."""
        if self._followers[topic] <= 0:
            return
        self._followers[topic] -= 1
        if self._followers[topic]:
            return
        del self._followers[topic]
        stream = self._streams.pop(topic)
        await stream.close()
        await self._fanout.unwatch(topic)

    async def close(self) -> None:
        for stream in list(self._streams.values()):
            await stream.close()

    async def check(self) -> dict[str, Any]:
        """Readiness: the bus is up; how many streams, how many wait on a read."""
        if not self._fanout.subscribed:
            raise AppError.unavailable("fanout_down", "the fan-out subscription is down")
        repairing = sum(stream.repairing for stream in self._streams.values())
        return {
            "streams": len(self._streams),
            "repairing": repairing,
            "repaired": self.stats.repaired,
            "repair_failures": self.stats.failures,
        }

    async def _offer(self, topic: str, event: str, data: dict[str, Any]) -> None:
        stream = self._streams.get(topic)
        if stream is not None:
            await stream.offer(event, data)
