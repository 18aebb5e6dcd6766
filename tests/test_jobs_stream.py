"""A job's Server-Sent Events stream, read by a real HTTP client: every event
exactly once and in order — for a subscriber that arrives late, on another
gateway, or resumes with Last-Event-ID — always ending with the final
status; heartbeat comments while nothing happens; and a follower that reads
back from Postgres what the bus lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from hubbub.jobs import feeds
from hubbub.jobs.keys import FEEDS
from tests.support.chat import new_team
from tests.support.jobs import JOBS, SseEvent, finished_count, open_stream, submit, until_final
from tests.support.tenants import call


def _seqs(frames: list[SseEvent]) -> list[int]:
    return [int(frame.id or 0) for frame in frames]


def _well_formed(frames: list[SseEvent], job_id: str) -> None:
    """Each frame's ``id:`` is its seq and its ``event:`` its type."""
    for frame in frames:
        event = frame.json()
        assert (event["job_id"], str(event["seq"]), event["type"]) == (
            job_id,
            frame.id,
            frame.event,
        )


async def test_a_late_subscriber_on_another_gateway_gets_the_rest_live_exactly_once(
    gateway: TestServer, serve: Callable[..., Awaitable[TestServer]]
) -> None:
    other = await serve()
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.hold")
    job_id = accepted["id"]
    async with open_stream(gateway, team, owner, job_id) as early:
        started = await early.until(3)  # queued, running, step "holding"
        assert [f.event for f in started] == ["status", "status", "step"]
        async with open_stream(other, team, owner, job_id, "?after_seq=1") as late:
            replayed = await late.until(3)
            assert _seqs(replayed) == [2, 3]
            status, _ = await team.call("POST", f"{JOBS}/{job_id}/cancel", owner)
            assert status == 200
            live = await late.events()
        rest = await early.events()
    assert _seqs(replayed + live) == [2, 3, 4, 5]
    assert _seqs(started + rest) == [1, 2, 3, 4, 5]
    assert live[-1].json()["data"] == rest[-1].json()["data"] == {"status": "cancelled"}
    _well_formed(started + rest, job_id)


async def test_resuming_with_last_event_id_gets_every_later_event_once_in_order(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "demo.count", {"to": 40, "pause_ms": 5})
    job_id = accepted["id"]
    async with open_stream(gateway, team, owner, job_id) as first:
        before = await first.until(6)
    assert _seqs(before) == list(range(1, 7))
    async with open_stream(gateway, team, owner, job_id, **{"Last-Event-ID": "6"}) as resumed:
        after = await resumed.events()
    seqs = _seqs(before + after)
    assert seqs == list(range(1, len(seqs) + 1))
    assert after[-1].event == "status"
    assert after[-1].json()["data"] == {"status": "succeeded", "result": {"counted": 40}}
    _well_formed(before + after, job_id)
    # Last-Event-ID wins over after_seq.
    headers = {"Last-Event-ID": str(seqs[-2])}
    async with open_stream(gateway, team, owner, job_id, "?after_seq=1", **headers) as again:
        assert _seqs(await again.events()) == [seqs[-1]]


async def test_a_finished_job_streams_its_final_status_even_to_one_who_saw_it(
    gateway: TestServer,
) -> None:
    team, owner, job_id, events = await finished_count(gateway, 2)
    last = str(events[-1]["seq"])
    async with open_stream(gateway, team, owner, job_id, **{"Last-Event-ID": last}) as s:
        [final] = await s.events()
    assert (final.id, final.event, final.json()) == (last, "status", events[-1])


async def test_heartbeats_flow_while_nothing_happens(
    serve: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await serve(sse_heartbeat_seconds=0.05)
    team = await new_team(server, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.hold")
    async with open_stream(server, team, owner, accepted["id"]) as stream:
        await stream.until(3)
        frame = await stream.next()
        while frame is not None and not frame.comments:
            frame = await stream.next()
        assert frame is not None and frame.comments == ["ping"] and not frame.data
        await team.call("POST", f"{JOBS}/{accepted['id']}/cancel", owner)
        events = await stream.events()
    assert events[-1].json()["data"] == {"status": "cancelled"}


async def test_a_bad_or_unreached_last_event_id_is_refused(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "demo.count", {"to": 1})
    path = f"{JOBS}/{accepted['id']}/stream"
    headers = {"X-Tenant-Id": team.tenant_id, "Last-Event-ID": "seven"}
    status, problem = await call(gateway, "GET", path, owner.token, **headers)
    assert (status, problem["errors"][0]["field"]) == (422, "Last-Event-ID")
    await until_final(gateway, team, owner, accepted["id"])
    headers["Last-Event-ID"] = "99"
    status, problem = await call(gateway, "GET", path, owner.token, **headers)
    assert (status, problem["code"]) == (422, "seq_out_of_range")


async def test_a_follower_reads_back_from_postgres_what_the_bus_lost(
    gateway: TestServer,
) -> None:
    team, _, job_id, events = await finished_count(gateway, 3)
    feeds = gateway.app[FEEDS]
    follower = await feeds.follow(team.tenant_id, job_id, 1, None)
    try:
        repaired = feeds.repaired
        follower.offer(events[4])  # seqs 2..4 never came
        follower.offer(events[2])  # a late duplicate
        follower.offer(events[5])
        assert await follower.next() == events[1:5]
        assert await follower.next() == [events[5]]
        assert feeds.repaired == repaired + 3
    finally:
        await follower.close()


async def test_only_a_topics_first_follower_waits_for_a_probe_of_the_bus(
    gateway: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    team, _, job_id, _ = await finished_count(gateway, 1)
    job_feeds = gateway.app[FEEDS]
    probes: list[dict] = []
    probe = job_feeds.fanout.probe

    async def counted() -> dict:
        probes.append(await probe())
        return probes[-1]

    monkeypatch.setattr(job_feeds.fanout, "probe", counted)
    first = await job_feeds.follow(team.tenant_id, job_id, 0, None)
    second = await job_feeds.follow(team.tenant_id, job_id, 0, None)
    assert len(probes) == 1  # the second found the topic's subscription proven
    await first.close()
    await second.close()  # the topic is unsubscribed: a new follower proves it again
    third = await job_feeds.follow(team.tenant_id, job_id, 0, None)
    assert len(probes) == 2
    await third.close()


async def test_a_follower_that_falls_behind_buffers_little_and_reads_the_rest_back(
    gateway: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    team, _, job_id, events = await finished_count(gateway, 3)
    monkeypatch.setattr(feeds, "MAX_LIVE", 2)
    monkeypatch.setattr(feeds, "PAGE", 2)
    follower = await gateway.app[FEEDS].follow(team.tenant_id, job_id, 1, None)
    try:
        for event in (events[1], events[2], events[3], events[5], events[4]):  # nobody reads
            follower.offer(event)
            assert follower.buffered <= 2
        assert await follower.next() == events[1:3]  # a page from Postgres
        assert await follower.next() == events[3:6]  # the next, and the newest kept
    finally:
        await follower.close()


async def test_a_long_backlog_is_replayed_page_by_page(
    gateway: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    team, owner, job_id, events = await finished_count(gateway, 20)
    monkeypatch.setattr(feeds, "PAGE", 2)
    async with open_stream(gateway, team, owner, job_id, "?after_seq=1") as stream:
        replayed = [frame.json() for frame in await stream.events()]
    assert replayed == events[1:]
