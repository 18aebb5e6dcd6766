"""Jobs over Socket.IO with a real python-socketio client: job:subscribe acks
the events after after_seq, then job:event frames follow live, in order and
exactly once, to the final status; job:unsubscribe stops them; another
tenant's job, and another member's private one, is not found."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from aiohttp.test_utils import TestServer

from tests.support.chat import Team, new_team
from tests.support.jobs import JOBS, open_stream, submit, until_final
from tests.support.tenants import Account


class JobClient:
    """A Socket.IO client acting in a tenant that records ``job:event`` frames."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.client.on("job:event", self.events.put)

    async def connect(self, server: TestServer, team: Team, who: Account) -> JobClient:
        url = str(server.make_url("")).rstrip("/")
        auth = {"token": who.token, "tenant_id": team.tenant_id}
        await self.client.connect(url, transports=["websocket"], wait_timeout=10, auth=auth)
        return self

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        return await self.client.call(event, data, timeout=10)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), 30)

    async def until_final(self) -> list[dict[str, Any]]:
        found = [await self.next()]
        while found[-1]["type"] != "status" or found[-1]["data"]["status"] == "running":
            found.append(await self.next())
        return found


async def test_subscribe_replays_then_relays_live_events_in_order_once(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "test.hold")
    job_id = accepted["id"]
    async with open_stream(gateway, team, owner, job_id) as stream:
        await stream.until(3)  # the handler's step is committed
    listener = await JobClient().connect(gateway, team, owner)
    try:
        ack = await listener.call("job:subscribe", {"job_id": job_id, "after_seq": 1})
        assert "data" in ack, ack
        replayed = ack["data"]["events"]
        assert [(e["seq"], e["type"]) for e in replayed] == [(2, "status"), (3, "step")]
        assert ack["data"]["last_seq"] == 3
        status, _ = await team.call("POST", f"{JOBS}/{job_id}/cancel", owner)
        assert status == 200
        live = await listener.until_final()
        assert [e["seq"] for e in live] == [4, 5]
        assert live[-1]["data"] == {"status": "cancelled"}
        assert listener.events.empty()
    finally:
        await listener.client.disconnect()


async def test_a_finished_job_acks_its_events_and_sends_nothing_more(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "demo.count", {"to": 3})
    events = await until_final(gateway, team, owner, accepted["id"])
    listener = await JobClient().connect(gateway, team, owner)
    try:
        ack = await listener.call("job:subscribe", {"job_id": accepted["id"], "after_seq": 0})
        assert ack["data"]["events"] == events
        unsubscribed = await listener.call("job:unsubscribe", {"job_id": accepted["id"]})
        assert unsubscribed == {"ok": True, "data": {"job_id": accepted["id"]}}
        assert listener.events.empty()
    finally:
        await listener.client.disconnect()


async def test_unsubscribe_stops_the_relay(gateway: TestServer) -> None:
    team = await new_team(gateway, 1)
    owner = team.people[0]
    _, held = await submit(team, owner, "test.hold")
    listener = await JobClient().connect(gateway, team, owner)
    try:
        ack = await listener.call("job:subscribe", {"job_id": held["id"]})
        assert "data" in ack, ack
        await listener.call("job:unsubscribe", {"job_id": held["id"]})
        # Events relayed before the unsubscribe's ack (the job starting) were
        # due; the socket sent them ahead of the ack, so they are here now.
        while not listener.events.empty():
            assert listener.events.get_nowait()["job_id"] == held["id"]
        await team.call("POST", f"{JOBS}/{held['id']}/cancel", owner)
        await until_final(gateway, team, owner, held["id"])
        # A job followed after the unsubscribe shows the relay of the first stopped.
        _, counted = await submit(team, owner, "demo.count", {"to": 1})
        await listener.call("job:subscribe", {"job_id": counted["id"]})
        assert all(e["job_id"] == counted["id"] for e in await listener.until_final())
    finally:
        await listener.client.disconnect()


async def test_another_tenants_job_cannot_be_subscribed(gateway: TestServer) -> None:
    ours, theirs = await new_team(gateway, 1), await new_team(gateway, 1)
    _, accepted = await submit(theirs, theirs.people[0], "demo.count", {"to": 1})
    listener = await JobClient().connect(gateway, ours, ours.people[0])
    try:
        ack = await listener.call("job:subscribe", {"job_id": accepted["id"]})
        assert ack["error"]["code"] == "not_found"
        ack = await listener.call("job:subscribe", {"job_id": "not-a-uuid"})
        assert ack["error"]["errors"][0]["field"] == "job_id"
    finally:
        await listener.client.disconnect()


async def test_another_members_private_job_is_not_found_but_a_manager_follows_it(
    gateway: TestServer,
) -> None:
    team = await new_team(gateway, 3)
    owner, creator, member = team.people
    _, accepted = await submit(team, creator, "test.private", {"ms": 10})
    await until_final(gateway, team, creator, accepted["id"])
    subscribe = {"job_id": accepted["id"], "after_seq": 0}
    outsider = await JobClient().connect(gateway, team, member)
    manager = await JobClient().connect(gateway, team, owner)
    try:
        assert (await outsider.call("job:subscribe", subscribe))["error"]["code"] == "not_found"
        ack = await manager.call("job:subscribe", subscribe)
        assert ack["data"]["events"][-1]["data"]["status"] == "succeeded"
    finally:
        await outsider.client.disconnect()
        await manager.client.disconnect()
