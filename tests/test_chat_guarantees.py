"""Issue 4's delivery guarantees under failure: a conversation shard's process
killed while several senders stream (or just before a send), every gateway
restarted under a joined client, and a fan-out publication lost on the bus
and repaired from Postgres.

Readiness reflecting a dead pub/sub subscription is covered by
``tests/test_gateway.py::test_readiness_names_the_dependency_that_is_down``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import socketio
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from hubbub.actors.router import shard_index
from hubbub.chat.events import channel
from hubbub.chat.sockets import ROOMS
from hubbub.config import Settings
from hubbub.services import ROUTER
from hubbub.storage import pubsub
from tests.support.chat import Team, new_team
from tests.support.processes import Gateway
from tests.test_chat_sockets import ChatClient
from tests.test_gateway import _cluster_env

#: Attempts of one send before the test gives up (retriable errors only).
SEND_ATTEMPTS = 200


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _send_until_acked(client: ChatClient, payload: dict[str, Any]) -> dict[str, Any]:
    """Send, retrying retriable failures with the same client_msg_id; the ack."""
    for _ in range(SEND_ATTEMPTS):
        try:
            ack = await client.client.call("message:send", payload, timeout=30)
        except socketio.exceptions.TimeoutError:
            continue
        if "data" in ack:
            return ack["data"]
        assert ack["error"]["retriable"], ack
        await asyncio.sleep(0.1)  # back off before the retry
    raise AssertionError(f"never acknowledged: {payload}")


async def _stream_until(client: ChatClient, conversation_id: str, last: int) -> list[int]:
    """Seqs of the ``message:new`` events received up to seq ``last``."""
    seqs: list[int] = []
    while not seqs or seqs[-1] < last:
        event, data = await client.next()
        assert event == "message:new" and data["conversation_id"] == conversation_id
        seqs.append(data["seq"])
    return seqs


async def test_killing_the_shard_process_mid_stream_loses_and_reorders_nothing(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 4)
    owner, *others = team.people
    found = await team.conversation(owner, "group", *others)
    conversation_id = found["id"]
    router = gateway.app[ROUTER]
    shards = router.shards("conversation")
    victim = shards[shard_index(conversation_id, len(shards))]
    before = await victim.stats()

    url = _url(gateway)
    listener = await ChatClient().connect(url, owner.token, team.tenant_id)
    senders = [await ChatClient().connect(url, p.token, team.tenant_id) for p in team.people]
    per_sender = 25
    acked: dict[int, list[dict[str, Any]]] = {n: [] for n in range(len(senders))}
    halfway = asyncio.Event()

    async def stream(n: int) -> None:
        for i in range(per_sender):
            payload = {
                "conversation_id": conversation_id,
                "body": f"sender {n} message {i}",
                "client_msg_id": f"s{n}-{i}",
            }
            acked[n].append(await _send_until_acked(senders[n], payload))
            if i == per_sender // 3:
                halfway.set()

    try:
        join = {"conversation_id": conversation_id, "since_seq": 1}
        assert (await listener.call("conversation:join", join))["data"]["events"] == []
        streams = asyncio.gather(*(stream(n) for n in range(len(senders))))
        await halfway.wait()
        os.kill(before["pid"], signal.SIGKILL)
        await streams
        # One more after the restart: a publication lost in the kill shows as a gap.
        last = await _send_until_acked(
            senders[0], {"conversation_id": conversation_id, "body": "end", "client_msg_id": "end"}
        )
        received = await _stream_until(listener, conversation_id, last["seq"])
    finally:
        for client in [listener, *senders]:
            await client.client.disconnect()

    after = await victim.stats()
    assert after["pid"] != before["pid"] and after["epoch"] > before["epoch"]
    total = len(senders) * per_sender + 1
    assert last["seq"] == total + 1  # seq 1 is the creation
    for replies in acked.values():  # each sender's own messages in the order it sent them
        seqs = [reply["seq"] for reply in replies]
        assert seqs == sorted(seqs) and len(set(seqs)) == per_sender
    events = await owner_conn.fetch(
        "SELECT seq FROM conversation_events WHERE conversation_id = $1 ORDER BY seq",
        uuid.UUID(conversation_id),
    )
    assert [row["seq"] for row in events] == list(range(1, total + 2))  # gap-free
    rows = await owner_conn.fetch(
        "SELECT id, seq, client_msg_id FROM conversation_messages WHERE conversation_id = $1",
        uuid.UUID(conversation_id),
    )
    assert len(rows) == total
    assert len({row["client_msg_id"] for row in rows}) == total  # no message twice
    stored = {(str(row["id"]), row["seq"]) for row in rows}
    every_ack = [reply for replies in acked.values() for reply in replies] + [last]
    assert {(reply["id"], reply["seq"]) for reply in every_ack} == stored
    assert received == list(range(2, total + 2))  # the listener: once each, in order


async def test_a_send_during_a_shard_restart_is_resent_by_the_router_and_committed_once(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    """A send carries no idempotency key (the conversation dedupes it by its
    ``client_msg_id``), yet the router resends it through the restart: the
    client gets its message, not a 503 to retry."""
    team = await new_team(gateway, 2)
    owner, other = team.people
    conversation_id = (await team.conversation(owner, "group", other))["id"]
    shards = gateway.app[ROUTER].shards("conversation")
    victim = shards[shard_index(conversation_id, len(shards))]
    before = await victim.stats()
    os.kill(before["pid"], signal.SIGKILL)
    body = {"body": "through the restart", "client_msg_id": "restart-1"}
    path = f"/api/v1/conversations/{conversation_id}/messages"
    status, message = await team.call("POST", path, owner, body)
    assert status == 201, message
    assert (await victim.stats())["pid"] != before["pid"]
    stored = await owner_conn.fetch(
        "SELECT id::text FROM conversation_messages WHERE conversation_id = $1",
        uuid.UUID(conversation_id),
    )
    assert [row["id"] for row in stored] == [message["id"]]


async def test_a_client_resumes_on_a_new_gateway_after_every_gateway_restarted(
    ray_cluster: Settings, tmp_path: Path
) -> None:
    env = _cluster_env(ray_cluster)
    first = Gateway(env, tmp_path / "a.log").start()
    second = Gateway(env, tmp_path / "b.log").start()
    third = Gateway(env, tmp_path / "c.log")
    client = ChatClient()
    try:
        await asyncio.gather(first.wait_ready(), second.wait_ready())
        team = await new_team(second.server, 2)
        owner, ann = team.people
        found = await team.conversation(owner, "group", ann)
        conversation_id = found["id"]
        await client.connect(first.url, ann.token, team.tenant_id)
        join = {"conversation_id": conversation_id, "since_seq": 1}
        assert (await client.call("conversation:join", join))["data"]["events"] == []
        for i in range(3):
            await team.send(owner, conversation_id, f"through b {i}")  # seqs 2..4
        seen = await _stream_until(client, conversation_id, 4)
        assert seen == [2, 3, 4]

        for process in (first, second):
            assert await process.stop(signal.SIGTERM) == 0, process.log_tail()
        await client.client.disconnect()  # its gateway is gone already

        third.start()
        await third.wait_ready()
        through_c = Team(third.server, team.tenant_id, team.people)
        missed = [await through_c.send(owner, conversation_id, f"through c {i}") for i in range(4)]
        assert [m["seq"] for m in missed] == [5, 6, 7, 8]

        client = ChatClient()
        await client.connect(third.url, ann.token, team.tenant_id)
        join = {"conversation_id": conversation_id, "since_seq": seen[-1]}
        ack = await client.call("conversation:join", join)
        replayed = ack["data"]["events"]
        assert [(e["seq"], e["event"]) for e in replayed] == [
            (s, "message:new") for s in range(5, 9)
        ]
        assert [e["data"]["message"]["id"] for e in replayed] == [m["id"] for m in missed]
        assert ack["data"]["last_seq"] == 8
        await through_c.send(owner, conversation_id, "live on c")
        assert await _stream_until(client, conversation_id, 9) == [9]  # no replay repeated
        assert client.events.empty()
    finally:
        await client.client.disconnect()
        for process in (first, second, third):
            if process.process is not None:
                await process.stop(signal.SIGTERM)


async def _published(redis: Redis, conversation_id: str, seq: int) -> None:
    """Wait until the bus carried seq ``seq`` of the conversation (seen by the test)."""
    async with redis.pubsub(ignore_subscribe_messages=True) as bus:
        await bus.subscribe(pubsub.channel_name(channel(conversation_id)))
        async with asyncio.timeout(30):
            async for message in bus.listen():
                _, data = pubsub.decode(message["data"])
                if data.get("seq") == seq:
                    return


async def test_a_publication_lost_on_the_bus_is_repaired_from_postgres(
    gateway: TestServer, settings: Settings
) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "group", ann)
    conversation_id = found["id"]
    rooms = gateway.app[ROOMS]
    topic = channel(conversation_id)
    listener = await ChatClient().connect(_url(gateway), ann.token, team.tenant_id)
    redis = Redis.from_url(settings.redis_url or "")
    try:
        join = {"conversation_id": conversation_id, "since_seq": 1}
        assert (await listener.call("conversation:join", join))["data"]["events"] == []
        await team.send(owner, conversation_id, "two")
        assert await _stream_until(listener, conversation_id, 2) == [2]
        repaired = rooms.repaired

        # This gateway's bus subscription to the conversation stops while seq 3 is
        # published: the publication never reaches it.
        await rooms.fanout.unwatch(topic)
        seen_on_bus = asyncio.ensure_future(_published(redis, conversation_id, 3))
        await _wait_subscribers(redis, conversation_id, 1)  # the test's only, not the gateway's
        lost = await team.send(owner, conversation_id, "three, lost on the bus")
        await seen_on_bus
        await _wait_subscribers(redis, conversation_id, 0)  # the test's watcher gone
        await rooms.fanout.watch(topic)
        await _wait_subscribers(redis, conversation_id, 1)  # the gateway's again
        await rooms.fanout.probe()

        await team.send(owner, conversation_id, "four")
        first = await listener.next()
        second = await listener.next()
        assert [(e, d["seq"]) for e, d in (first, second)] == [
            ("message:new", 3),
            ("message:new", 4),
        ]
        assert first[1]["message"]["id"] == lost["id"]
        assert first[1]["message"]["body"] == "three, lost on the bus"
        assert rooms.repaired == repaired + 1
        await team.send(owner, conversation_id, "five")
        assert await _stream_until(listener, conversation_id, 5) == [5]  # nothing twice
        assert listener.events.empty()
    finally:
        await listener.client.disconnect()
        await redis.aclose()


async def _wait_subscribers(redis: Redis, conversation_id: str, count: int) -> None:
    """Until exactly ``count`` connections subscribe to the conversation's channel."""
    name = pubsub.channel_name(channel(conversation_id))
    async with asyncio.timeout(10):
        while True:
            [(_, subscribers)] = await redis.pubsub_numsub(name)
            if subscribers == count:
                return
            await asyncio.sleep(0.01)
