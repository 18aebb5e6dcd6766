"""A SeqStream on its own: one topic's events in seq order, once, gaps read back.

The committed log here is a list the test owns, standing in for Postgres;
followers are lists of what they were handed. The real gateway's streams
are driven in tests/test_bus.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hubbub.realtime.seq_stream import Event, RepairStats, SeqStream


def _event(seq: int | None, name: str = "message:new") -> Event:
    return (name, {} if seq is None else {"seq": seq})


class Log:
    """The owner's committed events, with a read that can be held."""

    def __init__(self, last: int) -> None:
        self.events = [_event(seq) for seq in range(1, last + 1)]
        self.open = asyncio.Event()
        self.open.set()
        self.reads: list[tuple[int, int]] = []
        self.reading = asyncio.Event()

    async def read_after(self, after: int, before: int) -> list[Event]:
        self.reads.append((after, before))
        self.reading.set()
        await self.open.wait()
        return [e for e in self.events if after < e[1]["seq"] < before][:2]  # pages of 2


class Room:
    """The followers of one stream: what the live ones were handed."""

    def __init__(self) -> None:
        self.live: list[Any] = []
        self.joined: list[list[Any]] = []
        self._changed = asyncio.Condition()

    async def deliver(self, event: str, data: dict[str, Any]) -> None:
        self.live.append(data.get("seq", event))
        await self._notify()

    async def arrive(self, missed: list[Event]) -> None:
        self.joined.append([data["seq"] for _, data in missed])
        await self._notify()

    async def until(self, live: int = 0, joined: int = 0) -> None:
        """Until the live followers got ``live`` events and ``joined`` joiners arrived."""
        async with self._changed, asyncio.timeout(5):
            await self._changed.wait_for(
                lambda: len(self.live) >= live and len(self.joined) >= joined
            )

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _stream(log: Log, room: Room, stats: RepairStats | None = None) -> SeqStream:
    return SeqStream("conversation:c", log.read_after, room.deliver, stats or RepairStats())


async def test_in_order_events_are_delivered_at_once_and_duplicates_dropped() -> None:
    log, room = Log(3), Room()
    stream = _stream(log, room)
    for seq in (1, 2, 2, 1, 3):
        await stream.offer(*_event(seq))
    assert room.live == [1, 2, 3]  # on return from offer: no task, no read
    assert log.reads == [] and not stream.repairing


async def test_a_gap_is_read_back_in_pages_and_delivered_first() -> None:
    log, room, stats = Log(6), Room(), RepairStats()
    stream = _stream(log, room, stats)
    await stream.offer(*_event(1))
    await stream.offer(*_event(6))  # 2..5 were lost on the bus
    await stream.offer(*_event(None, "read"))  # not in the stream: waits its turn
    await stream.offer(*_event(4))  # a late publication, delivered by then
    await room.until(live=7)
    assert room.live == [1, 2, 3, 4, 5, 6, "read"]
    assert log.reads == [(1, 6), (3, 6)] and stats.repaired == 4


async def test_a_joiner_behind_the_head_gets_what_it_missed_then_live_events() -> None:
    log, room = Log(4), Room()
    stream = _stream(log, room)
    for seq in (1, 2, 3):
        await stream.offer(*_event(seq))
    stream.join(1, room.arrive)  # its backlog ended at seq 1
    await room.until(joined=1)
    assert room.joined == [[2, 3]]
    await stream.offer(*_event(4))
    assert room.live == [1, 2, 3, 4]


async def test_a_joiner_ahead_of_the_head_moves_it_so_late_publications_are_dropped() -> None:
    log, room = Log(4), Room()
    stream = _stream(log, room)
    await stream.offer(*_event(1))
    stream.join(3, room.arrive)  # its backlog saw 2 and 3, not yet published
    await room.until(joined=1)
    assert room.joined == [[]] and room.live == [1, 2, 3]  # the others got 2, 3 read back
    for seq in (2, 3, 4):
        await stream.offer(*_event(seq))
    assert room.live == [1, 2, 3, 4]


async def test_a_stalled_read_holds_its_own_stream_only() -> None:
    log, stalled_room, other_room = Log(3), Room(), Room()
    stalled, other = _stream(log, stalled_room), _stream(Log(2), other_room)
    await stalled.offer(*_event(1))
    log.open.clear()
    await stalled.offer(*_event(3))  # reading 2 back waits
    await stalled.offer(*_event(None, "read"))
    await log.reading.wait()
    for seq in (1, 2):
        await other.offer(*_event(seq))  # returns at once, delivered
    assert other_room.live == [1, 2] and stalled_room.live == [1] and stalled.repairing
    log.open.set()
    await stalled_room.until(live=4)
    assert stalled_room.live == [1, 2, 3, "read"]


async def test_a_failed_read_leaves_the_gap_counted_and_the_stream_going() -> None:
    room, stats = Room(), RepairStats()

    async def broken(after: int, before: int) -> list[Event]:
        raise OSError("Postgres is away")

    stream = SeqStream("job:j", broken, room.deliver, stats)
    await stream.offer(*_event(1))
    await stream.offer(*_event(3))
    await room.until(live=2)
    await stream.offer(*_event(4))
    assert room.live == [1, 3, 4] and stats.failures == 1
