"""Conversations over Socket.IO with real clients: a join replays exactly what
was missed, then live events follow exactly once and in order — on the
gateway that commits and on a second gateway process; a sent message is
acknowledged only once committed; non-members cannot join."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.services import REALTIME
from hubbub.tenancy.confirmed_members import CONFIRMED_MEMBERS
from hubbub.tenancy.eviction import ACCESS_FANOUT
from tests.support.chat import Team, new_team
from tests.support.processes import Gateway
from tests.support.tenants import TENANTS
from tests.test_gateway import _cluster_env

WEBSOCKET = ["websocket"]
#: How a client may reach the gateway: a websocket from the start, long-polling
#: upgraded to a websocket (the official clients' default), or long-polling only.
TRANSPORTS = pytest.mark.parametrize(
    "transports",
    [WEBSOCKET, ["polling", "websocket"], ["polling"]],
    ids=["websocket", "upgraded", "polling"],
)


class ChatClient:
    """A Socket.IO client acting in a tenant that records conversation events."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self.client.on("*", self._record)

    async def _record(self, event: str, data: dict) -> None:
        await self.events.put((event, data))

    async def connect(
        self, url: str, token: str, tenant_id: str, transports: list[str] = WEBSOCKET
    ) -> ChatClient:
        auth = {"token": token, "tenant_id": tenant_id}
        await self.client.connect(url, transports=transports, wait_timeout=10, auth=auth)
        return self

    async def call(self, event: str, data: dict) -> dict:
        return await self.client.call(event, data, timeout=10)

    async def next(self) -> tuple[str, dict]:
        return await asyncio.wait_for(self.events.get(), 10)


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _joined_then_live(
    team: Team, url: str, sender_count: int = 20, transports: list[str] = WEBSOCKET
) -> None:
    """Join with a since_seq while another member keeps sending; check the result."""
    owner, ann = team.people[:2]
    found = await team.conversation(owner, "group", ann)
    for i in range(5):
        await team.send(owner, found["id"], f"before {i}")  # seqs 2..6
    listener = await ChatClient().connect(url, ann.token, team.tenant_id, transports)
    try:
        sending = asyncio.gather(
            *(team.send(owner, found["id"], f"live {i}") for i in range(sender_count))
        )
        ack = await listener.call(
            "conversation:join", {"conversation_id": found["id"], "since_seq": 3}
        )
        assert "data" in ack, ack
        replayed = [e["seq"] for e in ack["data"]["events"]]
        assert replayed[:3] == [4, 5, 6]
        assert all(e["event"] == "message:new" for e in ack["data"]["events"])
        await sending
        head = 6 + sender_count
        live: list[int] = []
        while (replayed + live)[-1] < head:
            event, data = await listener.next()
            assert event == "message:new" and data["conversation_id"] == found["id"]
            live.append(data["seq"])
        assert replayed + live == list(range(4, head + 1))  # no gap, no duplicate, in order
        # Nothing more arrives after the last one (exactly once).
        await team.send(owner, found["id"], "last")
        assert (await listener.next())[1]["seq"] == head + 1
    finally:
        await listener.client.disconnect()


@TRANSPORTS
async def test_a_join_replays_what_was_missed_then_live_events_exactly_once(
    gateway: TestServer, transports: list[str]
) -> None:
    team = await new_team(gateway, 2)
    # python-engineio's client refuses a polling response of more than 16 packets.
    senders = 10 if transports == ["polling"] else 20
    await _joined_then_live(team, _url(gateway), senders, transports)


@TRANSPORTS
async def test_sockets_on_a_websocket_get_frames_written_directly(
    gateway: TestServer, transports: list[str]
) -> None:
    team = await new_team(gateway, 1)
    client = await ChatClient().connect(
        _url(gateway), team.people[0].token, team.tenant_id, transports
    )
    try:
        engine = gateway.app[REALTIME].sio.eio
        for _ in range(100):  # an upgrade completes in the background
            if client.client.eio.current_transport == transports[-1]:
                break
            await asyncio.sleep(0.05)
        direct = [engine.sockets[client.client.eio.sid].queue.direct]
        assert direct == [transports[-1] == "websocket"]
    finally:
        await client.client.disconnect()


async def test_joining_through_a_second_gateway_process(
    gateway: TestServer, ray_cluster: Settings, tmp_path: Path
) -> None:
    env = _cluster_env(ray_cluster)
    second = Gateway(env, tmp_path / "second.log").start()
    try:
        await second.wait_ready()
        team = await new_team(gateway, 2)  # HTTP through the in-process gateway
        await _joined_then_live(team, second.url)
    finally:
        assert await second.stop() == 0, second.log_tail()


async def test_an_acked_message_is_committed_and_a_retry_gets_the_same_ack(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "direct", ann)
    sender = await ChatClient().connect(_url(gateway), owner.token, team.tenant_id)
    listener = await ChatClient().connect(_url(gateway), ann.token, team.tenant_id)
    try:
        joined = await listener.call(
            "conversation:join", {"conversation_id": found["id"], "since_seq": 1}
        )
        assert joined["data"]["events"] == []
        payload = {"conversation_id": found["id"], "body": "hi", "client_msg_id": "s-1"}
        ack = await sender.call("message:send", payload)
        assert set(ack["data"]) == {"id", "seq", "created_at"} and ack["data"]["seq"] == 2
        row = await owner_conn.fetchrow(
            "SELECT body, seq FROM conversation_messages WHERE id = $1",
            uuid.UUID(ack["data"]["id"]),
        )
        assert (row["body"], row["seq"]) == ("hi", 2)
        assert await sender.call("message:send", payload) == ack
        event, data = await listener.next()
        assert (event, data["seq"], data["message"]["body"]) == ("message:new", 2, "hi")

        read = await listener.call("read", {"conversation_id": found["id"], "up_to_seq": 2})
        assert read["data"]["last_read_seq"] == 2
        event, data = await listener.next()
        assert (event, data) == (
            "read",
            {"conversation_id": found["id"], "user_id": ann.user_id, "up_to_seq": 2},
        )
        bad = await sender.call("message:send", payload | {"body": "", "client_msg_id": "s-2"})
        assert bad["error"]["code"] == "body_empty"
        bad = await listener.call("read", {"conversation_id": found["id"], "up_to_seq": 9})
        assert bad["error"]["code"] == "seq_out_of_range"
        left = await listener.call("conversation:leave", {"conversation_id": found["id"]})
        assert left["data"] == {"conversation_id": found["id"]}
        await sender.call("message:send", payload | {"client_msg_id": "s-3"})
        await team.send(owner, found["id"], "after leaving")
        assert listener.events.empty()
    finally:
        await sender.client.disconnect()
        await listener.client.disconnect()


async def test_edits_deletes_and_member_changes_reach_joined_sockets(gateway: TestServer) -> None:
    team = await new_team(gateway)
    owner, ann, bob = team.people
    found = await team.conversation(owner, "group", ann, title="t")
    listener = await ChatClient().connect(_url(gateway), ann.token, team.tenant_id)
    try:
        await listener.call("conversation:join", {"conversation_id": found["id"], "since_seq": 1})
        message = await team.send(owner, found["id"], "x")
        base = f"/api/v1/conversations/{found['id']}"
        await team.call("PATCH", f"{base}/messages/{message['id']}", owner, {"body": "y"})
        await team.call("DELETE", f"{base}/messages/{message['id']}", owner)
        await team.call("PATCH", base, owner, {"title": "u"})
        await team.call("POST", f"{base}/members", owner, {"user_ids": [bob.user_id]})
        await team.call("DELETE", f"{base}/members/{ann.user_id}", owner)
        got = [await listener.next() for _ in range(6)]
        assert [(e, d["seq"]) for e, d in got] == [
            ("message:new", 2),
            ("message:updated", 3),
            ("message:deleted", 4),
            ("conversation:updated", 5),
            ("member:joined", 6),
            ("member:left", 7),
        ]
        assert got[2][1]["message"]["deleted"] is True
        # Removed: ann's socket no longer gets the conversation's events.
        await team.send(owner, found["id"], "not for ann")
        ack = await listener.call("conversation:join", {"conversation_id": found["id"]})
        assert ack["error"]["code"] == "not_found"
        assert listener.events.empty()
    finally:
        await listener.client.disconnect()


async def test_non_members_and_sockets_without_a_tenant_cannot_join(gateway: TestServer) -> None:
    team = await new_team(gateway)
    owner, ann, outsider = team.people
    found = await team.conversation(owner, "group", ann)
    stranger = await ChatClient().connect(_url(gateway), outsider.token, team.tenant_id)
    try:
        ack = await stranger.call("conversation:join", {"conversation_id": found["id"]})
        assert ack["error"]["code"] == "not_found"
        ack = await stranger.call("conversation:join", {"conversation_id": "nope"})
        assert ack["error"]["code"] == "validation_failed"
        payload = {"conversation_id": found["id"], "body": "hi", "client_msg_id": "x"}
        assert (await stranger.call("message:send", payload))["error"]["code"] == "not_found"
    finally:
        await stranger.client.disconnect()
    tenantless = socketio.AsyncClient(reconnection=False)
    await tenantless.connect(
        _url(gateway), transports=["websocket"], wait_timeout=10, auth={"token": owner.token}
    )
    try:
        ack = await tenantless.call(
            "conversation:join", {"conversation_id": found["id"]}, timeout=10
        )
        assert ack["error"]["code"] == "tenant_required"
    finally:
        await tenantless.disconnect()


async def _send(client: ChatClient, conversation_id: str, body: str) -> dict:
    payload = {"conversation_id": conversation_id, "body": body, "client_msg_id": body}
    return await client.call("message:send", payload)


async def _remove_from_tenant(team: Team, who: ChatClient, account_id: str) -> None:
    """Remove a member, and wait until the removal reached ``who``'s gateway."""
    assert (await who.call("tenant:watch", {"tenant_id": team.tenant_id}))["ok"]
    path = f"{TENANTS}/{team.tenant_id}/members/{account_id}"
    assert (await team.call("DELETE", path, team.people[0]))[0] == 204
    while (await who.next())[0] != "tenant:access_revoked":
        pass


async def test_a_member_removed_from_the_tenant_is_refused_at_the_next_socket_event(
    gateway: TestServer,
) -> None:
    """A socket's tenant membership is confirmed by the tenant entity once, then
    trusted (no Ray call per message) until the removal reaches the gateway."""
    team = await new_team(gateway)
    owner, ann, _ = team.people
    found = await team.conversation(owner, "group", ann)
    client = await ChatClient().connect(_url(gateway), ann.token, team.tenant_id)
    try:
        assert "data" in await _send(client, found["id"], "while a member")
        await _remove_from_tenant(team, client, ann.user_id)
        ack = await _send(client, found["id"], "after removal")
        assert ack["error"]["code"] == "not_found"
        bodies = [m["body"] for m in (await team.call("GET", _messages(found), owner))[1]["items"]]
        assert "after removal" not in bodies
    finally:
        await client.client.disconnect()


async def test_a_rebuilt_revocation_subscription_forgets_every_confirmed_membership(
    gateway: TestServer, settings: Settings
) -> None:
    """Removals published while the subscription was down are lost to it, so the
    gateway asks the tenant entity again afterwards; later removals still apply."""
    team = await new_team(gateway)
    owner, ann, _ = team.people
    found = await team.conversation(owner, "group", ann)
    members, revocations = gateway.app[CONFIRMED_MEMBERS], gateway.app[ACCESS_FANOUT]
    client = await ChatClient().connect(_url(gateway), ann.token, team.tenant_id)
    try:
        assert "data" in await _send(client, found["id"], "confirmed once")
        assert len(members) > 0
        async with Redis.from_url(settings.redis_url) as redis:
            await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        while True:  # a probe comes through once the subscription is rebuilt
            with contextlib.suppress(AppError):
                await revocations.probe()
                break
        assert len(members) == 0
        assert "data" in await _send(client, found["id"], "confirmed again")
        await _remove_from_tenant(team, client, ann.user_id)
        assert (await _send(client, found["id"], "removed"))["error"]["code"] == "not_found"
    finally:
        await client.client.disconnect()


def _messages(conversation: dict) -> str:
    return f"/api/v1/conversations/{conversation['id']}/messages"


async def _raw_websocket_join(
    http: aiohttp.ClientSession, url: str, auth: dict, conversation_id: str
) -> aiohttp.ClientWebSocketResponse:
    """A bare Engine.IO websocket that joins a conversation, then reads only when asked."""
    ws = await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
    assert (await ws.receive_str()).startswith("0")  # Engine.IO open
    await ws.send_str("40" + json.dumps(auth))
    assert (await ws.receive_str()).startswith("40")  # Socket.IO connect
    join = {"conversation_id": conversation_id, "since_seq": 0}
    await ws.send_str("421" + json.dumps(["conversation:join", join]))
    assert (await ws.receive_str()).startswith("431")  # the join's ack
    return ws


async def test_a_socket_that_stops_reading_is_disconnected_not_buffered_forever(
    serve: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await serve(socket_buffer_bytes=65_536)
    team = await new_team(server, 2)
    owner, ann = team.people
    found = await team.conversation(owner, "group", ann)
    auth = {"token": ann.token, "tenant_id": team.tenant_id}
    async with aiohttp.ClientSession() as http:
        ws = await _raw_websocket_join(http, _url(server), auth, found["id"])
        # The client reads nothing: kernel buffers fill, then the gateway's.
        big = "x" * 16_000
        realtime = server.app[REALTIME]
        for i in range(2000):
            await team.send(owner, found["id"], f"{i} {big}")
            if realtime.connections == 0:
                break
        assert realtime.connections == 0  # cut off once 64 KiB were waiting
        while (await ws.receive(timeout=10)).type not in _CLOSED:
            pass  # what was sent before the cut, then the end of the connection


_CLOSED = {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR}
